#!/usr/bin/python3
"""mk_imatrix_refs.py - llama.cpp's quantization with an importance matrix, as the fixtures
tests/quantize/data/imatrix-MODEL.json that test_imatrix_mix.sh compares `quarrel quantize
--imatrix` with: per mix, every tensor's type and the sha256 of its bytes.

Models: stories260K (../shared/models/stories260K.gguf, F32; 64 and 172 wide, so its k-quant
mixes fall back to the legacy types and q8_0) and `quarrel synth --shape qwen3-mix --seed 1`
(F16, 256 and 512 wide: the k-quants proper). The importance is synthetic and deterministic
(importance(), from each tensor's name): one entry per weight matrix (blk.*.weight with two
dimensions, and output.weight), keyed by tensor name, positive with a spread of 1/16 .. 32.
llama.cpp v0.5.0's llama_model_quantize (the peer, ../shared/peer) gets it as
params.imatrix, exactly what llama-quantize --imatrix hands it; Quarrel reads the same values
from a legacy imatrix.dat (write_imatrix_dat: sums = importance * NCALL, ncall = NCALL, a power
of two, so sums / ncall gives the values back exactly).

usage: /usr/bin/python3 tests/quantize/mk_imatrix_refs.py --quarrel build/quarrel
           [--peer ../shared/peer] [--out tests/quantize/data] [MODEL ...]
(LLAMAREF_BIN_DIR picks the llama.cpp libraries, as for libllama.py; needs numpy.)"""

import argparse
import hashlib
import os
import struct
import subprocess
import sys
import tempfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_tensors  # noqa: E402
from mk_mix_refs import load_quantizer, record_mix, source_digest, write_fixture  # noqa: E402

SHARED = os.environ.get("QR_SHARED_DIR") or os.path.join(HERE, "..", "..", "..", "shared")
# model name -> where its source comes from: a file under ../shared, or a synth shape
MODELS = {"stories260K": {"shared": "models/stories260K.gguf"},
          "qwen3": {"shape": "qwen3-mix", "seed": 1},
          "granite": {"shape": "granite-mix", "seed": 1}}
# llama.cpp's LLAMA_FTYPE_MOSTLY_* (include/llama.h)
MIXES = {"Q4_K_M": 15, "Q2_K": 10, "Q3_K_M": 12, "Q5_K_M": 17, "Q6_K": 18, "Q4_0": 2,
         "Q4_1": 3, "Q5_0": 8, "Q5_1": 9}
NCALL = 8
DATASET = "synthetic importance (tests/quantize/mk_imatrix_refs.py)"


def source_path(model, work, quarrel):
    """the model's source file: the shared file, or `quarrel synth` written into work"""
    m = MODELS[model]
    if "shared" in m:
        return os.path.abspath(os.path.join(SHARED, m["shared"]))
    path = os.path.join(work, m["shape"] + "-f16.gguf")
    subprocess.run([quarrel, "synth", "--shape", m["shape"], "-o", path, "--seed",
                    str(m["seed"])], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return path


def importance(name, ne0):
    """ne0 positive float32 values for the tensor `name`: (1 + k/256) * 2^(e - 4), k and e from
    an xorshift32 seeded by the name's crc32 (e in 0..9); every value is exact in float32."""
    import numpy as np
    s = zlib.crc32(name.encode()) or 1
    out = np.empty(ne0, dtype=np.float32)
    for j in range(ne0):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        out[j] = (1 + (s & 0xFF) / 256) * 2.0 ** ((s >> 8) % 10 - 4)
    return out


def importance_entries(src):
    """{tensor name: importance} for every weight matrix of the GGUF file src"""
    _, tensors = gguf_tensors.read(src)
    out = {}
    for name, _, ne, _ in tensors:
        matrix = len(ne) >= 2 and ne[1] > 1
        if matrix and (name.startswith("blk.") or name == "output.weight"):
            out[name] = importance(name, ne[0])
    return out


def write_imatrix_dat(entries, path):
    """llama.cpp's legacy imatrix.dat (../shared/reference/README.md): sums = values * NCALL"""
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(entries)))
        for name, values in sorted(entries.items()):
            f.write(struct.pack("<i", len(name)) + name.encode())
            f.write(struct.pack("<ii", NCALL, values.size))
            f.write((values * NCALL).astype("<f4").tobytes())
        f.write(struct.pack("<ii", NCALL, len(DATASET)) + DATASET.encode())
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quarrel", required=True, help="the quarrel binary (for synth)")
    ap.add_argument("--peer", default=os.path.join(SHARED, "peer"), help="folder of libllama.py")
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("models", nargs="*", default=list(MODELS))
    a = ap.parse_args()

    lib, llama_cpp_version = load_quantizer(a.peer)
    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mk_imatrix_refs.") as tmp:
        for model in a.models:
            src = source_path(model, tmp, a.quarrel)
            entries = importance_entries(src)
            dat_sha = write_imatrix_dat(entries, os.path.join(tmp, model + ".imatrix.dat"))
            doc = {"generator": "tests/quantize/mk_imatrix_refs.py",
                   "llama_cpp": llama_cpp_version + ", llama_model_quantize defaults with "
                   "params.imatrix",
                   "model": model, "source": MODELS[model],
                   "source_tensors_sha256": source_digest(gguf_tensors.read(src)[1]),
                   "imatrix_entries": len(entries), "imatrix_dat_sha256": dat_sha,
                   "mixes": {}}
            for mix, ftype in MIXES.items():
                doc["mixes"][mix] = record_mix(lib, src, tmp, model, mix, ftype, a.threads,
                                               entries)
            path = os.path.join(a.out, "imatrix-%s.json" % model)
            write_fixture(path, doc, header=("generator", "llama_cpp", "model", "source",
                                             "source_tensors_sha256", "imatrix_entries",
                                             "imatrix_dat_sha256"))
            print("wrote %s (%d mixes, %d importance entries)" % (path, len(MIXES),
                                                                   len(entries)))


if __name__ == "__main__":
    main()

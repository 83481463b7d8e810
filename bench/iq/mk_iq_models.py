#!/usr/bin/python3
"""mk_iq_models.py - the IQ benchmark models, quantized by llama.cpp (the peer's
llama_model_quantize through ctypes, default parameters, as `llama-quantize IN OUT TYPE`) from
synthetic F16 sources, then each file's tensor types counted (llama.cpp falls a tensor back to
another type where its row length is not a multiple of 256).

  smol135-iq4_xs.gguf, smol135-iq3_s.gguf, smol135-iq2_xxs.gguf   from mk_synth.py smol135
  tinyllama-iq4_xs.gguf                                            from quarrel synth --shape tinyllama

IQ2_XXS needs an importance matrix: a synthetic one is passed (one entry per weight matrix,
keyed by tensor name, ne[0] positive values 1 + 0.5 * sin(i), i.e. a mild made-up weighting;
speed does not depend on it). Needs the peer (../shared/peer/README.md) and Debian's python3
with numpy (for mk_synth.py).

usage: /usr/bin/python3 bench/iq/mk_iq_models.py OUTDIR [--quarrel build/quarrel]
           [--peer ../shared/peer] [--only smol135|tinyllama]"""

import argparse
import math
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "quantize"))
import gguf_tensors  # noqa: E402
import mk_mix_refs  # noqa: E402

FTYPES = {"IQ4_XS": 30, "IQ3_S": 26, "IQ2_XXS": 19}  # include/llama.h llama_ftype
GGML_TYPE_NAMES = {0: "f32", 1: "f16", 2: "q4_0", 3: "q4_1", 6: "q5_0", 7: "q5_1", 8: "q8_0",
                   10: "q2_K", 11: "q3_K", 12: "q4_K", 13: "q5_K", 14: "q6_K", 16: "iq2_xxs",
                   17: "iq2_xs", 18: "iq3_xxs", 19: "iq1_s", 20: "iq4_nl", 21: "iq3_s",
                   22: "iq2_s", 23: "iq4_xs", 29: "iq1_m", 30: "bf16", 34: "tq1_0",
                   35: "tq2_0", 39: "mxfp4"}


def tensor_infos(path):
    """[(name, ggml type id, ne)] of a GGUF file, any type"""
    with open(path, "rb") as f:
        data = f.read(64 << 20)  # the header is far smaller
    r = gguf_tensors._Reader(data)
    r.pos = 8
    n_tensors, n_kv = r.take("Q"), r.take("Q")
    for _ in range(n_kv):
        r.string()
        r.value(r.take("I"))
    out = []
    for _ in range(n_tensors):
        name = r.string()
        ne = [r.take("Q") for _ in range(r.take("I"))]
        tid = r.take("I")
        r.take("Q")
        out.append((name, tid, ne))
    return out


def type_summary(path):
    """'type: count (which tensors)' lines of a file's 2-D tensors"""
    groups = {}
    for name, tid, ne in tensor_infos(path):
        if len(ne) < 2:
            continue
        kind = name.split(".")[-2] if name.startswith("blk.") else name.rsplit(".", 1)[0]
        groups.setdefault(GGML_TYPE_NAMES.get(tid, str(tid)), {}).setdefault(kind, 0)
        groups[GGML_TYPE_NAMES.get(tid, str(tid))][kind] += 1
    return ["%s: %s" % (t, ", ".join("%s x%d" % kv for kv in sorted(k.items())))
            for t, k in sorted(groups.items())]


def quantize(lib, src, out, ftype, imatrix=False):
    """llama.cpp's quantization of src; with imatrix, a synthetic importance of 1 + 0.5 sin(i)
    per column of every matrix (the files in bench/README.md were made with it)"""
    ents = None
    if imatrix:
        ents = {n: np.array([1.0 + 0.5 * math.sin(i) for i in range(ne[0])], dtype=np.float32)
                for n, tid, ne in tensor_infos(src) if len(ne) >= 2}
    rc = mk_mix_refs.quantize(lib, src, out, FTYPES[ftype], 2, imatrix=ents)
    if rc != 0:
        sys.exit("llama_model_quantize %s -> %s failed (%d)" % (src, ftype, rc))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--quarrel", default=os.path.join(ROOT, "build", "quarrel"))
    ap.add_argument("--peer", default=os.path.join(ROOT, "..", "shared", "peer"))
    ap.add_argument("--only", choices=["smol135", "tinyllama"])
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    lib, _ = mk_mix_refs.load_quantizer(a.peer)
    made = []
    if a.only in (None, "smol135"):
        src = os.path.join(a.outdir, "smol135-f16.gguf")
        if not os.path.exists(src):
            subprocess.run(["/usr/bin/python3", os.path.join(ROOT, "..", "shared", "models",
                                                             "synth", "mk_synth.py"),
                            "smol135", src], check=True)
        for ft in ("IQ4_XS", "IQ3_S", "IQ2_XXS"):
            out = os.path.join(a.outdir, "smol135-%s.gguf" % ft.lower())
            quantize(lib, src, out, ft, imatrix=ft == "IQ2_XXS")
            made.append(out)
    if a.only in (None, "tinyllama"):
        src = os.path.join(a.outdir, "tinyllama-f16.gguf")
        if not os.path.exists(src):
            subprocess.run([a.quarrel, "synth", "--shape", "tinyllama", "-o", src], check=True)
        out = os.path.join(a.outdir, "tinyllama-iq4_xs.gguf")
        quantize(lib, src, out, "IQ4_XS")
        made.append(out)
    for out in made:
        print("%s (%.1f MB)" % (os.path.basename(out), os.path.getsize(out) / 1e6))
        for line in type_summary(out):
            print("  " + line)


if __name__ == "__main__":
    main()

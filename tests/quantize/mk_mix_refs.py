#!/usr/bin/python3
"""mk_mix_refs.py - llama.cpp's quantization mixes of the `quarrel synth --shape ARCH-mix`
models, as the fixtures tests/quantize/data/mix-ARCH.json that test_mix_arch.sh compares
Quarrel's `quarrel quantize` with: per mix, every tensor's type and the sha256 of its bytes.

For each architecture: `quarrel synth --shape ARCH-mix` writes the F16 source (seed 1), and
llama.cpp v0.5.0's llama_model_quantize (the peer, ../shared/peer; default parameters, as
llama-quantize without options) quantizes it to each mix, and again to each file type with
synth_imatrix.py's importance matrix (as llama-quantize --imatrix). The source is recorded by a
hash of its tensors so the test can tell a changed source from a changed quantizer.

usage: /usr/bin/python3 tests/quantize/mk_mix_refs.py --quarrel build/quarrel
           [--peer ../shared/peer] [--out tests/quantize/data] [ARCH ...]
(LLAMAREF_BIN_DIR picks the llama.cpp libraries, as for libllama.py.)"""

import argparse
import ctypes
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from ctypes import (POINTER, Structure, c_bool, c_char_p, c_float, c_int, c_int32, c_size_t,
                    c_uint32, c_void_p, cast)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import gguf_tensors  # noqa: E402
import synth_imatrix  # noqa: E402

ARCHS = ["qwen3", "gemma2", "gemma3", "phi3", "olmo2", "granite", "smollm3"]
# llama.cpp's LLAMA_FTYPE_MOSTLY_* (include/llama.h)
MIXES = {"Q2_K": 10, "Q3_K_S": 11, "Q3_K_M": 12, "Q3_K_L": 13, "Q4_K_S": 14, "Q4_K_M": 15,
         "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "IQ4_NL": 25, "IQ4_XS": 30, "IQ3_S": 26,
         "IQ3_M": 27, "TQ1_0": 36, "TQ2_0": 37, "MXFP4_MOE": 38}
# the same with synth_imatrix.py's importance matrix (recorded as "NAME+imatrix"): every file
# type, the very low-bit ones that llama.cpp makes only with an importance included
IMATRIX_MIXES = {"Q4_0": 2, "Q5_1": 9, "Q2_K": 10, "Q2_K_S": 21, "Q3_K_M": 12, "Q4_K_M": 15,
                 "Q5_K_S": 16, "Q6_K": 18, "IQ1_S": 24, "IQ1_M": 31, "IQ2_XXS": 19, "IQ2_XS": 20,
                 "IQ2_S": 28, "IQ2_M": 29, "IQ3_XXS": 23, "IQ3_XS": 22, "IQ3_S": 26, "IQ3_M": 27,
                 "IQ4_NL": 25, "IQ4_XS": 30, "TQ2_0": 37, "MXFP4_MOE": 38}
IMATRIX_SUFFIX = "+imatrix"

SEED = 1


class llama_model_quantize_params(Structure):
    """include/llama.h of v0.5.0, field by field"""
    _fields_ = [
        ("nthread", c_int32),
        ("ftype", c_int),
        ("output_tensor_type", c_int),
        ("token_embedding_type", c_int),
        ("allow_requantize", c_bool),
        ("quantize_output_tensor", c_bool),
        ("only_copy", c_bool),
        ("pure", c_bool),
        ("keep_split", c_bool),
        ("dry_run", c_bool),
        ("imatrix", c_void_p),
        ("kv_overrides", c_void_p),
        ("tt_overrides", c_void_p),
        ("prune_layers", c_void_p),
        ("max_buf_size", c_size_t),
    ]


class llama_model_imatrix_data(Structure):
    """include/llama.h of v0.5.0: one importance entry; an array of them ends with name NULL"""
    _fields_ = [("name", c_char_p), ("data", POINTER(c_float)), ("size", c_size_t)]


def load_quantizer(peer):
    """libllama (the peer's binding) with llama_model_quantize and its defaults declared"""
    sys.path.insert(0, os.path.abspath(peer))
    import libllama
    lib = libllama.load(cpu_backend="haswell")
    lib.llama_model_quantize_default_params.restype = llama_model_quantize_params
    lib.llama_model_quantize_default_params.argtypes = []
    lib.llama_model_quantize.restype = c_uint32
    lib.llama_model_quantize.argtypes = [c_char_p, c_char_p, POINTER(llama_model_quantize_params)]
    return lib, libllama.LLAMA_CPP_VERSION


def quantize(lib, src, out, ftype, threads, imatrix=None, pure=False):
    """llama_model_quantize(src, out) to ftype with default parameters, as llama-quantize
    without options; imatrix: {tensor name: float32 numpy array} passed as params.imatrix (what
    llama-quantize --imatrix FILE hands it: per entry the importance, sums / ncall), or None;
    pure: llama-quantize --pure. Returns llama_model_quantize's status (0: done)."""
    p = lib.llama_model_quantize_default_params()
    p.nthread = threads
    p.ftype = ftype
    p.pure = pure
    keep = []  # the arrays and names must outlive the call
    if imatrix is not None:
        entries = (llama_model_imatrix_data * (len(imatrix) + 1))()
        for i, (name, values) in enumerate(sorted(imatrix.items())):
            values = values.astype("<f4", copy=False)
            keep += [values, name.encode()]
            entries[i].name = keep[-1]
            entries[i].data = values.ctypes.data_as(POINTER(c_float))
            entries[i].size = values.size
        entries[len(imatrix)].name = None  # terminator
        keep.append(entries)
        p.imatrix = cast(entries, c_void_p)
    return lib.llama_model_quantize(src.encode(), out.encode(), ctypes.byref(p))


def hash_key(mix, typ):
    """a tensor's bytes depend on its type and on whether an importance was given"""
    return typ + IMATRIX_SUFFIX if mix.endswith(IMATRIX_SUFFIX) else typ


def source_digest(tensors):
    """one hash for a file's tensors: sha256 of its "name type sha256" lines"""
    text = "".join("%s %s %s\n" % (n, t, d) for n, t, _, d in tensors)
    return hashlib.sha256(text.encode()).hexdigest()


def write_fixture(path, doc, header=("generator", "llama_cpp", "shape", "seed",
                                     "source_tensors_sha256")):
    """Compact JSON: the header keys, the tensor names once (llama.cpp's file order), each
    mix's types as one string in that order, and each (tensor, type) pair's sha256 once (a
    pair's bytes do not depend on the mix, only on whether an importance was given: hash_key). One entry a line, so a change reads as a small
    diff."""
    names = [t["name"] for t in next(iter(doc["mixes"].values()))["tensors"]]
    what = doc.get("shape") or doc["model"]
    hashes = {n: {} for n in names}
    for mix, m in doc["mixes"].items():
        if [t["name"] for t in m["tensors"]] != names:
            sys.exit("%s: %s lists other tensors or another order" % (what, mix))
        for t in m["tensors"]:
            old = hashes[t["name"]].setdefault(hash_key(mix, t["type"]), t["sha256"])
            if old != t["sha256"]:
                sys.exit("%s: %s as %s differs between mixes" % (what, t["name"], t["type"]))
    j = json.dumps
    lines = ["{"]
    for k in header:
        lines.append("  %s: %s," % (j(k), j(doc[k])))
    lines.append('  "tensors": [')
    lines += ["    %s%s" % (j(n), "," if i + 1 < len(names) else "") for i, n in enumerate(names)]
    lines.append("  ],")
    lines.append('  "mixes": {')
    mixes = list(doc["mixes"])
    for i, mix in enumerate(mixes):
        m = doc["mixes"][mix]
        lines.append('    %s: {"file_type": %d, "types": %s}%s' % (
            j(mix), m["file_type"], j(" ".join(t["type"] for t in m["tensors"])),
            "," if i + 1 < len(mixes) else ""))
    lines.append("  },")
    lines.append('  "sha256": {')
    for i, n in enumerate(names):
        lines.append("    %s: %s%s" % (j(n), j(hashes[n], sort_keys=True),
                                        "," if i + 1 < len(names) else ""))
    lines.append("  }")
    lines.append("}")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def record_mix(lib, src, work, label, mix, ftype, threads, imatrix=None):
    """llama.cpp's quantization of SRC to ftype (with the importance entries imatrix, if any),
    as a fixture's mix entry: the file type and every tensor's name, type and sha256; exits on
    a failure"""
    out = os.path.join(work, "%s-%s.gguf" % (label, mix))
    rc = quantize(lib, src, out, ftype, threads, imatrix=imatrix)
    if rc != 0:
        sys.exit("llama_model_quantize %s %s failed (%d)" % (label, mix, rc))
    meta, tensors = gguf_tensors.read(out)
    if meta.get("general.file_type") != ftype:
        sys.exit("%s %s: general.file_type %s" % (label, mix, meta.get("general.file_type")))
    os.remove(out)
    return {"file_type": ftype,
            "tensors": [{"name": n, "type": t, "sha256": d} for n, t, _, d in tensors]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quarrel", required=True, help="the quarrel binary (for synth)")
    ap.add_argument("--peer", default=os.path.join(HERE, "..", "..", "..", "shared", "peer"),
                    help="folder of libllama.py")
    ap.add_argument("--out", default=os.path.join(HERE, "data"))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("archs", nargs="*", default=ARCHS)
    a = ap.parse_args()

    lib, llama_cpp_version = load_quantizer(a.peer)

    os.makedirs(a.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mk_mix_refs.") as tmp:
        for arch in a.archs:
            shape = arch + "-mix"
            src = os.path.join(tmp, shape + "-f16.gguf")
            subprocess.run([a.quarrel, "synth", "--shape", shape, "-o", src, "--seed",
                            str(SEED)], check=True, stdout=subprocess.DEVNULL)
            doc = {"generator": "tests/quantize/mk_mix_refs.py",
                   "llama_cpp": llama_cpp_version + ", llama_model_quantize defaults",
                   "shape": shape, "seed": SEED,
                   "source_tensors_sha256": source_digest(gguf_tensors.read(src)[1]),
                   "mixes": {}}
            ents = synth_imatrix.entries(gguf_tensors.read(src)[1])
            todo = [(m, f, None) for m, f in MIXES.items()] + \
                [(m + IMATRIX_SUFFIX, f, ents) for m, f in IMATRIX_MIXES.items()]
            for mix, ftype, im in todo:
                doc["mixes"][mix] = record_mix(lib, src, tmp, shape, mix, ftype, a.threads, im)
            path = os.path.join(a.out, "mix-%s.json" % arch)
            write_fixture(path, doc)
            print("wrote %s (%d mixes)" % (path, len(todo)))


if __name__ == "__main__":
    main()

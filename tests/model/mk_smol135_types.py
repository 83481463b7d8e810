#!/usr/bin/python3
"""mk_smol135_types.py - smol135 in the new tensor types, quantized by llama.cpp (the peer's
llama_model_quantize) or by Quarrel (`quarrel quantize`) from the same F16 source, for the
end-to-end type checks (tests/model/test_reference.c test_smol135_types; references by
mk_smol135_type_refs.sh).

The F16 source is ../shared/models/synth/mk_synth.py's smol135 (bit for bit the source of
smol135-q4_k_m.gguf); the very low-bit variants take tests/quantize/synth_imatrix.py's
importance matrix. Prints the quantized file's tensors digest (name, type and sha256 of every
tensor, as mk_mix_refs.source_digest), so a test can tell that Quarrel's file holds exactly
llama.cpp's tensors.

usage: /usr/bin/python3 tests/model/mk_smol135_types.py VARIANT OUT.gguf WORKDIR
           (--quarrel build/quarrel | --peer ../shared/peer) [--shared ../shared]
VARIANT: one of VARIANTS below. WORKDIR keeps the F16 source and the importance between runs."""

import argparse
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "quantize"))
import gguf_tensors  # noqa: E402
import mk_mix_refs  # noqa: E402
import synth_imatrix  # noqa: E402

# name: (file type, llama.cpp's LLAMA_FTYPE_*, with the importance matrix, --pure)
VARIANTS = {
    "iq4_xs": ("IQ4_XS", 30, False, False),
    "iq3_s": ("IQ3_S", 26, False, False),
    "iq2_xxs": ("IQ2_XXS", 19, True, False),
    "iq1_m": ("IQ1_M", 31, True, False),
    "tq2_0": ("TQ2_0", 37, False, False),
    # smol135 has no experts, so the MXFP4_MOE mix would be q8_0 throughout: --pure makes every
    # weight matrix mxfp4 (576 and 1536 are multiples of its 32-block)
    "mxfp4": ("MXFP4_MOE", 38, False, True),
}


def source(workdir, shared):
    src = os.path.join(workdir, "smol135-f16.gguf")
    if not os.path.exists(src):
        subprocess.run(["/usr/bin/python3", os.path.join(shared, "models", "synth", "mk_synth.py"),
                        "smol135", src + ".tmp.gguf"], check=True, stdout=subprocess.DEVNULL)
        os.rename(src + ".tmp.gguf", src)
    return src


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("variant", choices=sorted(VARIANTS))
    ap.add_argument("out")
    ap.add_argument("workdir")
    ap.add_argument("--quarrel")
    ap.add_argument("--peer")
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"))
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    if bool(a.quarrel) == bool(a.peer):
        sys.exit("give one of --quarrel and --peer")
    ftype, ftype_id, with_imatrix, pure = VARIANTS[a.variant]
    os.makedirs(a.workdir, exist_ok=True)
    src = source(a.workdir, a.shared)
    ents = synth_imatrix.entries(gguf_tensors.read(src)[1]) if with_imatrix else None
    if a.quarrel:
        args = [a.quarrel, "quantize", src, a.out, ftype, "-t", str(a.threads)]
        if ents is not None:
            dat = os.path.join(a.workdir, "smol135-imatrix.dat")
            synth_imatrix.write_dat(dat, ents)
            args += ["--imatrix", dat]
        if pure:
            args.append("--pure")
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL)
    else:
        lib, _ = mk_mix_refs.load_quantizer(a.peer)
        rc = mk_mix_refs.quantize(lib, src, a.out, ftype_id, a.threads, imatrix=ents, pure=pure)
        if rc != 0:
            sys.exit("llama_model_quantize %s failed (%d)" % (ftype, rc))
    print(mk_mix_refs.source_digest(gguf_tensors.read(a.out)[1]))


if __name__ == "__main__":
    main()

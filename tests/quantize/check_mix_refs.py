#!/usr/bin/python3
"""check_mix_refs.py - compare `quarrel quantize` with llama.cpp's mixes recorded by
mk_mix_refs.py: regenerate the fixture's F16 source with `quarrel synth`, check it is the source
llama.cpp quantized (its tensors' hash), quantize it to every recorded mix and compare tensor by
tensor: the same names in the same order, the same type, the same bytes (sha256).

usage: check_mix_refs.py QUARREL FIXTURE.json WORKDIR [MIX ...]
Prints one line per difference and exits 1 if there is any."""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_tensors  # noqa: E402
import synth_imatrix  # noqa: E402
from mk_mix_refs import IMATRIX_SUFFIX, hash_key, source_digest  # noqa: E402


def read_args(usage):
    """QUARREL FIXTURE.json WORKDIR [MIX ...] from the command line (else exits with usage): the
    quarrel path, the fixture's path, its contents, the work folder and the mixes to check"""
    if len(sys.argv) < 4:
        sys.exit(usage)
    quarrel, fixture, work = sys.argv[1:4]
    with open(fixture) as f:
        ref = json.load(f)
    return quarrel, fixture, ref, work, set(sys.argv[4:])


def main():
    quarrel, fixture, ref, work, only = read_args(__doc__)
    shape = ref["shape"]
    src = os.path.join(work, shape + "-f16.gguf")
    subprocess.run([quarrel, "synth", "--shape", shape, "-o", src, "--seed", str(ref["seed"])],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    got = source_digest(gguf_tensors.read(src)[1])
    if got != ref["source_tensors_sha256"]:
        print("%s: `quarrel synth --shape %s` no longer writes the source llama.cpp quantized "
              "(tensors hash %s, fixture %s): regenerate the fixture with mk_mix_refs.py"
              % (fixture, shape, got, ref["source_tensors_sha256"]))
        return 1
    return 1 if compare_mixes(quarrel, src, ref, shape, work, only) else 0


def compare_mixes(quarrel, src, ref, label, work, only=(), extra_args=()):
    """`quarrel quantize SRC OUT MIX [extra_args]` for each of ref's mixes (those in only, if
    any), compared with ref tensor by tensor; prints a line per difference and returns their
    number"""
    names = ref["tensors"]
    imatrix = os.path.join(work, label + "-imatrix.dat")  # for the "+imatrix" mixes
    if any(mix.endswith(IMATRIX_SUFFIX) for mix in ref["mixes"]):
        synth_imatrix.write_dat(imatrix, synth_imatrix.entries(gguf_tensors.read(src)[1]))
    n_diff = 0
    for mix, m in ref["mixes"].items():
        if only and mix not in only:
            continue
        out = os.path.join(work, "%s-%s.gguf" % (label, mix))
        args = [quarrel, "quantize", src, out, mix.replace(IMATRIX_SUFFIX, ""), "-t", "2"]
        if mix.endswith(IMATRIX_SUFFIX):
            args += ["--imatrix", imatrix]
        r = subprocess.run(args + list(extra_args),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            print("%s %s: quarrel quantize failed: %s" % (label, mix, r.stderr.strip()))
            n_diff += 1
            continue
        meta, tensors = gguf_tensors.read(out)
        os.remove(out)
        if meta.get("general.file_type") != m["file_type"]:
            print("%s %s: general.file_type %s, llama.cpp %d"
                  % (label, mix, meta.get("general.file_type"), m["file_type"]))
            n_diff += 1
        if [t[0] for t in tensors] != names:
            print("%s %s: tensor names or order differ: %s" % (label, mix, [t[0] for t in tensors]))
            n_diff += 1
            continue
        for (name, typ, _, digest), want in zip(tensors, m["types"].split()):
            if typ != want:
                print("%s %s: %s is %s, llama.cpp %s" % (label, mix, name, typ, want))
                n_diff += 1
            elif digest != ref["sha256"][name][hash_key(mix, want)]:
                print("%s %s: %s (%s): bytes differ from llama.cpp's" % (label, mix, name, typ))
                n_diff += 1
    return n_diff


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/python3
"""check_imatrix_refs.py - compare `quarrel quantize --imatrix` with llama.cpp's quantization
with the same importance, recorded by mk_imatrix_refs.py: get the fixture's source (the shared
model, or `quarrel synth`), check it is the one llama.cpp quantized (its tensors' hash), write
the synthetic importance as a legacy imatrix.dat and check it too (the file's hash), then
quantize to every recorded mix with --imatrix and compare tensor by tensor: the same names in
the same order, the same type, the same bytes (sha256).

usage: check_imatrix_refs.py QUARREL FIXTURE.json WORKDIR [MIX ...]
Prints one line per difference and exits 1 if there is any."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gguf_tensors  # noqa: E402
from check_mix_refs import compare_mixes, read_args  # noqa: E402
from mk_imatrix_refs import importance_entries, source_path, write_imatrix_dat  # noqa: E402
from mk_mix_refs import source_digest  # noqa: E402


def main():
    quarrel, fixture, ref, work, only = read_args(__doc__)
    model = ref["model"]
    src = source_path(model, work, quarrel)
    got = source_digest(gguf_tensors.read(src)[1])
    if got != ref["source_tensors_sha256"]:
        print("%s: the source of %s is not the one llama.cpp quantized (tensors hash %s, "
              "fixture %s): regenerate the fixture with mk_imatrix_refs.py"
              % (fixture, model, got, ref["source_tensors_sha256"]))
        return 1
    dat = os.path.join(work, model + ".imatrix.dat")
    entries = importance_entries(src)
    got = write_imatrix_dat(entries, dat)
    if got != ref["imatrix_dat_sha256"] or len(entries) != ref["imatrix_entries"]:
        print("%s: the importance of %s is not the one llama.cpp used (%d entries, imatrix.dat "
              "sha256 %s; fixture %d, %s)" % (fixture, model, len(entries), got,
                                              ref["imatrix_entries"], ref["imatrix_dat_sha256"]))
        return 1
    return 1 if compare_mixes(quarrel, src, ref, model, work, only, ["--imatrix", dat]) else 0


if __name__ == "__main__":
    sys.exit(main())

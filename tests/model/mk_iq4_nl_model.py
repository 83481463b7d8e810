#!/usr/bin/python3
"""mk_iq4_nl_model.py - stories260K quantized to IQ4_NL by llama.cpp (the peer's
llama_model_quantize, default parameters: as `llama-quantize IN OUT IQ4_NL`), the model of the
IQ4_NL end-to-end check (tests/model/test_reference.c, stories260K-iq4_nl). Needs the peer
(../shared/peer/README.md); reuses mk_mix_refs.py's ctypes binding.

usage: /usr/bin/python3 tests/model/mk_iq4_nl_model.py OUT.gguf
           [--source ../shared/models/stories260K.gguf] [--peer ../shared/peer]"""

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "quantize"))
import mk_mix_refs  # noqa: E402

LLAMA_FTYPE_MOSTLY_IQ4_NL = 25  # include/llama.h


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--source", default=os.path.join(HERE, "..", "..", "..", "shared", "models",
                                                     "stories260K.gguf"))
    ap.add_argument("--peer", default=os.path.join(HERE, "..", "..", "..", "shared", "peer"))
    a = ap.parse_args()
    lib, _ = mk_mix_refs.load_quantizer(a.peer)
    rc = mk_mix_refs.quantize(lib, a.source, a.out, LLAMA_FTYPE_MOSTLY_IQ4_NL, 1)
    if rc != 0:
        sys.exit("llama_model_quantize failed (%d)" % rc)


if __name__ == "__main__":
    main()

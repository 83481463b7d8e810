#!/usr/bin/env python3
"""Regenerates tests/tokenizer/data/gpt4o.out: llama.cpp's token ids for the texts of
tests/tokenizer/data/gpt4o.inp (test-tokenizer-0 format) with the "gpt-4o" pre-tokenizer
(gpt-oss, llama4). No vocabulary with that pre-tokenizer is in ../shared, so the test takes
../shared/tokenizer-vectors/ggml-vocab-qwen2.gguf and sets tokenizer.ggml.pre to "gpt-4o"
(test_vectors.c does the same with Quarrel's GGUF writer); this script writes that file with
the key replaced and runs ../shared/peer/llamaref.py --tokenize-only on it.

usage: /usr/bin/python3 tests/tokenizer/mk_gpt4o_refs.py   (QR_SHARED_DIR: default /work/shared)
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("QR_SHARED_DIR", "/work/shared")
SRC = os.path.join(SHARED, "tokenizer-vectors", "ggml-vocab-qwen2.gguf")
PRE = "gpt-4o"

SIZES = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}  # GGUF scalar types


def skip_value(b, off, typ):
    if typ == 8:  # string
        (n,) = struct.unpack_from("<Q", b, off)
        return off + 8 + n
    if typ == 9:  # array: element type, count, elements
        et, n = struct.unpack_from("<IQ", b, off)
        off += 12
        if et == 8:
            for _ in range(n):
                off = skip_value(b, off, 8)
            return off
        return off + SIZES[et] * n
    return off + SIZES[typ]


def with_pre(b, pre):
    """the GGUF bytes b with tokenizer.ggml.pre set to pre (a file without tensors)"""
    magic, version, n_tensors, n_kv = struct.unpack_from("<4sIQQ", b, 0)
    assert magic == b"GGUF" and n_tensors == 0, "expected a vocabulary-only GGUF"
    off = 24
    for _ in range(n_kv):
        (klen,) = struct.unpack_from("<Q", b, off)
        key = b[off + 8:off + 8 + klen].decode()
        off += 8 + klen
        (typ,) = struct.unpack_from("<I", b, off)
        off += 4
        end = skip_value(b, off, typ)
        if key == "tokenizer.ggml.pre":
            assert typ == 8
            v = pre.encode()
            return b[:off] + struct.pack("<Q", len(v)) + v + b[end:]
        off = end
    raise SystemExit("no tokenizer.ggml.pre in " + SRC)


def main():
    with open(SRC, "rb") as f:
        data = with_pre(f.read(), PRE)
    with tempfile.TemporaryDirectory() as tmp:
        vocab = os.path.join(tmp, "ggml-vocab-gpt4o.gguf")
        with open(vocab, "wb") as f:
            f.write(data)
        prefix = os.path.join(tmp, "ref")
        subprocess.run([sys.executable, os.path.join(SHARED, "peer", "llamaref.py"), vocab,
                        "--out", prefix, "--tokenize-only", os.path.join(HERE, "data", "gpt4o.inp"),
                        "--no-add-special"], check=True)
        with open(prefix + ".tokens.json") as f:
            ref = json.load(f)
    lines = ref["lines"]
    if lines and lines[-1]["text"] == "":  # the split after the last separator
        lines = lines[:-1]
    with open(os.path.join(HERE, "data", "gpt4o.out"), "w") as f:
        for line in lines:
            f.write(" ".join(str(t) for t in line["ids"]) + "\n")
    print("gpt4o.out: %d texts, llama.cpp %s" % (len(lines), ref["llama_cpp"]))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Make tests/tensor/data/quantize_importance.ref, the expected values of
test_quantize_importance.c: ggml's own bytes for the legacy and k-quant types quantized with and
without an importance matrix (imatrix), one sha256 per quantized row.

Everything is computed by the peer's libggml-base.so (llama.cpp v0.5.0 prebuilt, see
../shared/peer/README.md) through ctypes: ggml_quantize_chunk(type, source, dst, 0, rows,
n_per_row, imatrix), i.e. ggml's quantize_q4_0 ... quantize_q6_K, which take the
importance-weighted paths (quantize_row_*_impl) when imatrix is given and the reference
quantizers (quantize_row_*_ref) when it is NULL. Nothing comes from Quarrel.

Two inputs ("cases"):
  alltypes-iq  `source` (12 x 512) and `imatrix` (512) of ../shared/reference/alltypes-iq.gguf
  synth        6 rows x 1536 from an integer xorshift64 (see synth_case; the C test makes the
               same floats): heavy-tailed values m * 2^e, rows scaled by 2^(r-2), a sparse row,
               an all-zero block, outliers; a heavy-tailed importance with zeros, including a
               zero 16-block, a zero 32-block and a whole zero super-block
Each case line records the sha256 of the source and importance bytes (f32 little-endian), so the
test can tell a changed input from a changed quantizer.

Output lines (text): "case NAME ROWS N_PER_ROW SOURCE_SHA256 IMATRIX_SHA256", then
"NAME TYPE imatrix|none ROW SHA256" per row.

Run: /usr/bin/python3 tests/tensor/mk_kquant_imatrix_refs.py [OUT]
(LLAMAREF_BIN_DIR picks the llama.cpp libraries, as for libllama.py; needs numpy.)
"""

import ctypes
import hashlib
import os
import sys
from ctypes import POINTER, c_float, c_int, c_int64, c_size_t, c_void_p

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "..", "shared")
BIN_DIR = os.environ.get("LLAMAREF_BIN_DIR",
                         "/tmp/peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64")
LLAMA_CPP = "llama.cpp v0.5.0 prebuilt (node-llama-cpp 3.22.1: libggml-base)"
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "data", "quantize_importance.ref")

sys.path.insert(0, os.path.join(SHARED, "models", "synth"))
import gguf  # noqa: E402  (../shared/models/synth/gguf.py)

# ggml type ids (ggml.h), in the order of the output
TYPES = [("q4_0", 2), ("q4_1", 3), ("q5_0", 6), ("q5_1", 7), ("q2_K", 10), ("q3_K", 11),
         ("q4_K", 12), ("q5_K", 13), ("q6_K", 14)]

MASK64 = (1 << 64) - 1


class Xorshift64:
    """xorshift64 (13, 7, 17): integers only, so the C test reproduces the stream exactly"""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        s = self.s
        s ^= (s << 13) & MASK64
        s ^= s >> 7
        s ^= (s << 17) & MASK64
        self.s = s
        return s


def trailing_zeros(v):
    return (v & -v).bit_length() - 1


SYNTH_ROWS, SYNTH_N = 6, 1536
SYNTH_SEED_X, SYNTH_SEED_W = 0x2545F4914F6CDD1D, 0x9E3779B97F4A7C15


def synth_case():
    """Every value is an integer of at most 11 bits times a power of two, so float32 holds it
    exactly and C's ldexpf gives the same float. Values: m in [-1024, 1023] times 2^(t-16), t
    the trailing zeros of 8 random bits (P(t >= k) = 2^-k: a heavy tail), row r times 2^(r-2);
    row 3 has the 32-block 768..799 zero, row 4 keeps 1 value in 10, row 5 has +-300 at every
    509th column. Importance: (k + 1) * 2^(t-12), k 10 random bits, t trailing zeros of 10
    bits; zero at columns j % 7 == 3, 256..271, 512..543 and 1280..1535."""
    g = Xorshift64(SYNTH_SEED_X)
    x = np.zeros((SYNTH_ROWS, SYNTH_N), dtype=np.float32)
    for r in range(SYNTH_ROWS):
        for j in range(SYNTH_N):
            v = g.next()
            m = (v & 0x7FF) - 1024
            t = trailing_zeros((v >> 11) | 0x100)
            val = float(m) * 2.0 ** (t - 16 + r - 2)
            if r == 3 and 768 <= j < 800:
                val = 0.0
            if r == 4 and (v >> 40) % 10 != 0:
                val = 0.0
            if r == 5 and j % 509 == 0:
                val = 300.0 if (v >> 63) else -300.0
            x[r, j] = val
    g = Xorshift64(SYNTH_SEED_W)
    w = np.zeros(SYNTH_N, dtype=np.float32)
    for j in range(SYNTH_N):
        v = g.next()
        k = v & 0x3FF
        t = trailing_zeros((v >> 10) | 0x400)
        val = float(k + 1) * 2.0 ** (t - 12)
        if j % 7 == 3 or 256 <= j < 272 or 512 <= j < 544 or j >= 1280:
            val = 0.0
        w[j] = val
    return x, w


def main():
    base = ctypes.CDLL(os.path.join(BIN_DIR, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
    base.ggml_quantize_chunk.restype = c_size_t
    base.ggml_quantize_chunk.argtypes = [c_int, POINTER(c_float), c_void_p, c_int64, c_int64,
                                         c_int64, POINTER(c_float)]
    base.ggml_row_size.restype = c_size_t
    base.ggml_row_size.argtypes = [c_int, c_int64]

    src = gguf.GGUFReader(os.path.join(SHARED, "reference", "alltypes-iq.gguf"))
    cases = [("alltypes-iq",
              np.ascontiguousarray(src.tensor("source").numpy(), dtype=np.float32),
              np.ascontiguousarray(src.tensor("imatrix").numpy(), dtype=np.float32))]
    cases.append(("synth",) + synth_case())

    sha = lambda b: hashlib.sha256(b).hexdigest()  # noqa: E731
    lines = ["# quantize_importance.ref - expected values of tests/tensor/test_quantize_importance.c",
             "# made by tests/tensor/mk_kquant_imatrix_refs.py with " + LLAMA_CPP,
             "# ggml_quantize_chunk with the importance (imatrix) and without (none): sha256 of",
             "# each quantized row; case lines: rows, n_per_row, sha256 of the f32 source and",
             "# importance"]
    for name, x, w in cases:
        rows, n = x.shape
        assert w.shape == (n,)
        lines.append("case %s %d %d %s %s" % (name, rows, n, sha(x.tobytes()), sha(w.tobytes())))
        for tname, tid in TYPES:
            row_bytes = base.ggml_row_size(tid, n)
            for mode in ("imatrix", "none"):
                out = np.zeros(rows * row_bytes, dtype=np.uint8)
                imp = w.ctypes.data_as(POINTER(c_float)) if mode == "imatrix" else None
                got = base.ggml_quantize_chunk(tid, x.ctypes.data_as(POINTER(c_float)),
                                               out.ctypes.data_as(c_void_p), 0, rows, n, imp)
                if got != rows * row_bytes:
                    sys.exit("ggml_quantize_chunk %s: %d bytes, not %d" % (tname, got,
                                                                           rows * row_bytes))
                for r in range(rows):
                    row = out[r * row_bytes:(r + 1) * row_bytes].tobytes()
                    lines.append("%s %s %s %d %s" % (name, tname, mode, r, sha(row)))
    with open(OUT, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("wrote %s (%d lines)" % (OUT, len(lines)))


if __name__ == "__main__":
    main()

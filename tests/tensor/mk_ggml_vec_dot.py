#!/usr/bin/env python3
"""Make tests/tensor/data/ggml_vec_dot.ref, a GGUF file (not named .gguf: .gitignore drops
those): ggml's own activation quantisation and dot products on
../shared/reference/alltypes.gguf, the expected values of test_vec_dot.c.

Everything in the output is computed by the peer llama.cpp (v0.5.0 prebuilt, see
../shared/peer/README.md), called through ctypes; nothing comes from Quarrel:
  act.<t>        for t in f16, bf16, q8_0, q8_1, q8_K: ggml's reference conversion of the
                 8 rows of alltypes' `source` (ggml_fp32_to_fp16_row,
                 ggml_fp32_to_bf16_row_ref, quantize_row_q8_0_ref/q8_1_ref/q8_K_ref)
  dot.<w>        F32 [8 x 8] for each weight type w of alltypes: element (j, i) is ggml's
                 scalar dot product of weight row i (alltypes' tensor `w`) with activation
                 row j (act.<vec_dot_type of w>): ggml_vec_dot_<w>_<vdt>_generic for the
                 quantised types, the haswell CPU backend's vec_dot for f32/f16/bf16
  dot.<w>.cpu    the same through the haswell (AVX2) CPU backend's type_traits_cpu vec_dot,
                 the one llama.cpp's reference runs use
  metadata ggml.vec_dot_type.<w>, ggml.blck_size.<t>, ggml.type_size.<t>: ggml's traits.

Run: /usr/bin/python3 tests/tensor/mk_ggml_vec_dot.py [ALLTYPES.gguf] [OUT.ref]
(needs numpy, /tmp/peer installed, and gguf-py from /tmp/peer/llama-src).
"""

import ctypes
import os
import sys
from ctypes import (CFUNCTYPE, POINTER, Structure, c_bool, c_char_p, c_float, c_int, c_int64,
                    c_size_t, c_void_p)

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
BIN_DIR = os.environ.get("LLAMAREF_BIN_DIR",
                         "/tmp/peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64")
sys.path.insert(0, os.environ.get("GGUF_PY", "/tmp/peer/llama-src/gguf-py"))
import gguf  # noqa: E402

ALLTYPES = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    HERE, "..", "..", "..", "shared", "reference", "alltypes.gguf")
OUT = sys.argv[2] if len(sys.argv) > 2 else os.path.join(HERE, "data", "ggml_vec_dot.ref")

TYPE_IDS = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8,
            "q8_1": 9, "q2_K": 10, "q3_K": 11, "q4_K": 12, "q5_K": 13, "q6_K": 14, "q8_K": 15,
            "bf16": 30}
TYPE_NAMES = {v: k for k, v in TYPE_IDS.items()}
WEIGHTS = ["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "q2_K", "q3_K",
           "q4_K", "q5_K", "q6_K"]
ACTS = ["f16", "bf16", "q8_0", "q8_1", "q8_K"]
# ggml's reference converters (q8_K has no from_float_ref in the base traits; call it by name)
ACT_REF = {"f16": "ggml_fp32_to_fp16_row", "bf16": "ggml_fp32_to_bf16_row_ref",
           "q8_0": "quantize_row_q8_0_ref", "q8_1": "quantize_row_q8_1_ref",
           "q8_K": "quantize_row_q8_K_ref"}

VEC_DOT = CFUNCTYPE(None, c_int, POINTER(c_float), c_size_t, c_void_p, c_size_t, c_void_p,
                    c_size_t, c_int)


class TypeTraits(Structure):  # ggml.h struct ggml_type_traits
    _fields_ = [("type_name", c_char_p), ("blck_size", c_int64),
                ("blck_size_interleave", c_int64), ("type_size", c_size_t),
                ("is_quantized", c_bool), ("to_float", c_void_p), ("from_float_ref", c_void_p)]


class TypeTraitsCpu(Structure):  # ggml-cpu.h struct ggml_type_traits_cpu
    _fields_ = [("from_float", c_void_p), ("vec_dot", c_void_p), ("vec_dot_type", c_int),
                ("nrows", c_int64)]


base = ctypes.CDLL(os.path.join(BIN_DIR, "libggml-base.so"), mode=ctypes.RTLD_GLOBAL)
cpu = ctypes.CDLL(os.path.join(BIN_DIR, "libggml-cpu-haswell.so"))
base.ggml_get_type_traits.restype = POINTER(TypeTraits)
base.ggml_get_type_traits.argtypes = [c_int]
cpu.ggml_get_type_traits_cpu.restype = POINTER(TypeTraitsCpu)
cpu.ggml_get_type_traits_cpu.argtypes = [c_int]
cpu.ggml_cpu_init()


def fptr(proto, addr):
    return proto(addr)


def as_float_ptr(a):
    return a.ctypes.data_as(POINTER(c_float))


src = gguf.GGUFReader(ALLTYPES)
tensors = {t.name: t for t in src.tensors}
source = np.ascontiguousarray(np.array(tensors["source"].data, dtype=np.float32).reshape(8, 512))
n_rows, n = source.shape

w = gguf.GGUFWriter(OUT, arch="quarrel-test")
w.add_string("quarrel.made_by", "tests/tensor/mk_ggml_vec_dot.py, llama.cpp v0.5.0 prebuilt "
             "(node-llama-cpp 3.22.1: libggml-base, libggml-cpu-haswell)")

for name, tid in TYPE_IDS.items():
    t = base.ggml_get_type_traits(tid).contents
    assert t.type_name.decode() == name, (name, t.type_name)
    w.add_uint32(f"ggml.blck_size.{name}", t.blck_size)
    w.add_uint32(f"ggml.type_size.{name}", t.type_size)

acts = {}
for name in ACTS:
    tid = TYPE_IDS[name]
    t = base.ggml_get_type_traits(tid).contents
    row_bytes = n // t.blck_size * t.type_size
    out = np.zeros((n_rows, row_bytes), dtype=np.uint8)
    conv = getattr(base, ACT_REF[name])
    conv.restype = None
    conv.argtypes = [POINTER(c_float), c_void_p, c_int64]
    for r in range(n_rows):
        row = np.ascontiguousarray(source[r])
        conv(as_float_ptr(row), out[r].ctypes.data, n)
    acts[name] = out
    w.add_tensor(f"act.{name}", out, raw_dtype=gguf.GGMLQuantizationType(tid))
acts["f32"] = source.view(np.uint8).reshape(n_rows, n * 4)


def generic_dot(name, vdt):
    if name in ("f32", "f16", "bf16"):  # no _generic symbol: the haswell build's own
        return getattr(cpu, f"ggml_vec_dot_{name}")
    return getattr(cpu, f"ggml_vec_dot_{name}_{vdt}_generic")


for name in WEIGHTS:
    tid = TYPE_IDS[name]
    tc = cpu.ggml_get_type_traits_cpu(tid).contents
    vdt = TYPE_NAMES[tc.vec_dot_type]
    w.add_uint32(f"ggml.vec_dot_type.{name}", tc.vec_dot_type)
    wt = tensors[name]
    assert int(wt.tensor_type) == tid
    wdata = np.ascontiguousarray(np.array(wt.data).view(np.uint8).reshape(n_rows, -1))
    y = acts[vdt]
    cpu_dot = fptr(VEC_DOT, tc.vec_dot)
    gen = generic_dot(name, vdt)
    gen.restype = None
    gen.argtypes = [c_int, POINTER(c_float), c_size_t, c_void_p, c_size_t, c_void_p, c_size_t,
                    c_int]
    d_gen = np.zeros((n_rows, n_rows), dtype=np.float32)
    d_cpu = np.zeros((n_rows, n_rows), dtype=np.float32)
    s = c_float()
    for j in range(n_rows):
        for i in range(n_rows):
            gen(n, ctypes.byref(s), 0, wdata[i].ctypes.data, 0, y[j].ctypes.data, 0, 1)
            d_gen[j, i] = s.value
            cpu_dot(n, ctypes.byref(s), 0, wdata[i].ctypes.data, 0, y[j].ctypes.data, 0, 1)
            d_cpu[j, i] = s.value
    w.add_tensor(f"dot.{name}", d_gen)
    w.add_tensor(f"dot.{name}.cpu", d_cpu)
    print(f"{name:5s} vec_dot_type {vdt:5s} max|generic-cpu| "
          f"{np.max(np.abs(d_gen - d_cpu)):.3g}  max|dot| {np.max(np.abs(d_gen)):.3g}")

w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
print("wrote", OUT)

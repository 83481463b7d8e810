#!/usr/bin/env python3
"""stories260K with a `rope_freqs.weight` tensor (Llama 3.1-style per-dimension RoPE frequency
factors [1, 2, 4, 8] for its 8 rotary dimensions), written deterministically with the shared
GGUF writer. tests/model/test_rope_freqs.c evaluates it against llama.cpp's output on the same
file (tests/model/data/stories260K-rope-freqs.json, made by ../shared/peer/llamaref.py).

usage: /usr/bin/python3 mk_rope_freqs_model.py SHARED_DIR OUT.gguf
"""
import sys
sys.dont_write_bytecode = True
shared, out = sys.argv[1], sys.argv[2]
sys.path.insert(0, shared + "/models/synth")
import numpy as np  # noqa: E402
import gguf  # noqa: E402

r = gguf.GGUFReader(shared + "/models/stories260K.gguf")
w = gguf.GGUFWriter(out)
for key in r.kv:
    if key != "general.alignment":
        w.copy_kv_from(r, key)
for t in r.tensors:
    w.add_tensor(t.name, t.data, t.type, t.shape)
w.add_tensor("rope_freqs.weight", np.array([1.0, 2.0, 4.0, 8.0], dtype="<f4"), 0, [4])
w.write()

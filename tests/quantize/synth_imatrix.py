"""synth_imatrix.py - a deterministic importance matrix for a model, for comparing quantizers
with an importance (mk_mix_refs.py hands it to llama.cpp's llama_model_quantize, check_mix_refs.py
writes it as a legacy imatrix.dat for `quarrel quantize --imatrix`).

One entry per weight matrix of the model (every tensor of 2 or more dimensions whose name ends
in "weight" and is not a norm), token_embd and output included, ne0 x ne2 values each:
lognormal(0, 1) from a generator seeded by the tensor's name, with every 37th value exactly 0
(columns a real imatrix never saw). Written with ncall = 1, so the importance Quarrel reads
(sums / ncall) is exactly the float32 llama.cpp is given. Needs numpy."""

import hashlib
import struct

import numpy as np


def entries(tensors):
    """{name: float32 array} for gguf_tensors.read()'s tensor list"""
    out = {}
    for name, _, ne, _ in tensors:
        if len(ne) < 2 or not name.endswith("weight") or "_norm." in name:
            continue
        n = ne[0] * (ne[2] if len(ne) > 2 else 1)
        seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
        v = np.random.Generator(np.random.PCG64(seed)).lognormal(0.0, 1.0, n).astype(np.float32)
        v[::37] = 0.0
        out[name] = v
    return out


def write_dat(path, ents):
    """llama-imatrix's legacy format: entries with ncall 1, then the chunk count and dataset"""
    with open(path, "wb") as f:
        f.write(struct.pack("<i", len(ents)))
        for name, v in ents.items():
            b = name.encode()
            f.write(struct.pack("<i", len(b)) + b + struct.pack("<ii", 1, len(v)))
            f.write(np.asarray(v, dtype="<f4").tobytes())
        ds = b"synth_imatrix.py"
        f.write(struct.pack("<ii", 1, len(ds)) + ds)

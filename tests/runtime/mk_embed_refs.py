#!/usr/bin/env python3
"""mk_embed_refs.py - llama.cpp's embeddings, the reference for tests/runtime/test_embed.c.

For each model and text below, the peer (llama.cpp, ../shared/peer) evaluates the text as one
sequence (BOS as the vocabulary adds it, special tokens not parsed) in a context with
embeddings on and each pooling type (none: every token's row; mean, cls, last: the sequence's
pooled vector, llama_get_embeddings_seq), without normalisation.

The canonical run is the one of ../shared/reference (CPU variant haswell, flash attention off,
no repacking, 1 thread, the text in one batch). The tolerance is measured the way
../shared/reference/README.md measures it: twice the largest difference of any value between
the canonical run and llama.cpp's other valid configurations (zen4 defaults, generic x64,
flash attention on, repacking on), per model.

  /usr/bin/python3 tests/runtime/mk_embed_refs.py [--shared ../shared]

writes tests/runtime/embed_refs.json.
"""

import argparse
import json
import os
import subprocess
import sys
from ctypes import c_float, c_int32, c_void_p, POINTER

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["stories260K.gguf", "smol135-q4_k_m.gguf", "qwen2-tiny-q8_0.gguf"]
TEXTS = ["Once upon a time", "The cat sat on the mat and looked at the big red ball.", "a"]
POOLING = {"none": 0, "mean": 1, "cls": 2, "last": 3}
CONFIGS = {  # name: (cpu backend, flash attention, repack)
    "canonical": ("haswell", "off", False),
    "zen4-defaults": (None, "auto", True),
    "x64-generic": ("x64", "off", False),
    "flash-attn-on": ("haswell", "on", False),
    "repack-on": ("haswell", "off", True),
}


def run_config(shared, name):
    sys.path.insert(0, os.path.join(shared, "peer"))
    import libllama
    backend, fa, repack = CONFIGS[name]
    L = libllama.load(cpu_backend=backend)
    P = c_void_p
    for fn, res, argt in (("llama_get_embeddings_seq", POINTER(c_float), [P, c_int32]),
                          ("llama_get_embeddings_ith", POINTER(c_float), [P, c_int32])):
        f = getattr(L, fn)
        f.restype = res
        f.argtypes = argt
    out = {}
    for mfile in MODELS:
        model = libllama.Model(os.path.join(shared, "models", mfile), repack=repack)
        n_embd = L.llama_model_n_embd(model.ptr)
        for pname, ptype in POOLING.items():
            for ti, text in enumerate(TEXTS):
                toks = model.tokenize(text, add_special=True, parse_special=False)
                ctx = libllama.Context(model, n_ctx=256, n_threads=1, flash_attn=fa)
                ctx.free()
                cp = ctx.params
                cp.embeddings = True
                cp.pooling_type = ptype
                ptr = L.llama_init_from_model(model.ptr, cp)
                if not ptr:
                    raise RuntimeError("context with embeddings failed")
                ctx.ptr = ptr
                batch = libllama.Batch(L, len(toks))
                batch.set((t, i, 0, True) for i, t in enumerate(toks))
                if L.llama_decode(ptr, batch.b) != 0:
                    raise RuntimeError("decode failed")
                if ptype == 0:
                    rows = []
                    for i in range(len(toks)):
                        e = L.llama_get_embeddings_ith(ptr, i)
                        rows.append([float(e[j]) for j in range(n_embd)])
                else:
                    e = L.llama_get_embeddings_seq(ptr, 0)
                    rows = [[float(e[j]) for j in range(n_embd)]]
                out["%s|%s|%d" % (mfile, pname, ti)] = {"tokens": toks, "rows": rows}
                batch.free()
                ctx.free()
        model.free()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"))
    ap.add_argument("--config")
    args = ap.parse_args()
    if args.config:  # one configuration per process: ggml loads one CPU variant
        json.dump(run_config(args.shared, args.config), sys.stdout)
        return
    runs = {}
    for name in CONFIGS:
        p = subprocess.run([sys.executable, __file__, "--shared", args.shared, "--config", name],
                           check=True, capture_output=True)
        runs[name] = json.loads(p.stdout)
    canon = runs["canonical"]
    spread = {m: {} for m in MODELS}
    for name, r in runs.items():
        if name == "canonical":
            continue
        for key, v in r.items():
            m = key.split("|")[0]
            d = max(abs(a - b) for ra, rb in zip(v["rows"], canon[key]["rows"])
                    for a, b in zip(ra, rb))
            spread[m][name] = max(spread[m].get(name, 0.0), d)
    out = {"peer": "llama.cpp v0.5.0 (node-llama-cpp 3.22.1 prebuilt, CPU)",
           "settings": "canonical: cpu haswell, flash attention off, no repack, 1 thread, "
                       "one batch; embeddings on, pooling per case, not normalised",
           "texts": TEXTS,
           "tolerance": {m: {"abs": 2 * max(s.values()), "llama_cpp_spread": s}
                         for m, s in spread.items()},
           "cases": []}
    for key, v in canon.items():
        m, pname, ti = key.split("|")
        out["cases"].append({"model": m, "pooling": pname, "text": TEXTS[int(ti)],
                             "tokens": v["tokens"],
                             "rows": [[round(x, 7) for x in row] for row in v["rows"]]})
    with open(os.path.join(HERE, "embed_refs.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    for m, t in out["tolerance"].items():
        print(m, t)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""mk_grammar_refs.py - llama.cpp's greedy generation under a grammar, the reference for
tests/grammar/test_grammar_greedy.c.

For every case of greedy_cases.json ({name, model, prompt, n_gen, and either grammar (GBNF
text) or schema (a JSON schema, converted to GBNF by llama.cpp's own converter through
peer_schema_to_grammar.cpp)}) this runs the peer at the canonical settings of
../shared/reference (CPU variant haswell, flash attention off, no repacking, F16 KV cache, the
prompt in one batch, 1 thread) with llama.cpp's grammar sampler (llama_sampler_init_grammar)
applied to the full logits, then a greedy pick among the tokens it leaves, as a sampler chain
"grammar, greedy" does. It records, per step, the chosen id, the gap between the best and the
second-best allowed logits (gap12; 1e30 when one token is allowed), how many tokens were
allowed and which (allowed_fnv1a: the 64-bit FNV-1a hash of the allowed ids, ascending, each
as 4 little-endian bytes; the set along llama.cpp's own path); generation stops at an end-of-generation token or after n_gen tokens.

  /usr/bin/python3 tests/grammar/mk_grammar_refs.py [--shared ../shared] [--s2g PATH]

Writes tests/grammar/greedy_refs.json (the grammar text of every case included, so the test
needs nothing else). Needs the peer installed as ../shared/peer/README.md says, and g++ with
/tmp/llama-src (the peer's source) for the schema cases.
"""

import argparse
import ctypes
import hashlib
import json
import math
import os
import subprocess
import sys
from ctypes import POINTER, Structure, c_bool, c_char_p, c_float, c_int32, c_int64, c_size_t, c_void_p

HERE = os.path.dirname(os.path.abspath(__file__))


class TokenData(Structure):
    _fields_ = [("id", c_int32), ("logit", c_float), ("p", c_float)]


class TokenDataArray(Structure):
    _fields_ = [("data", POINTER(TokenData)), ("size", c_size_t), ("selected", c_int64),
                ("sorted", c_bool)]


def fnv1a_ids(ids):
    h = 0xcbf29ce484222325
    for t in ids:
        for b in t.to_bytes(4, "little"):
            h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return h


def build_s2g(path):
    b = "/tmp/peer/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
    src = os.path.join(HERE, "peer_schema_to_grammar.cpp")
    inc = ["-I/tmp/llama-src/" + d for d in ("common", "include", "ggml/include", "vendor")]
    subprocess.check_call(["g++", "-std=c++17", "-O1"] + inc +
                          [src, "-o", path, "-L" + b, "-lllama-common", "-Wl,-rpath," + b])


def schema_grammar(s2g, schema):
    return subprocess.run([s2g], input=json.dumps(schema).encode(), check=True,
                          capture_output=True).stdout.decode()


def run_case(libllama, L, model, case, grammar):
    ctx = libllama.Context(model, n_ctx=512, n_threads=1, flash_attn="off")
    toks = model.tokenize(case["prompt"], add_special=True, parse_special=False)
    smpl = L.llama_sampler_init_grammar(model.vocab, grammar.encode(), b"root")
    if not smpl:
        raise RuntimeError("%s: llama.cpp refused the grammar" % case["name"])
    n_vocab = model.n_vocab
    arr = (TokenData * n_vocab)()
    batch = libllama.Batch(L, 512)
    batch.set((t, i, 0, i == len(toks) - 1) for i, t in enumerate(toks))
    if L.llama_decode(ctx.ptr, batch.b) != 0:
        raise RuntimeError("decode failed")
    pos = len(toks)
    steps = []
    eog = False
    for _ in range(case["n_gen"]):
        lg = ctx.logits_ith(-1)
        for i in range(n_vocab):
            arr[i].id = i
            arr[i].logit = lg[i]
            arr[i].p = 0.0
        cur = TokenDataArray(arr, n_vocab, -1, False)
        L.llama_sampler_apply(smpl, ctypes.byref(cur))
        allowed = [(cur.data[i].logit, cur.data[i].id) for i in range(cur.size)
                   if cur.data[i].logit != -math.inf]
        if not allowed:
            raise RuntimeError("%s: no token allowed" % case["name"])
        allowed.sort(key=lambda x: (-x[0], x[1]))
        best = allowed[0][1]
        gap = allowed[0][0] - allowed[1][0] if len(allowed) > 1 else math.inf
        ids = sorted(t for _, t in allowed)
        steps.append({"id": best, "gap12": gap if gap != math.inf else 1e30,
                      "n_allowed": len(allowed), "allowed_fnv1a": "%016x" % fnv1a_ids(ids)})
        if L.llama_vocab_is_eog(model.vocab, best):
            eog = True
            break
        L.llama_sampler_accept(smpl, best)
        batch.set([(best, pos, 0, True)])
        pos += 1
        if L.llama_decode(ctx.ptr, batch.b) != 0:
            raise RuntimeError("decode failed")
    L.llama_sampler_free(smpl)
    batch.free()
    ctx.free()
    ids = [s["id"] for s in steps]
    text = b"".join(model.token_to_piece_bytes(t, special=False) for t in ids)
    return {"prompt_tokens": toks, "steps": steps, "greedy_ids": ids,
            "greedy_text": text.decode("utf-8", "replace"), "stopped_at_eog": eog}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"))
    ap.add_argument("--s2g", default="/tmp/peer_s2g")
    args = ap.parse_args()
    sys.path.insert(0, os.path.join(args.shared, "peer"))
    import libllama
    L = libllama.load(cpu_backend="haswell")
    P = c_void_p
    for name, res, argt in (("llama_sampler_init_grammar", P, [P, c_char_p, c_char_p]),
                            ("llama_sampler_apply", None, [P, POINTER(TokenDataArray)]),
                            ("llama_sampler_accept", None, [P, c_int32]),
                            ("llama_sampler_free", None, [P])):
        f = getattr(L, name)
        f.restype = res
        f.argtypes = argt
    cases = json.load(open(os.path.join(HERE, "greedy_cases.json")))
    if any("schema" in c for c in cases) and not os.path.exists(args.s2g):
        build_s2g(args.s2g)
    models = {}
    out = {"peer": libllama.LLAMA_CPP_VERSION,
           "settings": "cpu haswell, flash attention off, no repack, F16 KV, prompt in one "
                       "batch, 1 thread; chain: llama_sampler_init_grammar then greedy",
           "cases": []}
    for c in cases:
        mpath = os.path.join(args.shared, "models", c["model"])
        if c["model"] not in models:
            models[c["model"]] = libllama.Model(mpath, repack=False)
        grammar = c["grammar"] if "grammar" in c else schema_grammar(args.s2g, c["schema"])
        r = run_case(libllama, L, models[c["model"]], c, grammar)
        entry = dict(c)
        entry["grammar"] = grammar
        entry["model_sha256"] = hashlib.sha256(open(mpath, "rb").read()).hexdigest()
        entry.update(r)
        out["cases"].append(entry)
        print("%-28s %3d tokens, eog=%s: %r" % (c["name"], len(r["greedy_ids"]),
                                                r["stopped_at_eog"], r["greedy_text"][:70]))
    with open(os.path.join(HERE, "greedy_refs.json"), "w") as f:
        json.dump(out, f, indent=1, ensure_ascii=False)
        f.write("\n")


if __name__ == "__main__":
    main()

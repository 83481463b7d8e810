#!/usr/bin/env python3
"""mk_ctxshift_refs.py - llama.cpp greedy through context shifts, the reference for
tests/cli/test_ctxshift.sh.

The peer (llama.cpp, ../shared/peer) is driven as its own CLI drives it with --context-shift
(tools/completion/completion.cpp): n_keep = --keep, plus one when the vocabulary adds BOS, or
the whole prompt when --keep is negative or longer than it; the prompt in one batch; then one
token per llama_decode, and before each one, when n_past + 1 >= n_ctx:
    n_discard = (n_past - n_keep) / 2
    llama_memory_seq_rm (mem, 0, n_keep, n_keep + n_discard)
    llama_memory_seq_add(mem, 0, n_keep + n_discard, n_past, -n_discard)
    n_past -= n_discard
The greedy pick is the first maximum (llama.cpp's greedy sampler), end-of-generation tokens
included (none comes up in these cases; the script checks).

The canonical run is the one of ../shared/reference (CPU variant haswell, flash attention off,
no repacking, 1 thread). The tolerance is measured as ../shared/reference/README.md measures
it: twice the largest difference over each step's top-10 between the canonical run and
llama.cpp's other valid configurations (zen4 defaults, generic x64, flash attention on,
repacking on), each fed the canonical tokens with the same shifts; it is never below the
reference's own tolerance for the model (stories260K: 0.048).

  /usr/bin/python3 tests/cli/mk_ctxshift_refs.py [--shared ../shared] [--set NAME]

writes tests/cli/ctxshift_<NAME>_ref.json (llamaref.py's case format: steps[k] holds the
top-10 logits that chose greedy_ids[k], so compare_run_json.py reads it; greedy_pieces_hex the
text of each token, for the server's test). Sets: stories260K (f16 and f32 caches, the
default) and smol135-qkv (smol135-q4_k_m, head size 64, with q8_0 and q4_0 K caches, whose
k-shift dequantizes, turns back from the Walsh-Hadamard rotation, ropes, rotates and quantizes
again; a quantized V needs flash attention, so those cases run with it in every
configuration).
"""

import argparse
import json
import os
import subprocess
import sys
from ctypes import c_bool, c_int32, c_void_p

HERE = os.path.dirname(os.path.abspath(__file__))
# name: model, n_ctx, n_predict, tolerance of ../shared/reference/README.md for the model,
# cases (prompt, --keep, K type, V type)
SETS = {
    "stories260K": ("stories260K.gguf", 64, 200, 0.048, [
        ("The sun was shining", 0, "f16", "f16"),
        ("The sun was shining", 5, "f16", "f16"),
        ("The sun was shining", -1, "f16", "f16"),
        ("Lily and Tom went to the park", -1, "f16", "f16"),
        ("The sun was shining", 0, "f32", "f32"),
    ]),
    "smol135-qkv": ("smol135-q4_k_m.gguf", 32, 60, 1.14, [
        ("The sun was shining", 2, "q8_0", "f16"),
        ("The sun was shining", 2, "q8_0", "q8_0"),
        ("The sun was shining", 2, "q4_0", "q4_0"),
    ]),
}
MODEL, N_CTX, N_PREDICT, REF_TOLERANCE, CASES = SETS["stories260K"]
CONFIGS = {  # name: (cpu backend, flash attention, repack)
    "canonical": ("haswell", "off", False),
    "zen4-defaults": (None, "auto", True),
    "x64-generic": ("x64", "off", False),
    "flash-attn-on": ("haswell", "on", False),
    "repack-on": ("haswell", "off", True),
}


def top_k(logits, k=10):
    order = sorted(range(len(logits)), key=lambda i: (-logits[i], i))[:k]
    top = [[i, round(float(logits[i]), 6)] for i in order]
    return top, float(logits[order[0]] - logits[order[1]])


def run_case(libllama, L, model, case, forced):
    """One case: the greedy ids (or the forced ones) and the top-10 per step."""
    prompt, keep, kv_k, kv_v = case
    P = c_void_p
    for fn, res, argt in (("llama_memory_seq_rm", c_bool, [P, c_int32, c_int32, c_int32]),
                          ("llama_memory_seq_add", None, [P, c_int32, c_int32, c_int32, c_int32])):
        f = getattr(L, fn)
        f.restype = res
        f.argtypes = argt
    toks = model.tokenize(prompt, add_special=True, parse_special=False)
    add_bos = bool(L.llama_vocab_get_add_bos(model.vocab))
    n_keep = len(toks) if keep < 0 or keep > len(toks) else keep + add_bos
    fa = "on" if kv_v not in ("f16", "f32") else FA  # llama.cpp's need for a quantized V
    ctx = libllama.Context(model, n_ctx=N_CTX, n_threads=1, n_batch=N_CTX, n_ubatch=N_CTX,
                           type_k=libllama.GGML_TYPE_NAMES[kv_k],
                           type_v=libllama.GGML_TYPE_NAMES[kv_v], flash_attn=fa)
    mem = L.llama_get_memory(ctx.ptr)
    batch = libllama.Batch(L, max(len(toks), 1))
    n_vocab = model.n_vocab
    steps, ids, shifts = [], [], []
    embd, n_past = list(toks), 0
    try:
        while len(ids) < N_PREDICT:
            if n_past + len(embd) >= N_CTX:
                n_discard = (n_past - n_keep) // 2
                if not L.llama_memory_seq_rm(mem, 0, n_keep, n_keep + n_discard):
                    raise RuntimeError("llama_memory_seq_rm failed")
                L.llama_memory_seq_add(mem, 0, n_keep + n_discard, n_past, -n_discard)
                shifts.append({"step": len(ids), "n_past": n_past, "n_discard": n_discard})
                n_past -= n_discard
            batch.set((tk, n_past + i, 0, i == len(embd) - 1) for i, tk in enumerate(embd))
            if L.llama_decode(ctx.ptr, batch.b) != 0:
                raise RuntimeError("llama_decode failed at n_past %d" % n_past)
            n_past += len(embd)
            p = ctx.logits_ith(len(embd) - 1)
            logits = [p[i] for i in range(n_vocab)]
            top, gap = top_k(logits)
            pick = forced[len(ids)] if forced else top[0][0]
            steps.append({"pos": n_past - 1, "input_id": int(embd[-1]), "top": top,
                          "gap12": round(gap, 6)})
            ids.append(int(pick))
            if L.llama_vocab_is_eog(model.vocab, pick) and not forced:
                raise SystemExit("case %r: an end-of-generation token at step %d"
                                 % (case, len(ids) - 1))
            embd = [pick]
    finally:
        batch.free()
        ctx.free()
    kv = {"kv_type": kv_k} if kv_k == kv_v else {"type_k": kv_k, "type_v": kv_v}
    return {"prompt": prompt, "keep": keep, **kv, "flash_attn": fa, "n_keep": n_keep,
            "prompt_tokens": [int(x) for x in toks], "steps": steps, "greedy_ids": ids,
            "greedy_pieces_hex": [model.token_to_piece_bytes(x, special=False).hex()
                                  for x in ids],
            "shifts": shifts}


FA = "off"


def run_config(shared, name, forced_file):
    global FA
    sys.path.insert(0, os.path.join(shared, "peer"))
    import libllama
    backend, FA, repack = CONFIGS[name]
    L = libllama.load(cpu_backend=backend)
    model = libllama.Model(os.path.join(shared, "models", MODEL), repack=repack)
    forced = json.load(open(forced_file)) if forced_file else None
    out = [run_case(libllama, L, model, c, forced[i] if forced else None)
           for i, c in enumerate(CASES)]
    model.free()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(HERE, "..", "..", "..", "shared"))
    ap.add_argument("--set", default="stories260K", choices=sorted(SETS))
    ap.add_argument("--config")
    ap.add_argument("--forced")
    args = ap.parse_args()
    global MODEL, N_CTX, N_PREDICT, REF_TOLERANCE, CASES
    MODEL, N_CTX, N_PREDICT, REF_TOLERANCE, CASES = SETS[args.set]
    if args.config:  # one configuration per process: ggml loads one CPU variant
        json.dump(run_config(args.shared, args.config, args.forced), sys.stdout)
        return

    def run(name, forced=None):
        cmd = [sys.executable, __file__, "--shared", args.shared, "--set", args.set,
               "--config", name]
        if forced:
            cmd += ["--forced", forced]
        return json.loads(subprocess.run(cmd, check=True, capture_output=True).stdout)

    canon = run("canonical")
    forced = "/tmp/ctxshift_forced_%d.json" % os.getpid()
    with open(forced, "w") as f:
        json.dump([c["greedy_ids"] for c in canon], f)
    spread = {}
    for name in CONFIGS:
        if name == "canonical":
            continue
        worst = 0.0
        for c, o in zip(canon, run(name, forced)):
            for sc, so in zip(c["steps"], o["steps"]):
                other = dict((t, l) for t, l in so["top"])
                for t, l in sc["top"]:
                    if t in other:
                        worst = max(worst, abs(other[t] - l))
                    else:  # below the other run's 10th
                        worst = max(worst, l - min(other.values()))
        spread[name] = round(worst, 6)
    os.unlink(forced)
    tol = max(REF_TOLERANCE, 2 * max(spread.values()))
    for c in canon:
        c["first_near_tie"] = next((k for k, s in enumerate(c["steps"]) if s["gap12"] <= tol),
                                   None)
    out = {"peer": "llama.cpp v0.5.0 (node-llama-cpp 3.22.1 prebuilt, CPU)",
           "model": MODEL,
           "settings": "canonical: cpu haswell, flash attention off (on for a quantized V), "
                       "no repack, 1 thread, the prompt in one batch; llama-cli's context shift (completion.cpp)",
           "n_ctx": N_CTX, "n_predict": N_PREDICT,
           "tolerance": {"abs_logit": round(tol, 6), "llama_cpp_spread": spread,
                         "reference_readme": REF_TOLERANCE},
           "cases": canon}
    with open(os.path.join(HERE, "ctxshift_%s_ref.json" % args.set), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print("tolerance", out["tolerance"])
    for c in canon:
        print(c["prompt"], c["keep"], c.get("kv_type") or (c["type_k"], c["type_v"]), "n_keep", c["n_keep"], "shifts",
              len(c["shifts"]), "first near-tie", c["first_near_tie"])


if __name__ == "__main__":
    main()

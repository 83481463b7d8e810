#!/usr/bin/python3
"""KL divergence between two models with the real llama.cpp (the peer's libllama.py), on
llama-perplexity's chunks: KL(base || other) = sum p_base (ln p_base - ln p_other) over the
scored positions (ctx/2 .. ctx-2 of each chunk), full distributions in float64 (no 16-bit
compression), mean/median/p99/max, same-top fraction and the PPL ratio. A reference for
`quarrel perplexity --kl-divergence` (tests/eval/test_kld.c).

Usage: bench/eval/llamaref_kld.py BASE.gguf OTHER.gguf TEXT --ctx 128 --chunks 6 [--batch 512]
"""
import argparse
import math
import os
import sys

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, os.environ.get("QR_PEER_DIR", "/work/shared/peer"))
import libllama  # noqa: E402


def scored_logprobs(L, path, tokens, n_ctx, n_chunk, n_batch, threads):
    """ln softmax rows (float64) at every scored position, chunk by chunk, as perplexity()."""
    model = libllama.Model(path, repack=False)
    v = model.vocab_info()
    n_vocab = model.n_vocab
    n_seq = max(1, n_batch // n_ctx)
    ctx = libllama.Context(model, n_ctx=n_seq * n_ctx, n_threads=threads,
                           n_batch=min(n_batch, n_seq * n_ctx),
                           n_ubatch=min(512, n_batch, n_seq * n_ctx), n_seq_max=n_seq,
                           type_k=libllama.GGML_TYPE_NAMES["f16"],
                           type_v=libllama.GGML_TYPE_NAMES["f16"],
                           flash_attn="off", kv_unified=False)
    batch = libllama.Batch(L, n_seq * n_ctx, 1)
    first = n_ctx // 2
    rows = []
    for i in range(0, n_chunk, n_seq):
        ns = min(n_seq, n_chunk - i)
        ctx.clear()
        items, outs = [], []
        for s in range(ns):
            for k in range(n_ctx):
                tok = tokens[(i + s) * n_ctx + k]
                if k == 0 and v["add_bos"]:
                    tok = v["bos"]
                want = first <= k <= n_ctx - 2
                if want:
                    outs.append(len(items))
                items.append((tok, k, s, want))
        batch.set(items)
        if L.llama_decode(ctx.ptr, batch.b) != 0:
            raise RuntimeError("llama_decode failed")
        for bi in outs:
            lg = np.ctypeslib.as_array(ctx.logits_ith(bi), shape=(n_vocab,)).astype(np.float64)
            m = lg.max()
            rows.append(lg - m - math.log(np.exp(lg - m).sum()))
    batch.free()
    ctx.free()
    model.free()
    return np.array(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("other")
    ap.add_argument("text")
    ap.add_argument("--ctx", type=int, required=True)
    ap.add_argument("--chunks", type=int, required=True)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    L = libllama.load(cpu_backend="haswell")
    raw = open(a.text, "rb").read()
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    m = libllama.Model(a.base, repack=False)
    tokens = m.tokenize(raw, add_special=True, parse_special=False)
    m.free()
    n_chunk = min(a.chunks, len(tokens) // a.ctx)
    lb = scored_logprobs(L, a.base, tokens, a.ctx, n_chunk, a.batch, a.threads)
    lo = scored_logprobs(L, a.other, tokens, a.ctx, n_chunk, a.batch, a.threads)
    first = a.ctx // 2
    targets = [tokens[c * a.ctx + k + 1] for c in range(n_chunk) for k in range(first, a.ctx - 1)]
    kld = (np.exp(lb) * (lb - lo)).sum(axis=1)
    idx = np.arange(len(targets))
    nll_b, nll_o = -lb[idx, targets], -lo[idx, targets]
    same = (lb.argmax(axis=1) == lo.argmax(axis=1)).mean()
    print("positions %d, KLD mean %.6f median %.6f p99 %.6f max %.6f, same top %.2f%%, "
          "PPL base %.4f other %.4f ratio %.5f"
          % (len(targets), kld.mean(), np.median(kld), np.percentile(kld, 99), kld.max(),
             100 * same, math.exp(nll_b.mean()), math.exp(nll_o.mean()),
             math.exp(nll_o.mean() - nll_b.mean())))


if __name__ == "__main__":
    main()

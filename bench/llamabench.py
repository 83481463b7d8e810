#!/usr/bin/env python3
"""llama-bench's figures from the real llama.cpp library, called directly (no JS harness): the
peer driver of ../../shared/peer/llamabench.py with llama-bench's -d (depth) and the KV cache
and flash-attention settings added, for bench/compare.py.

  pp: one llama_decode of N prompt tokens (logits for the last only), tokens/s
  tg: N llama_decode calls of one token each (no sampling), tokens/s, after the pp prompt
  -d D: both after D tokens already in the cache (llama-bench's -d; rows "pp128 @ d4096"): the
        D tokens are decoded once per context and thread count (in batches of 2048, untimed)
        and each repetition drops back to them (llama_memory_seq_rm), as llama-bench restores
        its saved depth state before each repetition. Without -d every repetition uses a fresh
        context, as the shared driver does.
Each test prints mean +/- sd over repetitions, like llama-bench.

usage: /usr/bin/python3 bench/llamabench.py MODEL.gguf [-p 128] [-n 64] [-t 1,2] [-r 5]
       [-d 0] [-ctk f16] [-ctv f16] [-fa auto|on|off] [-o md|json] [--cpu-backend VARIANT]
libllama.py comes from the shared peer folder ($QR_SHARED_DIR/peer, default ../../shared/peer
from here); the peer library as its README says (default /tmp/peer).
"""
import sys
sys.dont_write_bytecode = True  # never leave __pycache__ in shared/
import argparse, json, os, statistics, time  # noqa: E402
from ctypes import c_bool, c_int32, c_void_p  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get('QR_SHARED_DIR') or os.path.join(HERE, '..', '..', 'shared')
sys.path.insert(0, os.path.join(SHARED, 'peer'))
import libllama as LL  # noqa: E402

DEPTH_BATCH = 2048  # llama-bench's default n_batch


def tokens(model, n, first):
    return [(first + i * 7919) % model.n_vocab for i in range(n)]


def decode(L, ctx, batch, toks, pos0):
    for i0 in range(0, len(toks), batch.cap):
        part = toks[i0:i0 + batch.cap]
        batch.set([(t, pos0 + i0 + i, 0, i == len(part) - 1) for i, t in enumerate(part)])
        if L.llama_decode(ctx.ptr, batch.b) != 0:
            raise RuntimeError('llama_decode failed at position %d' % (pos0 + i0))


def timed(L, ctx, batch, model, pos0, n_prompt, n_gen):
    """pp of n_prompt tokens at pos0, then tg of n_gen tokens: (pp tok/s, tg tok/s)."""
    pp = tg = None
    if n_prompt:
        t0 = time.perf_counter()
        decode(L, ctx, batch, tokens(model, n_prompt, 0), pos0)
        pp = n_prompt / (time.perf_counter() - t0)
    if n_gen:
        t0 = time.perf_counter()
        for i in range(n_gen):
            batch.set([(1 + i % 100, pos0 + n_prompt + i, 0, True)])
            if L.llama_decode(ctx.ptr, batch.b) != 0:
                raise RuntimeError('llama_decode failed (generation)')
        tg = n_gen / (time.perf_counter() - t0)
    return pp, tg


def context(model, a, n_threads, depth, n_prompt, n_gen):
    n_batch = max(n_prompt, min(depth, DEPTH_BATCH), 1)
    return LL.Context(model, depth + n_prompt + n_gen + 16, n_threads=n_threads, n_batch=n_batch,
                      type_k=LL.GGML_TYPE_NAMES[a.ctk], type_v=LL.GGML_TYPE_NAMES[a.ctv],
                      flash_attn=a.fa)


def run_reps(model, L, a, n_threads, depth, n_prompt, n_gen, reps):
    """reps repetitions at one depth: [(pp, tg)]"""
    out = []
    if depth == 0:  # a fresh context per repetition, as the shared driver
        for _ in range(reps):
            ctx = context(model, a, n_threads, 0, n_prompt, n_gen)
            batch = LL.Batch(L, max(n_prompt, 1))
            out.append(timed(L, ctx, batch, model, 0, n_prompt, n_gen))
            batch.free()
            ctx.free()
        return out
    ctx = context(model, a, n_threads, depth, n_prompt, n_gen)
    batch = LL.Batch(L, max(n_prompt, min(depth, DEPTH_BATCH), 1))
    decode(L, ctx, batch, tokens(model, depth, 3), 0)
    mem = L.llama_get_memory(ctx.ptr)
    for _ in range(reps):
        if not L.llama_memory_seq_rm(mem, 0, depth, -1):
            raise RuntimeError('llama_memory_seq_rm failed')
        out.append(timed(L, ctx, batch, model, depth, n_prompt, n_gen))
    batch.free()
    ctx.free()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('model')
    ap.add_argument('-p', type=int, default=128)
    ap.add_argument('-n', type=int, default=64)
    ap.add_argument('-t', default='1,2')
    ap.add_argument('-r', type=int, default=5)
    ap.add_argument('-d', default='0', help='comma-separated depths')
    ap.add_argument('-ctk', default='f16', choices=sorted(LL.GGML_TYPE_NAMES))
    ap.add_argument('-ctv', default='f16', choices=sorted(LL.GGML_TYPE_NAMES))
    ap.add_argument('-fa', default='auto', choices=['auto', 'on', 'off'])
    ap.add_argument('-o', default='md', choices=['md', 'json'])
    ap.add_argument('--cpu-backend', default=None)
    a = ap.parse_args()
    L = LL.load(a.cpu_backend)
    f = L.llama_memory_seq_rm
    f.restype, f.argtypes = c_bool, [c_void_p, c_int32, c_int32, c_int32]
    model = LL.Model(a.model)
    rows = []
    for t in [int(x) for x in a.t.split(',')]:
        for depth in [int(x) for x in a.d.split(',')]:
            run_reps(model, L, a, t, min(depth, 16), min(a.p, 16), min(a.n, 4), 1)  # warm-up
            res = run_reps(model, L, a, t, depth, a.p, a.n, a.r)
            for name, idx, n in (('pp', 0, a.p), ('tg', 1, a.n)):
                v = [r[idx] for r in res if r[idx] is not None]
                if v:
                    test = f'{name}{n}' + (f' @ d{depth}' if depth else '')
                    rows.append({'model': os.path.basename(a.model), 'threads': t, 'test': test,
                                 'n_depth': depth, 'tok_s': statistics.mean(v),
                                 'sd': statistics.stdev(v) if len(v) > 1 else 0.0})
    model.free()
    if a.o == 'json':
        print(json.dumps(rows))
    else:
        print('| model | threads | test | t/s |\n|---|---|---|---|')
        for r in rows:
            print(f"| {r['model']} | {r['threads']} | {r['test']} | {r['tok_s']:.2f} ± {r['sd']:.2f} |")


if __name__ == '__main__':
    main()

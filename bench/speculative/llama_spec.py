#!/usr/bin/env python3
"""llama.cpp's greedy speculative decoding, called directly (libllama through ctypes), beside
its plain greedy generation: the peer's figures for bench/README.md "Speculative decoding".

The loop is llama.cpp's speculative-simple example's (common/speculative.cpp): the draft model
proposes up to n_max tokens greedily after the context (its cache follows the target's tokens,
the rejected guesses removed with llama_memory_seq_rm), the target evaluates the last token and
the guesses in one llama_decode, the guesses are checked in order against the target's greedy
picks, and the target's cache is cut back past the first miss. Plain: one llama_decode per
token. tok/s = tokens generated over the wall time after the prompt (drafting included), as
`quarrel run`'s "generation:" line counts. Interleaved rounds (plain, spec, plain, spec, ...),
medians; each round prints the first tokens so both paths can be seen to agree.

usage: /usr/bin/python3 llama_spec.py TARGET.gguf DRAFT.gguf [-p PROMPT]... [-n 128] [-t 1]
       [-r 3] [--n-max 2,3] [--peer-dir /work/shared/peer] [--cpu-backend VARIANT]
"""
import sys
sys.dont_write_bytecode = True
import argparse, ctypes, os, statistics, time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('target')
    ap.add_argument('draft')
    ap.add_argument('-p', '--prompt', action='append')
    ap.add_argument('-n', type=int, default=128)
    ap.add_argument('-t', type=int, default=1)
    ap.add_argument('-r', type=int, default=3)
    ap.add_argument('--n-max', default='2,3')
    ap.add_argument('--peer-dir', default=os.environ.get('QR_PEER_DIR', '/work/shared/peer'))
    ap.add_argument('--cpu-backend', default=None)
    a = ap.parse_args()
    sys.path.insert(0, a.peer_dir)
    import libllama as LL

    L = LL.load(a.cpu_backend)
    # not declared by libllama.py
    L.llama_memory_seq_rm.restype = ctypes.c_bool
    L.llama_memory_seq_rm.argtypes = [ctypes.c_void_p, ctypes.c_int32, ctypes.c_int32,
                                      ctypes.c_int32]
    tgt_m, dft_m = LL.Model(a.target), LL.Model(a.draft)
    n_vocab = tgt_m.n_vocab
    assert dft_m.n_vocab == n_vocab, 'the draft needs the target vocabulary'
    n_ctx = 2048
    tgt = LL.Context(tgt_m, n_ctx, n_threads=a.t, n_batch=512)
    dft = LL.Context(dft_m, n_ctx, n_threads=a.t, n_batch=512)
    batch = LL.Batch(L, 512)

    def argmax(ctx, i):
        return int(np.argmax(np.ctypeslib.as_array(ctx.logits_ith(i), shape=(n_vocab,))))

    def decode(ctx, items):
        batch.set(items)
        if L.llama_decode(ctx.ptr, batch.b) != 0:
            raise RuntimeError('llama_decode failed')

    def seq_rm(ctx, p0):
        L.llama_memory_seq_rm(L.llama_get_memory(ctx.ptr), 0, p0, -1)

    def prefill(ctx, toks):
        ctx.clear()
        decode(ctx, [(t, i, 0, i == len(toks) - 1) for i, t in enumerate(toks)])

    def plain(prompt):
        prefill(tgt, prompt)
        t0 = time.perf_counter()
        out, pos = [], len(prompt)
        tok = argmax(tgt, -1)
        while True:
            out.append(tok)
            if len(out) == a.n:
                break
            decode(tgt, [(tok, pos, 0, True)])
            pos += 1
            tok = argmax(tgt, -1)
        return out, time.perf_counter() - t0, None

    def spec(prompt, n_max):
        prefill(tgt, prompt)
        dft.clear()
        t0 = time.perf_counter()
        hist = list(prompt)
        d_done = 0  # the draft's cache holds hist[:d_done]
        pos = len(prompt)  # where the pending token goes in the target
        tok = argmax(tgt, -1)
        out = [tok]
        hist.append(tok)
        drafted = accepted = passes = 0
        while len(out) < a.n:
            want = min(n_max, a.n - len(out) - 1)
            guess = []
            if want > 0:
                # the draft catches up with the history, then guesses greedily
                seq_rm(dft, d_done)
                new = hist[d_done:]
                decode(dft, [(t, d_done + i, 0, i == len(new) - 1) for i, t in enumerate(new)])
                d_done = len(hist)
                g = argmax(dft, -1)
                guess.append(g)
                for j in range(1, want):
                    decode(dft, [(g, d_done + j - 1, 0, True)])
                    g = argmax(dft, -1)
                    guess.append(g)
                # the guesses evaluated by the draft (all but the last) stay if accepted
            decode(tgt, [(tok, pos, 0, True)] + [(g, pos + 1 + j, 0, True)
                                                  for j, g in enumerate(guess)])
            passes += 1
            drafted += len(guess)
            i = 0
            while True:
                tok = argmax(tgt, i)
                out.append(tok)
                hist.append(tok)
                if len(out) == a.n or i >= len(guess) or tok != guess[i]:
                    break
                accepted += 1
                i += 1
            pos += 1 + i
            seq_rm(tgt, pos)
            # the draft's cache: the history it shares with hist (its guesses past a miss go)
            ok = len(hist) - 1  # hist[-1] is the pending token, never in a cache
            d_done = min(d_done + max(0, min(i, len(guess) - 1)), ok)
        return out[:a.n], time.perf_counter() - t0, (drafted, accepted, passes)

    prompts = a.prompt or ['The quick brown fox']
    n_maxes = [int(x) for x in a.n_max.split(',')]
    print('| prompt | llama.cpp plain (tok/s) | ' +
          ' | '.join(f'spec n_max {k} (tok/s) | speed-up | acceptance' for k in n_maxes) + ' |')
    print('| --- | ---: |' + ' ---: | ---: | ---: |' * len(n_maxes))
    for p in prompts:
        toks = tgt_m.tokenize(p, add_special=True)
        plain(toks[:4])  # warm-up
        res = {'plain': []}
        stats = {}
        for _ in range(a.r):
            o0, dt, _ = plain(toks)
            res['plain'].append(a.n / dt)
            for k in n_maxes:
                o1, dt, st = spec(toks, k)
                if o1 != o0:
                    first = next(i for i in range(a.n) if o0[i] != o1[i])
                    print(f'# note: {p!r} n_max {k}: greedy tokens differ from plain at {first}',
                          file=sys.stderr)
                res.setdefault(k, []).append(a.n / dt)
                stats[k] = st
        base = statistics.median(res['plain'])
        cells = []
        for k in n_maxes:
            v = statistics.median(res[k])
            d, acc, _ = stats[k]
            cells.append(f'{v:.1f} | {v / base:.2f}x | {acc / d if d else 0:.2f}')
        print(f'| {p[:40]} | {base:.1f} | ' + ' | '.join(cells) + ' |', flush=True)


if __name__ == '__main__':
    main()

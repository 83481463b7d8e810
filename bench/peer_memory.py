#!/usr/bin/env python3
"""Peak RSS of llama.cpp (the peer, called directly through ../shared/peer/libllama.py) for a
model with a given context: load, evaluate a 128-token prompt, generate 64 tokens, report
ru_maxrss. The Python interpreter's own peak before loading is printed too.

usage: /usr/bin/python3 bench/peer_memory.py MODEL.gguf [n_ctx] [threads]
"""
import os, resource, sys
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "peer"))
import libllama as LL  # noqa: E402

model_path = sys.argv[1]
n_ctx = int(sys.argv[2]) if len(sys.argv) > 2 else 2048
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
L = LL.lib()
model = LL.Model(model_path, repack=False)
ctx = LL.Context(model, n_ctx, n_threads=threads, n_batch=512)
batch = LL.Batch(L, 512)
toks = [(i * 7919) % model.n_vocab for i in range(128)]
batch.set([(t, i, 0, i == 127) for i, t in enumerate(toks)])
assert L.llama_decode(ctx.ptr, batch.b) == 0
for i in range(64):
    batch.set([(1 + i, 128 + i, 0, True)])
    assert L.llama_decode(ctx.ptr, batch.b) == 0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(f"llama.cpp peak RSS: {peak / 1024:.1f} MiB (python before loading: {base / 1024:.1f} MiB) "
      f"model={os.path.basename(model_path)} n_ctx={n_ctx}")

#!/usr/bin/python3
"""Write a synthetic LoRA adapter (GGUF, as llama.cpp's convert_lora_to_gguf.py lays it out) for
a base model, deterministically: the same arguments give the same bytes.

usage: mk_lora.py BASE.gguf OUT.gguf [--rank 8] [--alpha A] [--type f32|f16] [--seed 1]
                  [--gain 0.05] [--only REGEX] [--bad KIND]

For every 2-D weight matrix the forward pass multiplies (attn_q/k/v/output, a fused attn_qkv,
ffn_gate/up/down, output.weight; --only narrows them by a regular expression on the name), a
pair <name>.lora_a (ne [n_in, rank]) and <name>.lora_b (ne [rank, n_out]): A ~ N(0, 1/n_in),
B ~ N(0, gain^2 / rank) from numpy's legacy RandomState(seed) (a stream numpy keeps stable),
so that B (A x) is about gain * |x| whatever the widths. Keys: general.type "adapter",
general.architecture the base's, adapter.type "lora", adapter.lora.alpha (none without --alpha).

--bad writes a broken adapter for the error tests: nan (a NaN in the first lora_b),
missing-b (the first pair without lora_b), rank (the first lora_b one rank short),
arch (general.architecture "gpt2"), type (general.type "model"), suffix (an extra tensor
"blk.0.attn_q.weight.extra"), expert (the first pair 3-D), embd (a pair on token_embd.weight).
Needs Debian's python3 with numpy; the GGUF code is ../shared/models/synth/gguf.py.
"""
import argparse
import os
import re
import sys

sys.dont_write_bytecode = True
import numpy as np  # noqa: E402

shared = os.environ.get("QR_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
sys.path.insert(0, os.path.join(shared, "models", "synth"))
import gguf  # noqa: E402

TARGETS = re.compile(r"^(blk\.\d+\.(attn_q|attn_k|attn_v|attn_qkv|attn_output|ffn_gate|ffn_up|"
                     r"ffn_down)|output)\.weight$")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("base")
    ap.add_argument("out")
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--alpha", type=float, default=None)
    ap.add_argument("--type", choices=["f32", "f16"], default="f32")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--gain", type=float, default=0.05)
    ap.add_argument("--only", default=None)
    ap.add_argument("--bad", default=None)
    a = ap.parse_args()

    base = gguf.GGUFReader(a.base)
    arch = base.kv["general.architecture"]
    rng = np.random.RandomState(a.seed)
    gt = gguf.GGML_TYPE_BY_NAME[a.type.upper()]
    dt = np.float32 if a.type == "f32" else np.float16
    only = re.compile(a.only) if a.only else None

    w = gguf.GGUFWriter(a.out)
    w.add_string("general.type", "model" if a.bad == "type" else "adapter")
    w.add_string("general.architecture", "gpt2" if a.bad == "arch" else arch)
    w.add_string("general.name", "synthetic lora")
    w.add_string("adapter.type", "lora")
    if a.alpha is not None:
        w.add_f32("adapter.lora.alpha", a.alpha)
    n = 0
    for t in base.tensors:
        if len(t.shape) != 2 or not TARGETS.match(t.name):
            continue
        if only and not only.search(t.name):
            continue
        n_in, n_out = int(t.shape[0]), int(t.shape[1])
        r = a.rank
        A = (rng.standard_normal((r, n_in)) / np.sqrt(n_in)).astype(dt)
        B = (rng.standard_normal((n_out, r)) * (a.gain / np.sqrt(r))).astype(dt)
        first = n == 0
        if first and a.bad == "nan":
            B[n_out // 2, r - 1] = np.nan
        rb = r - 1 if first and a.bad == "rank" else r
        if first and a.bad == "expert":
            w.add_tensor(t.name + ".lora_a", np.stack([A, A]), gt, (n_in, r, 2))
            w.add_tensor(t.name + ".lora_b", np.stack([B, B]), gt, (r, n_out, 2))
        else:
            w.add_tensor(t.name + ".lora_a", A, gt, (n_in, r))
            if not (first and a.bad == "missing-b"):
                w.add_tensor(t.name + ".lora_b", B[:, :rb].copy(), gt, (rb, n_out))
        n += 1
    if a.bad == "suffix":
        w.add_tensor("blk.0.attn_q.weight.extra", np.zeros(4, dt), gt, (4,))
    if a.bad == "embd":
        t = base.tensor("token_embd.weight")
        w.add_tensor("token_embd.weight.lora_a", np.zeros((int(t.shape[1]), a.rank), dt), gt,
                     (a.rank, int(t.shape[1])))
        w.add_tensor("token_embd.weight.lora_b", np.zeros((int(t.shape[0]), a.rank), dt), gt,
                     (a.rank, int(t.shape[0])))
    if n == 0:
        raise SystemExit("mk_lora.py: no weight of %s matched" % a.base)
    w.write()


if __name__ == "__main__":
    main()

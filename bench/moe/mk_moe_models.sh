#!/bin/sh
# mk_moe_models.sh - the mixture-of-experts benchmark files of issue 19 (bench/README.md,
# "Mixtures of experts"): real widths and expert counts, fewer layers, synthetic weights.
#   qwen3-30b-a3b-12l-q4_k_m.gguf  Qwen3-30B-A3B's shape (n_embd 2048, 128 experts of 768, 8
#                                  used, vocab 151936), 12 of its 48 layers, Q4_K_M (~5 GB)
#   gpt-oss-20b-12l-mxfp4.gguf     gpt-oss-20b's shape with qwen2's vocabulary, 12 of 24 layers
# usage: bench/moe/mk_moe_models.sh OUT_DIR [QUARREL=build/quarrel]   (~15 min, 16 GB of F16
# written to a temporary file on the way)
set -e
OUT=${1:?usage: mk_moe_models.sh OUT_DIR [QUARREL]}
Q=${2:-build/quarrel}
mkdir -p "$OUT"
"$Q" synth --shape qwen3-30b-a3b --layers 12 --type Q4_K_M -o "$OUT/qwen3-30b-a3b-12l-q4_k_m.gguf"
# gpt-oss-20b's shape, 12 of its 24 layers, Q8_0 with MXFP4 experts (~6.4 GB, ~14 min)
"$Q" synth --shape gpt-oss-20b --layers 12 --type Q8_0 --expert-type MXFP4 \
    -o "$OUT/gpt-oss-20b-12l-mxfp4.gguf"

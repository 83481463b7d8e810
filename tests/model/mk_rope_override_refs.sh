#!/usr/bin/env bash
# mk_rope_override_refs.sh - llama.cpp's greedy run of stories260K under RoPE overrides, for
# tests/cli/test_rope_parity.sh: tests/model/data/stories260K-rope-<variant>.json and
# .case0.logits0.f32, in llamaref.py's format, at the canonical settings of
# ../shared/reference (CPU variant haswell, flash attention off, no repacking, F16 KV cache,
# 1 thread), prompt "Once upon a time", 32 generated tokens. Variants:
#   yarn:   --rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 64
#   linear: --rope-scaling linear --rope-scale 2
#   base:   --rope-freq-base 5000
# Needs the peer installed (../shared/peer/README.md; LLAMAREF_BIN_DIR if not in /tmp/peer)
# and Debian's python3 with numpy.
# usage: tests/model/mk_rope_override_refs.sh [SHARED_DIR]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
shared=${1:-${QR_SHARED_DIR:-$here/../../../shared}}
out=$here/data
model=$shared/models/stories260K.gguf
export LLAMAREF_PEER_DIR=$shared/peer

# variant name, then the flags (llama.cpp's spellings, as `quarrel run` takes them)
variants=(
    "yarn --rope-scaling yarn --rope-scale 4 --yarn-orig-ctx 64"
    "linear --rope-scaling linear --rope-scale 2"
    "base --rope-freq-base 5000"
)
for v in "${variants[@]}"; do
    read -r -a args <<<"$v"
    name=${args[0]}
    /usr/bin/python3 "$here/llamaref_rope.py" "${args[@]:1}" "$model" \
        --out "$out/stories260K-rope-$name" --prompt "Once upon a time" --n-gen 32 \
        --cpu-backend haswell --flash-attn off --no-repack --kv-type f16 --threads 1
done

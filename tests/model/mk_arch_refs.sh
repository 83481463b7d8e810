#!/usr/bin/env bash
# Regenerates the llama.cpp references of the synthetic architecture models (qwen3, gemma2,
# gemma3, phi3, olmo2, granite, smollm3, the mixtures of experts mixtral, qwen3moe and gpt-oss, and
# rope-scaling and quantized variants): for each, `quarrel synth`
# writes the model into a temporary folder, ../shared/peer/llamaref.py runs llama.cpp on it at
# the canonical settings (haswell, flash attention off, no repack, ctx 512 unless noted, 32
# generated tokens, two prompts that outrun the sliding windows) into
# tests/model/data/<name>.json and <name>.case<i>.logits0.f32, then llama.cpp's other valid
# configurations are run and arch_tolerance.py writes the measured `tolerance` into the JSON.
# Each JSON also records `synth_args`, the `quarrel synth` arguments that remake its model.
#
# usage: tests/model/mk_arch_refs.sh [NAME...]     (default: all)
#   QUARREL       the quarrel binary (default build-synth/quarrel, then build/quarrel)
#   QR_SHARED_DIR the shared folder (default /work/shared); LLAMAREF_BIN_DIR as llamaref.py
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
S=${QR_SHARED_DIR:-/work/shared}
Q=${QUARREL:-}
if [ -z "$Q" ]; then
    for q in "$root/build-synth/quarrel" "$root/build/quarrel"; do [ -x "$q" ] && Q=$q && break; done
fi
[ -x "${Q:-}" ] || { echo "mk_arch_refs.sh: no quarrel binary (set QUARREL)" >&2; exit 1; }
PY=/usr/bin/python3
. "$here/llamaref_tolerance.sh"
data=$here/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

P1="The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden fence near the river."
P2="In 1969, Neil Armstrong and Buzz Aldrin landed on the Moon; millions watched the grainy pictures on television, holding their breath."

# name | quarrel synth arguments | llama.cpp context
models=(
    "qwen3-tiny|--arch qwen3|512"
    "qwen3-tiny-yarn|--arch qwen3 --rope-scaling yarn --vocab ggml-vocab-starcoder.gguf|512"
    "gemma2-tiny|--arch gemma2|512"
    "gemma3-tiny|--arch gemma3|512"
    "gemma3-tiny-linear|--arch gemma3 --rope-scaling linear|512"
    "phi3-tiny|--arch phi3|512"
    "phi3-tiny-short|--arch phi3|256"
    "olmo2-tiny|--arch olmo2|512"
    "granite-tiny|--arch granite|512"
    "smollm3-tiny|--arch smollm3|512"
    "mixtral-tiny|--arch mixtral|512"
    "mixtral-tiny-q8_0|--arch mixtral --type Q8_0|512"
    "qwen3moe-tiny|--arch qwen3moe|512"
    "qwen3moe-mix-q4_k_m|--shape qwen3moe-mix --type Q4_K_M|512"
    "gpt-oss-tiny|--arch gpt-oss|512"
    "gpt-oss-tiny-mxfp4|--arch gpt-oss --expert-type MXFP4|512"
)

want=("$@")
for entry in "${models[@]}"; do
    IFS='|' read -r name args ctx <<< "$entry"
    if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
    echo "== $name: quarrel synth $args (ctx $ctx)"
    model=$tmp/$name.gguf
    # shellcheck disable=SC2086
    "$Q" synth $args -o "$model" 2> "$tmp/synth.log" || { cat "$tmp/synth.log" >&2; exit 1; }
    reference_with_tolerance "$model" "$data/$name" "$tmp" --prompt "$P1" --prompt "$P2" \
        --ctx "$ctx" --n-gen 32
    # the model's name rather than its temporary path, and how to remake it
    set_json_keys "$data/$name.json" "model=$name.gguf"
    $PY - "$data/$name.json" "$args" <<'PYEOF'
import json, sys
path, args = sys.argv[1:]
d = json.load(open(path))
d["synth_args"] = args.split()
json.dump(d, open(path, "w"), indent=1, ensure_ascii=False)
open(path, "a").write("\n")
PYEOF
done

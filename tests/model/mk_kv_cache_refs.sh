#!/usr/bin/env bash
# Regenerates llama.cpp's references with quantized KV caches (issue 23): for smol135-q4_k_m
# (../shared/models) and the synthetic models whose head size (32) the 32-value blocks divide
# (qwen3, gemma2, gemma3, gpt-oss, qwen3moe; `quarrel synth` writes them into a temporary
# folder), ../shared/peer/llamaref.py runs llama.cpp with --kv-type q8_0 and q4_0 (K and V
# alike) into tests/model/data/kv-<type>-<model>.json and .case0.logits0.f32. llama.cpp needs
# flash attention for a quantized V cache, so the canonical run is haswell, flash attention on,
# no repack, the prompt in one batch, 1 thread; the tolerance is measured as
# ../shared/reference/README.md measures it, from llama.cpp's other valid configurations with
# the same cache type (its automatic defaults, the generic x64 build, weights repacked, the
# prompt token by token; all with flash attention, the only valid setting). One prompt per
# model (smol135: the first of its F16 reference ../shared/reference/smol135-q4_k_m.json, the
# synthetic models: the first of tests/model/mk_arch_refs.sh), 32 generated tokens, ctx 512:
# the same inputs as the F16-cache references, whose logits0 the test also compares against;
# and smol135-q4_k_m-long: smol135 with a ~330-token prompt (longer than one of Quarrel's
# flash-attention ranges of 256 cells), ctx 512.
#
# usage: tests/model/mk_kv_cache_refs.sh [NAME...]     (default: all)
#   QUARREL       the quarrel binary (default build/quarrel)
#   QR_SHARED_DIR the shared folder (default /work/shared); LLAMAREF_BIN_DIR as llamaref.py
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
S=${QR_SHARED_DIR:-/work/shared}
Q=${QUARREL:-$root/build/quarrel}
[ -x "$Q" ] || { echo "mk_kv_cache_refs.sh: no quarrel binary (set QUARREL)" >&2; exit 1; }
PY=/usr/bin/python3
. "$here/llamaref_tolerance.sh"
data=$here/data
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

P1="The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden fence near the river."

# name | quarrel synth arguments (empty: the shared model) | prompt
models=(
    "smol135-q4_k_m||Once upon a time"
    "qwen3-tiny|--arch qwen3|$P1"
    "gemma2-tiny|--arch gemma2|$P1"
    "gemma3-tiny|--arch gemma3|$P1"
    "gpt-oss-tiny|--arch gpt-oss|$P1"
    "qwen3moe-tiny|--arch qwen3moe|$P1"
)

# smol135 with a prompt longer than one flash-attention range (QR_FLASH_RANGE, 256 cells):
# the first 1400 bytes of ../shared/reference/text/gpl-3.txt (~330 tokens), so the later
# positions merge two ranges (flash-decoding); no F16 counterpart
long_prompt() { head -c 1400 "$S/reference/text/gpl-3.txt"; }
models+=("smol135-q4_k_m-long||@long")

want=("$@")
for entry in "${models[@]}"; do
    IFS='|' read -r name args prompt <<< "$entry"
    if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
    if [ "$prompt" = "@long" ]; then prompt=$(long_prompt); fi
    if [ -z "$args" ]; then
        model=$S/models/${name%-long}.gguf
    else
        model=$tmp/$name.gguf
        # shellcheck disable=SC2086
        "$Q" synth $args -o "$model" 2> "$tmp/synth.log" || { cat "$tmp/synth.log" >&2; exit 1; }
    fi
    for kv in q8_0 q4_0; do
        echo "== $name, K and V $kv"
        out=$data/kv-$kv-$name
        ref=("$PY" "$S/peer/llamaref.py" "$model" --prompt "$prompt" --ctx 512 --n-gen 32
             --kv-type "$kv")
        v=$tmp/var
        "${ref[@]}" --out "$out" --cpu-backend haswell --flash-attn on --no-repack > /dev/null
        "${ref[@]}" --out "$v-defaults" --dump-step-logits > /dev/null
        "${ref[@]}" --out "$v-x64" --dump-step-logits --cpu-backend x64 --flash-attn on \
            --no-repack > /dev/null
        "${ref[@]}" --out "$v-repack" --dump-step-logits --cpu-backend haswell \
            --flash-attn on > /dev/null
        "${ref[@]}" --out "$v-incr" --dump-step-logits --cpu-backend haswell --flash-attn on \
            --no-repack --incremental-prompt > /dev/null
        "$PY" "$here/arch_tolerance.py" "$out" "auto-defaults=$v-defaults" "x64-generic=$v-x64" \
            "repack-on=$v-repack" "token-by-token=$v-incr"
        rm -f "$v"-*
        set_json_keys "$out.json" "model=${name%-long}.gguf"
        if [ -n "$args" ]; then
            $PY - "$out.json" "$args" <<'PYEOF'
import json, sys
path, args = sys.argv[1:]
d = json.load(open(path))
d["synth_args"] = args.split()
json.dump(d, open(path, "w"), indent=1, ensure_ascii=False)
open(path, "a").write("\n")
PYEOF
        fi
    done
done

#!/usr/bin/env bash
# Regenerates llama.cpp's references with LoRA adapters (tests/lora/data): for each case, the
# base model (from ../shared/models, or remade by `quarrel synth`), the adapters written by
# tests/lora/mk_lora.py (deterministic), then llamaref_lora.py (../shared/peer/llamaref.py plus
# llama_adapter_lora_init / llama_set_adapters_lora) at the canonical settings with the
# tolerance measured from llama.cpp's other configurations, as ../shared/reference/README.md
# measures it (tests/model/llamaref_tolerance.sh). Each JSON records how to remake its inputs:
# `base` (a shared model) or `synth_args`, `adapters` ({name: mk_lora.py arguments}) and
# `lora_flags` (the quarrel / llama.cpp flags, adapters named <name>.gguf).
#
# usage: tests/lora/mk_lora_refs.sh [NAME...]     (default: all)
#   QUARREL the quarrel binary (default build/quarrel); QR_SHARED_DIR (default /work/shared)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
S=${QR_SHARED_DIR:-/work/shared}
Q=${QUARREL:-$root/build/quarrel}
PY=/usr/bin/python3
export LLAMAREF=$here/llamaref_lora.py QR_SHARED_DIR=$S
. "$root/tests/model/llamaref_tolerance.sh"
data=$here/data
mkdir -p "$data"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

P1="The quick brown fox jumps over the lazy dog while the farmer watches from the old wooden fence near the river."
P2="Once upon a time, there was a little girl who lived in a house by the sea."

# adapters: name=mk_lora.py arguments, ';'-separated
ST="a=--rank 8 --alpha 16 --type f32 --seed 1 --gain 0.1;b=--rank 4 --type f16 --seed 2 --gain 0.2 --only ffn_"
SM="a=--rank 16 --alpha 32 --type f16 --seed 3 --gain 0.05;b=--rank 8 --type f32 --seed 4 --gain 0.05 --only attn_"
SY="a=--rank 8 --alpha 8 --type f32 --seed 5 --gain 0.1;b=--rank 4 --alpha 8 --type f16 --seed 6 --gain 0.1 --only ffn_"
# name | base (a file of $S/models, or synth:ARGS) | adapters | flags
cases=(
    "stories260K-lora|stories260K.gguf|$ST|--lora a.gguf"
    "stories260K-lora-half|stories260K.gguf|$ST|--lora-scaled a.gguf:0.5"
    "stories260K-lora-two|stories260K.gguf|$ST|--lora a.gguf --lora-scaled b.gguf:0.75"
    "smol135-lora|smol135-q4_k_m.gguf|$SM|--lora a.gguf"
    "smol135-lora-half|smol135-q4_k_m.gguf|$SM|--lora-scaled a.gguf:0.5"
    "smol135-lora-two|smol135-q4_k_m.gguf|$SM|--lora a.gguf,b.gguf"
    "qwen3-tiny-lora|synth:--arch qwen3|$SY|--lora a.gguf"
    "qwen3-tiny-lora-half|synth:--arch qwen3|$SY|--lora-scaled a.gguf:0.5"
    "qwen3-tiny-lora-two|synth:--arch qwen3|$SY|--lora-scaled a.gguf:1,b.gguf:0.5"
    "phi3-tiny-lora-two|synth:--arch phi3|$SY|--lora a.gguf --lora-scaled b.gguf:0.5"
)

want=("$@")
for entry in "${cases[@]}"; do
    IFS='|' read -r name base adapters flags <<< "$entry"
    if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " == *" $name "* ]]; then continue; fi
    echo "== $name: $base, $flags"
    w=$tmp/$name
    mkdir -p "$w"
    if [[ $base == synth:* ]]; then
        # shellcheck disable=SC2086
        "$Q" synth ${base#synth:} -o "$w/base.gguf" 2> "$w/synth.log" || { cat "$w/synth.log"; exit 1; }
        model=$w/base.gguf
    else
        model=$S/models/$base
    fi
    IFS=';' read -ra list <<< "$adapters"
    for item in "${list[@]}"; do
        # shellcheck disable=SC2086
        "$PY" "$here/mk_lora.py" "$model" "$w/${item%%=*}.gguf" ${item#*=}
    done
    # the flags with the adapters' paths (llama.cpp's syntax is quarrel's)
    args=()
    for f in $flags; do args+=("$(sed "s|\([a-z]*\)\.gguf|$w/\1.gguf|g" <<< "$f")"); done
    (cd "$w" && reference_with_tolerance "$model" "$data/$name" "$tmp" "${args[@]}" \
        --prompt "$P1" --prompt "$P2" --ctx 512 --n-gen 32)
    "$PY" - "$data/$name.json" "$base" "$adapters" "$flags" <<'PYEOF'
import json, os, sys
path, base, adapters, flags = sys.argv[1:]
d = json.load(open(path))
if base.startswith("synth:"):
    d["synth_args"] = base[len("synth:"):].split()
    d["model"] = os.path.basename(path)[:-5] + "-base.gguf"
else:
    d["base"] = base
    d["model"] = base
d["adapters"] = dict((i.split("=", 1)[0], i.split("=", 1)[1].split()) for i in adapters.split(";"))
d["lora_flags"] = flags.split()
json.dump(d, open(path, "w"), indent=1, ensure_ascii=False)
open(path, "a").write("\n")
PYEOF
done

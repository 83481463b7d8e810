#!/usr/bin/env bash
# `quarrel run --json` with LoRA adapters against llama.cpp with the same adapters: each
# reference in tests/lora/data (made by tests/lora/mk_lora_refs.sh) names its base model (a
# shared model, or `quarrel synth` arguments), its adapters (tests/lora/mk_lora.py arguments,
# regenerated here into the build tree and checked against the reference's sha256) and the
# --lora / --lora-scaled flags; for each prompt the greedy run's per-step top-10 logits must be
# within the reference's measured tolerance and the ids equal up to the first near-tie
# (tests/cli/compare_run_json.py). Then the adapters must matter: the first case of each
# reference differs from the base model's own run by more than the tolerance.
set -euo pipefail
Q=${QUARREL:?} T=${QR_TEST_DIR:?} S=${QR_SHARED_DIR:?}
PY=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
# shellcheck source=ref_setup.sh
. "$(dirname "$0")/ref_setup.sh"
for ref in "$T"/lora/data/*.json; do
    name=$(basename "$ref" .json)
    lora_ref_setup "$ref"
    # the regenerated adapters are the reference's
    $PY - "$ref" "$tmp" <<'PYEOF'
import hashlib, json, os, sys
d = json.load(open(sys.argv[1]))
for l in d["loras"]:
    got = hashlib.sha256(open(os.path.join(sys.argv[2], l["file"]), "rb").read()).hexdigest()
    if got != l["sha256"]:
        sys.exit("FAIL: %s: regenerated adapter %s differs from the reference's" % (sys.argv[1], l["file"]))
PYEOF
    args=()
    for f in $flags; do args+=("$(sed "s|\([a-z]*\)\.gguf|$tmp/\1.gguf|g" <<< "$f")"); done
    for ((c = 0; c < n_cases; c++)); do
        prompt=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["cases"][int(sys.argv[2])]["prompt"])' "$ref" "$c")
        "$Q" run -m "$model" "${args[@]}" --json --temp 0 -n "$n_gen" -c "$n_ctx" -t 2 -p "$prompt" \
            > "$tmp/out.jsonl" 2> "$tmp/err" || { echo "FAIL: $name: $(cat "$tmp/err")"; exit 1; }
        $PY "$T/cli/compare_run_json.py" "$tmp/out.jsonl" "$ref" "$c" "$ref" "$name case $c" ||
            { echo "FAIL: $name case $c differs from llama.cpp"; exit 1; }
        if [ "$c" = 0 ]; then # without the adapters the logits must be off by more than the tolerance
            "$Q" run -m "$model" --json --temp 0 -n "$n_gen" -c "$n_ctx" -t 2 -p "$prompt" \
                > "$tmp/base.jsonl" 2> "$tmp/err" || { cat "$tmp/err"; exit 1; }
            if $PY "$T/cli/compare_run_json.py" "$tmp/base.jsonl" "$ref" 0 "$ref" "$name no adapters" \
                > /dev/null 2>&1; then
                echo "FAIL: $name: the base model alone matches the adapted reference"; exit 1
            fi
        fi
    done
    n=$((n + 1))
done
[ "$n" -ge 9 ] || { echo "FAIL: only $n LoRA references found"; exit 1; }
echo "run --json with LoRA adapters matches llama.cpp on $n references"

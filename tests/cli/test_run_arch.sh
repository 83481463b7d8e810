#!/usr/bin/env bash
# `quarrel run --json` on the synthetic model of every architecture against llama.cpp: each
# reference of tests/model/data with `synth_args` (made by tests/model/mk_arch_refs.sh) names
# the `quarrel synth` arguments that remake its model; for each of its prompts, the greedy run's
# per-step top-10 logits must be within the reference's measured tolerance of llama.cpp's and
# the ids equal up to the first near-tie (tests/cli/compare_run_json.py), at llama.cpp's
# context size (which picks phi3's LongRoPE factors), with the reference's KV cache type and
# flash-attention setting (tests/model/mk_kv_cache_refs.sh's kv-<type>-<model> references).
set -euo pipefail
Q=${QUARREL:?} T=${QR_TEST_DIR:?}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
n=0
for ref in "$T"/model/data/*.json; do
    grep -q '"synth_args"' "$ref" || continue
    name=$(basename "$ref" .json)
    mapfile -t cfg < <(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["config"]["n_gen"]); print(d["n_ctx"]); print(len(d["cases"]))
print(" ".join(d["synth_args"]))
kv = d.get("kv_type", "f16")
print("-ctk %s -ctv %s -fa %s" % (kv, kv, d["config"].get("flash_attn_requested", "off")))' "$ref")
    n_gen=${cfg[0]} n_ctx=${cfg[1]} n_cases=${cfg[2]} kv_args=${cfg[4]}
    # shellcheck disable=SC2086
    "$Q" synth ${cfg[3]} -o "$tmp/$name.gguf" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
    for ((c = 0; c < n_cases; c++)); do
        prompt=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["cases"][int(sys.argv[2])]["prompt"])' "$ref" "$c")
        # shellcheck disable=SC2086
        "$Q" run -m "$tmp/$name.gguf" --json --temp 0 -n "$n_gen" -c "$n_ctx" -t 2 $kv_args -p "$prompt" \
            > "$tmp/out.jsonl" 2> "$tmp/err" || { echo "FAIL: $name: $(cat "$tmp/err")"; exit 1; }
        /usr/bin/python3 "$T/cli/compare_run_json.py" "$tmp/out.jsonl" "$ref" "$c" "$ref" \
            "$name case $c" || { echo "FAIL: $name case $c differs from llama.cpp"; exit 1; }
    done
    rm -f "$tmp/$name.gguf"
    n=$((n + 1))
done
[ "$n" -ge 10 ] || { echo "FAIL: only $n architecture references found"; exit 1; }
echo "run --json matches llama.cpp on $n architecture models"

#!/usr/bin/env bash
# test_schema_sampling.sh - sampling at temperature 1 under JSON schemas (-jf) gives output that
# parses and validates against the schema, for many seeds, judged by ajv (npm, pinned in
# package.json, installed into the build directory): stories260K with the default truncation
# (top-k 40: the grammar's lazy filter), with every token a candidate (--top-k 0: the full
# mask), and with penalties; smol135 (49152 tokens) on fewer seeds. Every schema bounds its
# strings and arrays, so every run must end at an end-of-generation token, the grammar complete.
set -euo pipefail
: "${QUARREL:?}" "${QR_SHARED_DIR:?}" "${QR_TEST_DIR:?}"
here="$QR_TEST_DIR/grammar"
work="$PWD/grammar-node"
out="$PWD/grammar-sampling"

command -v node >/dev/null || { echo "FAIL: node is not installed (needed for ajv)"; exit 1; }
command -v npm >/dev/null || { echo "FAIL: npm is not installed (needed for ajv)"; exit 1; }
mkdir -p "$work" "$out"
rm -f "$out"/*
cp "$here/package.json" "$here/validate.mjs" "$work/"
if [ ! -f "$work/node_modules/ajv/package.json" ] ||
    ! grep -q '"version": "8.20.0"' "$work/node_modules/ajv/package.json"; then
    (cd "$work" && timeout 300 npm install --no-audit --no-fund --loglevel=error) ||
        { echo "FAIL: npm install of ajv failed"; exit 1; }
fi

pairs=()
n_runs=0
# run_one MODEL SCHEMA SEED EXTRA...: one generation; the text after the prompt echo is kept
run_one() {
    local model=$1 schema=$2 seed=$3
    shift 3
    local name
    name="$(basename "$model" .gguf)-$(basename "$schema" .json)-$seed-$n_runs"
    local f="$out/$name.txt"
    if ! "$QUARREL" run -m "$model" -p "Data:" -n 600 --temp 1 --seed "$seed" -t 2 \
        -jf "$schema" "$@" >"$f.raw" 2>"$f.err"; then
        echo "FAIL: $name: quarrel run failed"; cat "$f.err"; exit 1
    fi
    if grep -q "generation: 600 tokens" "$f.err"; then
        echo "FAIL: $name: 600 tokens without the grammar completing"; head -c 400 "$f.raw"; exit 1
    fi
    # the prompt is echoed, and a newline ends the output
    strip_echo "$f.raw" "Data:" >"$f"
    pairs+=("$schema" "$f")
    n_runs=$((n_runs + 1))
}
strip_echo() { # FILE PREFIX: FILE without PREFIX at the start and the final newline
    local prefix_len=${#2}
    tail -c +"$((prefix_len + 1))" "$1" | head -c -1
}

stories="$QR_SHARED_DIR/models/stories260K.gguf"
smol="$QR_SHARED_DIR/models/smol135-q4_k_m.gguf"
n_seeds=12 n_smol=2
# under the sanitizers (10x slower) fewer seeds, the paths all the same
[ "${QR_SANITIZED:-0}" != 1 ] || { n_seeds=3; n_smol=1; }
for schema in "$here"/schemas/*.json; do
    for seed in $(seq 1 "$n_seeds"); do run_one "$stories" "$schema" "$seed"; done
    for seed in 101 102 103 104; do run_one "$stories" "$schema" "$seed" --top-k 0 --top-p 1 --min-p 0; done
    for seed in 201 202; do run_one "$stories" "$schema" "$seed" --repeat-penalty 1.3 --top-k 0; done
    for seed in $(seq 301 $((300 + n_smol))); do run_one "$smol" "$schema" "$seed"; done
    run_one "$smol" "$schema" 401 --top-k 0 --min-p 0 --top-p 1
done

node "$work/validate.mjs" "${pairs[@]}" || { echo "FAIL: outputs that do not validate (above)"; exit 1; }
# the runs must differ: sampling, not one text over and over
distinct=$(for f in "$out"/*.txt; do md5sum <"$f"; done | sort -u | wc -l)
if [ "$distinct" -lt $((n_runs / 2)) ]; then
    echo "FAIL: only $distinct distinct outputs in $n_runs runs"; exit 1
fi
echo "PASS: $n_runs sampled outputs, $distinct distinct, all valid"

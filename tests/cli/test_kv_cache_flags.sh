#!/usr/bin/env bash
# llama.cpp's KV cache type flags (-ctk/--cache-type-k, -ctv/--cache-type-v; --kv-type for both)
# on every subcommand that creates a context (run, chat, serve, perplexity, bench, eval): each
# runs with quantized and mixed caches on smol135 (head size 64); --help lists them; a type that
# does not exist or has no value exits 2 naming the flag and the allowed types, before any work;
# a quantized type whose 32-value block does not divide the head size (stories260K: 8) is
# refused with llama.cpp's reason, exit 1-123, nothing generated, and so is a quantized V cache
# with -fa/--flash-attn off (llama.cpp needs flash attention for it) (serve: a flag error before it
# listens; the head size once the model loads, which serve does after it listens, as
# llama-server).
# Whether the cache honours the types is tests/model/test_reference.c's (test_kv_cache_types).
set -uo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
SMOL=$S/models/smol135-q4_k_m.gguf
TINY=$S/models/stories260K.gguf
TEXT=$S/reference/text/gpl-3.txt
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
server_pid=
cleanup() {
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

# the base arguments per subcommand and model: quick runs
base_args() {
    case $1 in
    run) echo "-m $2 -n 4 --temp 0 -t 1 -p hello" ;;
    chat) echo "-m $2 -n 4 --temp 0 -t 1" ;;
    perplexity) echo "-m $2 -f $TEXT -c 128 --chunks 1 -t 1" ;;
    bench) echo "-m $2 -p 8 -n 4 -r 1 -t 1 --bw 10 --no-warmup" ;;
    eval) echo "-m $2 -f $T/eval/tasks_stories.jsonl -t 1" ;;
    serve) echo "-m $2 --port 0 -t 1" ;;
    esac
}

# ---- accepted: quantized, mixed and the old flag ----
sets=("-ctk q8_0 -ctv q8_0" "--cache-type-k q4_0 --cache-type-v q4_1" "-ctk f16 -ctv iq4_nl"
    "-ctk bf16 -ctv q5_0" "--kv-type q5_1" "-fa on" "-ctk q8_0 --flash-attn off -ctv f32")
for cmd in run chat perplexity bench eval; do
    for set in "${sets[@]}"; do
        # shellcheck disable=SC2046,SC2086
        timeout 300 "$Q" $cmd $(base_args $cmd "$SMOL") $set >"$tmp/out" 2>"$tmp/err" <<<"hello"
        rc=$?
        if [ $rc != 0 ]; then
            fail "quarrel $cmd $set -> rc $rc: $(tail -3 "$tmp/err")"
        else
            echo "ok   $cmd $set"
        fi
    done
    "$Q" $cmd --help >"$tmp/help" 2>&1
    for f in "-ctk, --cache-type-k" "-ctv, --cache-type-v" "--kv-type" "-fa, --flash-attn"; do
        grep -q -- "^  $f " "$tmp/help" || fail "quarrel $cmd --help does not list $f"
    done
done
# the f16 default and an explicit f16 cache give the same text (the flag maps to the type)
a=$("$Q" run $(base_args run "$SMOL") 2>/dev/null)
b=$("$Q" run $(base_args run "$SMOL") -ctk f16 --cache-type-v f16 2>/dev/null)
[ "$a" = "$b" ] || fail "-ctk f16 -ctv f16 differs from the default: '$a' vs '$b'"

# serve: starts with a quantized cache, answers /health with 200, then stops
# shellcheck source=serve_health.sh
. "$(dirname "$0")/serve_health.sh"
# shellcheck disable=SC2046
if serve_health "$tmp/serve.log" $(base_args serve "$SMOL") -ctk q8_0 -ctv q4_0; then
    echo "ok   serve -ctk q8_0 -ctv q4_0"
else
    fail "serve -ctk q8_0 -ctv q4_0: $(cat "$tmp/serve.log")"
fi
"$Q" serve --help >"$tmp/help" 2>&1
grep -q -- "^  -ctk, --cache-type-k " "$tmp/help" || fail "quarrel serve --help lacks -ctk"

# ---- refused: a type that does not exist, a missing value: exit 2 before any work ----
allowed="(allowed: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl)"
expect_rc() { # expect_rc CMD MODEL LO HI EXPECTED_MESSAGE ARGS...
    local cmd=$1 model=$2 lo=$3 hi=$4 want=$5
    shift 5
    # shellcheck disable=SC2046
    out=$(timeout 60 "$Q" $cmd $(base_args "$cmd" "$model") "$@" 2>&1 </dev/null)
    rc=$?
    if [ $rc -lt "$lo" ] || [ $rc -gt "$hi" ] || ! grep -qF -- "$want" <<<"$out"; then
        fail "quarrel $cmd $* -> rc $rc (wanted $lo-$hi), output: $out (wanted: $want)"
    elif [ "$hi" = 2 ] && grep -q "listening on" <<<"$out"; then
        fail "quarrel $cmd $*: refused only after it started listening"
    else
        echo "ok   $cmd $* -> rc $rc: $want"
    fi
}
for cmd in run chat serve perplexity bench eval; do
    expect_rc $cmd "$SMOL" 2 2 "-ctk: unknown KV cache type 'q9_0' $allowed" -ctk q9_0
    expect_rc $cmd "$SMOL" 2 2 "--cache-type-v: unknown KV cache type 'q4_K' $allowed" \
        --cache-type-v q4_K
    expect_rc $cmd "$SMOL" 2 2 "-ctv needs a value" -ctv
    # a block of 32 in a head of 8: llama.cpp refuses it too
    expect_rc $cmd "$TINY" 1 123 \
        "K cache type q8_0 with block size 32 does not divide the head size 8" -ctk q8_0
    expect_rc $cmd "$TINY" 1 123 \
        "V cache type q4_0 with block size 32 does not divide the head size 8" -ctv q4_0
done
expect_rc run "$SMOL" 2 2 "--kv-type: unknown KV cache type 'f8' $allowed" --kv-type f8
# a V cache that needs flash attention, with it off: llama.cpp's reason, exit 1-123
for cmd in run chat serve perplexity bench eval; do
    expect_rc $cmd "$SMOL" 1 123 "V cache type q8_0 needs flash attention (llama.cpp: \"quantized V cache was requested, but this requires Flash Attention\")" -ctv q8_0 -fa off
    expect_rc $cmd "$SMOL" 2 2 "-fa expects on, off or auto, got 'maybe'" -fa maybe
done
expect_rc run "$SMOL" 1 123 "a bf16 V cache needs flash attention in Quarrel" \
    --cache-type-v bf16 --flash-attn off
expect_rc run "$SMOL" 2 2 "--flash-attn needs a value" --flash-attn
expect_rc run "$SMOL" 2 2 "-ctk: unknown KV cache type '' $allowed" -ctk ""
# bf16 holds any head size: stories260K runs with it
# shellcheck disable=SC2046
"$Q" run $(base_args run "$TINY") -ctk bf16 -ctv bf16 >/dev/null 2>"$tmp/err" ||
    fail "stories260K with a bf16 cache: $(cat "$tmp/err")"

[ $fails = 0 ] && echo "all KV cache flag checks passed"
exit $((fails > 0))

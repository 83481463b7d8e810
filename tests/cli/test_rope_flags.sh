#!/usr/bin/env bash
# llama.cpp's RoPE override flags (--rope-scaling, --rope-scale, --rope-freq-base,
# --rope-freq-scale, --yarn-*) on every subcommand that creates a context (run, chat, serve,
# perplexity, bench, eval): each is accepted and the command runs on stories260K; --help lists
# them; bad values exit 2 with a message naming the flag and the value, before any work (serve:
# before it listens). Whether the forward pass honours them is tests/cli/test_rope_parity.sh's.
set -uo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
M=$S/models/stories260K.gguf
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

# every flag at least once, in three sets (--rope-scale and --rope-freq-scale set one field)
sets=(
    "--rope-scaling yarn --rope-scale 4 --rope-freq-base 5000 --yarn-orig-ctx 64 --yarn-ext-factor 0.5 --yarn-attn-factor 1.1 --yarn-beta-fast 16 --yarn-beta-slow 2"
    "--rope-scaling linear --rope-freq-scale 0.5 --yarn-orig-ctx 0 --yarn-ext-factor 0"
    "--rope-scaling none --rope-scale 1.5e0"
)

# the base arguments per subcommand: quick, tiny runs on stories260K
base_args() {
    case $1 in
    run) echo "-m $M -n 4 --temp 0 -t 1" ;;
    chat) echo "-m $M -n 4 --temp 0 -t 1" ;;
    perplexity) echo "-m $M -f $TEXT -c 128 --chunks 1 -t 1" ;;
    bench) echo "-m $M -p 8 -n 4 -r 1 -t 1 --bw 10 --no-warmup" ;;
    eval) echo "-m $M -f $T/eval/tasks_stories.jsonl -t 1" ;;
    esac
}

# ---- accepted: each set on each subcommand (serve below) ----
for cmd in run chat perplexity bench eval; do
    for set in "${sets[@]}"; do
        # shellcheck disable=SC2046,SC2086
        timeout 120 "$Q" $cmd $(base_args $cmd) $set >"$tmp/out" 2>"$tmp/err" <<<"hello"
        rc=$?
        if [ $rc != 0 ]; then
            fail "quarrel $cmd $set -> rc $rc: $(tail -3 "$tmp/err")"
        else
            echo "ok   $cmd $set"
        fi
    done
    "$Q" $cmd --help >"$tmp/help" 2>&1
    for f in --rope-scaling --rope-scale --rope-freq-base --rope-freq-scale --yarn-orig-ctx \
        --yarn-ext-factor --yarn-attn-factor --yarn-beta-fast --yarn-beta-slow; do
        grep -q -- "^  $f " "$tmp/help" || fail "quarrel $cmd --help does not list $f"
    done
done
grep -q "none|linear|yarn" "$tmp/help" || fail "--help does not name the scaling methods"

# serve: starts with every flag, answers /health with 200 once the context exists, then stops
# shellcheck source=serve_health.sh
. "$(dirname "$0")/serve_health.sh"
for set in "${sets[@]}"; do
    # shellcheck disable=SC2086
    if serve_health "$tmp/serve.log" -m "$M" --port 0 -t 1 $set; then
        echo "ok   serve $set"
    else
        fail "serve $set: $(cat "$tmp/serve.log")"
    fi
done
"$Q" serve --help >"$tmp/help" 2>&1
grep -q -- "^  --yarn-beta-slow " "$tmp/help" || fail "quarrel serve --help does not list the RoPE flags"

# ---- refused: exit 2, the flag and the value named, nothing run ----
# expect_bad CMD EXPECTED_MESSAGE FLAG [VALUE]
expect_bad() {
    local cmd=$1 want=$2
    shift 2
    local extra
    if [ "$cmd" = serve ]; then extra="-m $M --port 0 -t 1"; else extra=$(base_args "$cmd"); fi
    # shellcheck disable=SC2086
    out=$(timeout 20 "$Q" $cmd $extra "$@" 2>&1 </dev/null)
    rc=$?
    if [ $rc != 2 ] || ! grep -qF -- "$want" <<<"$out"; then
        fail "quarrel $cmd $* -> rc $rc (wanted 2), output: $out (wanted: $want)"
    elif grep -q "listening on" <<<"$out"; then
        fail "quarrel $cmd $*: refused only after it started listening"
    else
        echo "ok   $cmd $* -> $want"
    fi
}
for cmd in run chat serve perplexity bench eval; do
    expect_bad $cmd "--rope-scaling expects none, linear or yarn, got 'cubic'" --rope-scaling cubic
    expect_bad $cmd "--rope-scale expects a positive number, got '0'" --rope-scale 0
    expect_bad $cmd "--rope-freq-base expects a positive number, got 'abc'" --rope-freq-base abc
    expect_bad $cmd "--yarn-beta-fast needs a value" --yarn-beta-fast
done
# one command is enough for the per-flag ranges: the parser is shared
expect_bad run "--rope-scaling expects none, linear or yarn, got 'longrope' (LongRoPE" --rope-scaling longrope
expect_bad run "--rope-scaling expects none, linear or yarn, got 'YARN'" --rope-scaling YARN
expect_bad run "--rope-scale expects a positive number, got '-4'" --rope-scale -4
expect_bad run "--rope-scale expects a positive number, got '1e-300'" --rope-scale 1e-300
expect_bad run "--rope-scale expects a positive number, got 'inf'" --rope-scale inf
expect_bad run "--rope-freq-base expects a positive number, got '0'" --rope-freq-base 0
expect_bad run "--rope-freq-base expects a positive number, got '10000x'" --rope-freq-base 10000x
expect_bad run "--rope-freq-scale expects a positive number, got '-0.5'" --rope-freq-scale -0.5
expect_bad run "--rope-freq-scale expects a positive number, got 'nan'" --rope-freq-scale nan
expect_bad run "--yarn-orig-ctx expects an integer from 0 to 2147483647, got '-1'" --yarn-orig-ctx -1
expect_bad run "--yarn-orig-ctx expects an integer from 0 to 2147483647, got '64.5'" --yarn-orig-ctx 64.5
expect_bad run "--yarn-ext-factor expects a number from 0 to 1, got '-1'" --yarn-ext-factor -1
expect_bad run "--yarn-ext-factor expects a number from 0 to 1, got '1.5'" --yarn-ext-factor 1.5
expect_bad run "--yarn-attn-factor expects a positive number, got '0'" --yarn-attn-factor 0
expect_bad run "--yarn-beta-fast expects a positive number, got '-32'" --yarn-beta-fast -32
expect_bad run "--yarn-beta-slow expects a positive number, got ''" --yarn-beta-slow ""

[ "$fails" = 0 ] && echo "all RoPE flag checks passed"
exit $((fails > 0))

#!/usr/bin/env bash
# Speculative decoding through `quarrel run` and `quarrel chat`: greedy text with a draft is the
# text without one (stdout byte for byte), for stories260K (F32) with its Q8_0 and Q4_0 copies
# (made here with `quarrel quantize`) and with ngram-simple; sampling with a draft is
# reproducible from its seed; bad input gets clear errors. (smol135: test_identity_smol135.sh)
#
# Identity needs the target's greedy picks to be the same whether a position is evaluated alone
# or in the draft's k + 1 batch: the logits are batch-invariant (tests/runtime).
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
M=$S/models/stories260K.gguf
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

"$Q" quantize "$M" "$tmp/s-q8_0.gguf" Q8_0 > /dev/null 2>&1 || fail "quantize Q8_0"
"$Q" quantize "$M" "$tmp/s-q4_0.gguf" Q4_0 > /dev/null 2>&1 || fail "quantize Q4_0"

# same_text NAME TARGET N PROMPT [draft flags...]: greedy with the flags == greedy without
# (both runs also get the flags in the array `common`)
common=()
same_text() {
    local name=$1 target=$2 n=$3 prompt=$4; shift 4
    "$Q" run -m "$target" -p "$prompt" -n "$n" --temp 0 -t 2 ${common[@]+"${common[@]}"} \
        > "$tmp/plain" 2> "$tmp/e0" || fail "$name: run without a draft: $(cat "$tmp/e0")"
    "$Q" run -m "$target" -p "$prompt" -n "$n" --temp 0 -t 2 ${common[@]+"${common[@]}"} "$@" \
        > "$tmp/spec" 2> "$tmp/e1" ||
        fail "$name: run with $*: $(cat "$tmp/e1")"
    cmp -s "$tmp/plain" "$tmp/spec" ||
        fail "$name: greedy text with $* differs from the text without:
--- without
$(cat "$tmp/plain")
--- with
$(cat "$tmp/spec")"
    grep -q "^speculation: [0-9]* drafted, [0-9]* accepted" "$tmp/e1" ||
        fail "$name: no speculation line on stderr: $(cat "$tmp/e1")"
    grep -q "generation: $n tokens" "$tmp/e1" || ! grep -q "generation: $n tokens" "$tmp/e0" ||
        fail "$name: the timing line counts other tokens: $(cat "$tmp/e0") / $(cat "$tmp/e1")"
    echo "ok: $name: $(grep '^speculation' "$tmp/e1")"
}

for p in "Once upon a time" "Tom and Lily went to the park. Tom and Lily"; do
    same_text "stories260K + Q8_0 draft" "$M" 200 "$p" -md "$tmp/s-q8_0.gguf"
    same_text "stories260K + Q4_0 draft" "$M" 200 "$p" -md "$tmp/s-q4_0.gguf" --spec-draft-n-max 5
    same_text "stories260K + itself, p-min" "$M" 200 "$p" --model-draft "$M" --spec-draft-p-min 0.5
    same_text "stories260K ngram-simple" "$M" 200 "$p" --spec-type ngram-simple
    same_text "stories260K ngram-simple n-max 8" "$M" 200 "$p" --spec-type ngram-simple \
        --spec-draft-n-max 8 --spec-draft-n-min 2
done
# stops and n_predict as without: a stop string, and a short -n
common=(--stop "Lily")
same_text "stop string" "$M" 200 "Once upon a time" -md "$tmp/s-q8_0.gguf"
common=(--stop "park. One")
same_text "stop string across tokens" "$M" 200 "Once upon a time" -md "$tmp/s-q4_0.gguf"
common=(--ignore-eos)
same_text "ignore-eos" "$M" 300 "Once upon a time" -md "$tmp/s-q4_0.gguf"
common=()
same_text "n-predict 7" "$M" 7 "Once upon a time" -md "$tmp/s-q8_0.gguf"

# a grammar under speculation: the same constrained text
"$Q" run -m "$M" -n 60 --temp 0 --grammar 'root ::= [a-z ]+ "."' > "$tmp/g0" 2>/dev/null
"$Q" run -m "$M" -n 60 --temp 0 --grammar 'root ::= [a-z ]+ "."' -md "$tmp/s-q4_0.gguf" \
    > "$tmp/g1" 2>/dev/null
cmp -s "$tmp/g0" "$tmp/g1" || fail "grammar: $(cat "$tmp/g0") vs $(cat "$tmp/g1")"

# chat: two turns, the draft's cache kept in step across them
printf 'Tell me a story\nAnd another one\n' | "$Q" chat -m "$M" -n 60 --temp 0 > "$tmp/c0" 2>/dev/null
printf 'Tell me a story\nAnd another one\n' |
    "$Q" chat -m "$M" -n 60 --temp 0 -md "$tmp/s-q8_0.gguf" > "$tmp/c1" 2>/dev/null
cmp -s "$tmp/c0" "$tmp/c1" || fail "chat with a draft differs: $(cat "$tmp/c0") vs $(cat "$tmp/c1")"

# sampling with a draft: reproducible from the seed
"$Q" run -m "$M" -n 80 --seed 42 -md "$tmp/s-q4_0.gguf" > "$tmp/r0" 2>/dev/null
"$Q" run -m "$M" -n 80 --seed 42 -md "$tmp/s-q4_0.gguf" > "$tmp/r1" 2>/dev/null
cmp -s "$tmp/r0" "$tmp/r1" || fail "sampling with a draft is not reproducible"

# bad input
expect_err() { # expected-exit-code message-substring command...
    local code=$1 msg=$2; shift 2
    set +e; "$@" > "$tmp/out" 2> "$tmp/e"; local rc=$?; set -e
    [ $rc -eq "$code" ] || fail "'$*' exited $rc, expected $code ($(cat "$tmp/e"))"
    grep -q -- "$msg" "$tmp/e" || fail "'$*': message '$(cat "$tmp/e")' lacks '$msg'"
    [ ! -s "$tmp/out" ] || fail "'$*' printed to stdout: $(cat "$tmp/out")"
}
expect_err 1 "the draft must share the target's vocabulary" \
    "$Q" run -m "$M" -n 5 -md "$S/models/smol135-q4_k_m.gguf"
expect_err 1 "the draft must share the target's vocabulary" \
    "$Q" chat -m "$M" -n 5 -md "$S/models/smol135-q4_k_m.gguf"
expect_err 2 "spec-draft-n-max expects an integer from 1" "$Q" run -m "$M" -md "$M" --spec-draft-n-max 0
expect_err 2 "spec-draft-n-max expects an integer from 1" "$Q" run -m "$M" -md "$M" --spec-draft-n-max -3
expect_err 2 "spec-draft-n-max expects an integer from 1" "$Q" chat -m "$M" -md "$M" --spec-draft-n-max 0
expect_err 2 "needs a draft model" "$Q" run -m "$M" --spec-type draft-simple
expect_err 2 "expects draft-simple or ngram-simple" "$Q" run -m "$M" --spec-type eagle
expect_err 2 "spec-draft-p-min expects a number from 0 to 1" "$Q" run -m "$M" -md "$M" --spec-draft-p-min 2
expect_err 1 "cannot open\|no such\|not found\|No such" "$Q" run -m "$M" -md "$tmp/missing.gguf"
# a draft bigger than the target: a warning, and still the same text
"$Q" run -m "$tmp/s-q8_0.gguf" -n 30 --temp 0 -md "$M" > "$tmp/big" 2> "$tmp/e" ||
    fail "bigger draft: $(cat "$tmp/e")"
grep -q "warning: the draft model .* is not smaller than the target" "$tmp/e" ||
    fail "no warning for a draft bigger than the target: $(cat "$tmp/e")"

echo "all speculative identity checks on stories260K passed"

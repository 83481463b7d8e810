#!/usr/bin/env bash
# `quarrel run --prompt-cache FILE` (llama.cpp's --prompt-cache, issue 23): a first run saves the
# prompt's state; a second run with the same prompt evaluates only its last token and prints the
# same text and the same --json logits byte for byte (greedy; Quarrel's logits are
# batch-invariant); a prompt that extends the saved one reuses all of it, one that diverges
# reuses the common start only; --prompt-cache-ro never writes; --prompt-cache-all saves the
# generated tokens too, so a run whose prompt is the last run's output reuses it; on
# stories260K and smol135 (f16 and f32 caches). Refused with a message, exit 1, the file left as
# it was: a truncated file, a corrupt one, one of another model, of another cache type; the flag
# combinations that make no sense exit 2.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# evaluated N: the prompt tokens the run evaluated (its timing line)
evaluated() { sed -n 's/^prompt: \([0-9]*\) tokens.*/\1/p' "$1"; }

check_model() {
    local m=$1 name=$2
    shift 2
    local P="Once upon a time, there was a little dog named Max. Max liked to run in the park"
    local pc=$tmp/$name.cache
    rm -f "$pc"
    # the reference: no cache at all
    "$Q" run -m "$m" -p "$P" -n 24 --temp 0 -t 2 "$@" > "$tmp/ref.txt" 2> "$tmp/ref.err" ||
        fail "$name: reference run: $(cat "$tmp/ref.err")"
    "$Q" run -m "$m" -p "$P" -n 24 --temp 0 -t 2 --json "$@" > "$tmp/ref.json" 2>/dev/null
    local n_prompt
    n_prompt=$(evaluated "$tmp/ref.err")
    [ "$n_prompt" -gt 10 ] || fail "$name: prompt of $n_prompt tokens"

    # first run: no file yet, it is created; the whole prompt is evaluated
    "$Q" run -m "$m" -p "$P" -n 24 --temp 0 -t 2 --prompt-cache "$pc" "$@" > "$tmp/a.txt" \
        2> "$tmp/a.err" || fail "$name: first run: $(cat "$tmp/a.err")"
    grep -q "does not exist; it will be created" "$tmp/a.err" || fail "$name: $(cat "$tmp/a.err")"
    [ -s "$pc" ] || fail "$name: no cache file written"
    [ "$(evaluated "$tmp/a.err")" = "$n_prompt" ] || fail "$name: first run evaluated $(evaluated "$tmp/a.err")"
    cmp -s "$tmp/ref.txt" "$tmp/a.txt" || fail "$name: first run's text differs"

    # second run: the same prompt: one token evaluated, the same text, the same logits
    cp "$pc" "$tmp/saved"
    "$Q" run -m "$m" -p "$P" -n 24 --temp 0 -t 2 --prompt-cache "$pc" "$@" > "$tmp/b.txt" \
        2> "$tmp/b.err" || fail "$name: second run: $(cat "$tmp/b.err")"
    [ "$(evaluated "$tmp/b.err")" = 1 ] || fail "$name: second run evaluated $(evaluated "$tmp/b.err") of $n_prompt: $(cat "$tmp/b.err")"
    grep -q "prompt cache: $n_prompt of the prompt's $n_prompt tokens match the $n_prompt saved in .*; $((n_prompt - 1)) reused" "$tmp/b.err" ||
        fail "$name: second run's report: $(cat "$tmp/b.err")"
    cmp -s "$tmp/ref.txt" "$tmp/b.txt" || fail "$name: the reused run's text differs: $(cat "$tmp/b.txt")"
    cmp -s "$pc" "$tmp/saved" || fail "$name: a full match rewrote the cache"
    "$Q" run -m "$m" -p "$P" -n 24 --temp 0 -t 2 --json --prompt-cache "$pc" "$@" > "$tmp/b.json" 2>/dev/null
    cmp -s "$tmp/ref.json" "$tmp/b.json" || fail "$name: the reused run's --json (logits) differ"

    # a longer prompt that starts with the saved one: all of it reused, the rest evaluated
    local P2="$P and played with a red ball."
    "$Q" run -m "$m" -p "$P2" -n 16 --temp 0 -t 2 "$@" > "$tmp/ref2.txt" 2> "$tmp/ref2.err"
    local n2
    n2=$(evaluated "$tmp/ref2.err")
    "$Q" run -m "$m" -p "$P2" -n 16 --temp 0 -t 2 --prompt-cache-ro --prompt-cache "$pc" "$@" \
        > "$tmp/c.txt" 2> "$tmp/c.err" || fail "$name: longer prompt: $(cat "$tmp/c.err")"
    [ "$(evaluated "$tmp/c.err")" = $((n2 - n_prompt)) ] ||
        fail "$name: longer prompt evaluated $(evaluated "$tmp/c.err"), expected $((n2 - n_prompt))"
    cmp -s "$tmp/ref2.txt" "$tmp/c.txt" || fail "$name: longer prompt's text differs"
    cmp -s "$pc" "$tmp/saved" || fail "$name: --prompt-cache-ro wrote the cache"

    # a prompt that diverges after its first words: only the common start is reused
    local P3="Once upon a time, there was a big cat named Tom who slept all day"
    "$Q" run -m "$m" -p "$P3" -n 16 --temp 0 -t 2 "$@" > "$tmp/ref3.txt" 2> "$tmp/ref3.err"
    local n3
    n3=$(evaluated "$tmp/ref3.err")
    "$Q" run -m "$m" -p "$P3" -n 16 --temp 0 -t 2 --prompt-cache "$pc" "$@" > "$tmp/d.txt" \
        2> "$tmp/d.err" || fail "$name: diverging prompt: $(cat "$tmp/d.err")"
    local n_match
    n_match=$(sed -n 's/^prompt cache: \([0-9]*\) of the prompt.*/\1/p' "$tmp/d.err")
    [ -n "$n_match" ] && [ "$n_match" -ge 5 ] && [ "$n_match" -lt "$n3" ] ||
        fail "$name: diverging prompt matched '$n_match': $(cat "$tmp/d.err")"
    [ "$(evaluated "$tmp/d.err")" = $((n3 - n_match)) ] ||
        fail "$name: diverging prompt evaluated $(evaluated "$tmp/d.err"), expected $((n3 - n_match))"
    cmp -s "$tmp/ref3.txt" "$tmp/d.txt" || fail "$name: diverging prompt's text differs"
    # it did not match fully: its own state replaced the file, which now serves it whole
    "$Q" run -m "$m" -p "$P3" -n 16 --temp 0 -t 2 --prompt-cache "$pc" "$@" > "$tmp/e.txt" 2> "$tmp/e.err"
    [ "$(evaluated "$tmp/e.err")" = 1 ] || fail "$name: the diverging prompt's own cache: $(cat "$tmp/e.err")"
    cmp -s "$tmp/ref3.txt" "$tmp/e.txt" || fail "$name: diverging prompt's second text differs"

    # --prompt-cache-all: the generated tokens saved too; the output fed back as the next prompt
    rm -f "$pc"
    "$Q" run -m "$m" -p "$P" -n 12 --temp 0 -t 2 --prompt-cache "$pc" --prompt-cache-all "$@" \
        > "$tmp/f.txt" 2> "$tmp/f.err" || fail "$name: cache-all: $(cat "$tmp/f.err")"
    grep -q "prompt cache: saved $((n_prompt + 12)) tokens" "$tmp/f.err" || fail "$name: cache-all: $(cat "$tmp/f.err")"
    local P4
    P4=$(cat "$tmp/f.txt")
    "$Q" run -m "$m" -p "$P4" -n 8 --temp 0 -t 2 --prompt-cache-ro --prompt-cache "$pc" "$@" \
        > /dev/null 2> "$tmp/g.err" || fail "$name: cache-all reuse: $(cat "$tmp/g.err")"
    local n_all
    n_all=$(sed -n 's/^prompt cache: \([0-9]*\) of the prompt.*/\1/p' "$tmp/g.err")
    [ -n "$n_all" ] && [ "$n_all" -gt "$n_prompt" ] ||
        fail "$name: the output as a prompt reused '$n_all' (the prompt alone is $n_prompt): $(cat "$tmp/g.err")"
    echo "ok   $name: $n_prompt-token prompt reused ($((n_prompt - 1)) skipped), longer, diverging ($n_match shared), cache-all"
}

check_model "$S/models/stories260K.gguf" stories260K-f16
check_model "$S/models/stories260K.gguf" stories260K-f32 --kv-type f32
check_model "$S/models/smol135-q4_k_m.gguf" smol135

# bad files: exit 1 with a message, nothing generated, the file untouched
M=$S/models/stories260K.gguf
good=$tmp/good.cache
"$Q" run -m "$M" -p "Once upon a time" -n 4 --temp 0 --prompt-cache "$good" > /dev/null 2>&1
bad() { # bad NAME FILE MESSAGE ARGS...
    local name=$1 file=$2 msg=$3
    shift 3
    cp "$file" "$tmp/before"
    set +e
    "$Q" run -p "Once upon a time" -n 4 --temp 0 --prompt-cache "$file" "$@" > "$tmp/out" 2> "$tmp/err"
    local rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$name: exit $rc: $(cat "$tmp/err")"
    grep -q -- "$msg" "$tmp/err" || fail "$name: message: $(cat "$tmp/err")"
    [ ! -s "$tmp/out" ] || fail "$name: generated anyway: $(cat "$tmp/out")"
    cmp -s "$file" "$tmp/before" || fail "$name: the file was changed"
    echo "ok   $name: $(grep -- "$msg" "$tmp/err" | head -n 1)"
}
size=$(stat -c %s "$good")
head -c $((size - 9)) "$good" > "$tmp/trunc.cache"
bad truncated "$tmp/trunc.cache" "truncated" -m "$M"
head -c 60 "$good" > "$tmp/trunc-header.cache"
bad truncated-header "$tmp/trunc-header.cache" "truncated" -m "$M"
cp "$good" "$tmp/corrupt.cache"
printf '\x55' | dd of="$tmp/corrupt.cache" bs=1 seek=$((size - 30)) conv=notrunc 2>/dev/null
bad corrupt "$tmp/corrupt.cache" "checksum" -m "$M"
printf 'GGUF this is not a state file at all, not at all, no; padding padding padding padding padding padding padding padding padding padding' > "$tmp/notstate.cache"
bad not-a-state-file "$tmp/notstate.cache" "not a Quarrel state file" -m "$M"
bad other-model "$good" "another model" -m "$S/models/smol135-q4_k_m.gguf"
bad other-cache-type "$good" "KV cache types are K f16, V f16; this context's are K f32, V f32" -m "$M" --kv-type f32
bad other-rope "$good" "RoPE" -m "$M" --rope-freq-base 5000
bad too-long-for-context "$good" "holds" -m "$M" -c 4 -p "Once"

# an empty file is a new cache, as llama.cpp has it
: > "$tmp/empty.cache"
"$Q" run -m "$M" -p "Once upon a time" -n 4 --temp 0 --prompt-cache "$tmp/empty.cache" > /dev/null 2> "$tmp/err" ||
    fail "empty cache file: $(cat "$tmp/err")"
grep -q "is empty" "$tmp/err" && [ -s "$tmp/empty.cache" ] || fail "empty cache file: $(cat "$tmp/err")"
# an unwritable cache path: exit 1 with the path
set +e
"$Q" run -m "$M" -p "Once upon a time" -n 4 --temp 0 --prompt-cache "$tmp/no/such/dir/c" > /dev/null 2> "$tmp/err"
rc=$?
set -e
[ "$rc" = 1 ] && grep -q "no/such/dir/c" "$tmp/err" || fail "unwritable cache: exit $rc: $(cat "$tmp/err")"
# usage errors
for args in "--prompt-cache-all" "--prompt-cache-ro" "--prompt-cache" \
    "--prompt-cache $tmp/x --prompt-cache-all --prompt-cache-ro"; do
    set +e
    # shellcheck disable=SC2086
    "$Q" run -m "$M" -n 1 $args > /dev/null 2> "$tmp/err"
    rc=$?
    set -e
    [ "$rc" = 2 ] && [ -s "$tmp/err" ] || fail "'$args': exit $rc: $(cat "$tmp/err")"
done
echo "ok   bad files and flags refused"

#!/usr/bin/env bash
# `quarrel perplexity` and `quarrel eval` end to end on stories260K: the PPL line and its value
# against llama-perplexity's record (a 4-chunk prefix), plain progress lines when stderr is not
# a terminal, a save/compare round trip, the eval summary; every bad input gets a clear message
# and a non-zero exit.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
M=$S/models/stories260K.gguf
TEXT=$S/reference/text/gpl-3.txt
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# perplexity: 4 chunks of 128 against the reference's running PPL after chunk 4
"$Q" perplexity -m "$M" -f "$TEXT" -c 128 --chunks 4 -t 2 > "$tmp/out" 2> "$tmp/err" || fail "perplexity: $(cat "$tmp/err")"
grep -qE '^PPL = [0-9.]+ \+/- [0-9.]+$' "$tmp/out" || fail "no PPL line: $(cat "$tmp/out")"
grep -q '^\[4/4\] chunk PPL' "$tmp/err" || fail "no plain progress lines: $(cat "$tmp/err")"
grep -q 'tokens/s' "$tmp/err" || fail "no speed line"
/usr/bin/python3 - "$S/reference/perplexity.json" "$tmp/out" <<'PY' || fail "PPL differs from llama.cpp"
import json, math, re, sys
rec = [r for r in json.load(open(sys.argv[1])) if r["model"] == "stories260K.gguf" and r["ctx"] == 128][0]
ref = rec["chunks"][3]["ppl_running"]
got = float(re.search(r"PPL = ([0-9.]+)", open(sys.argv[2]).read()).group(1))
print("# PPL %.4f, reference running PPL after 4 chunks %.4f" % (got, ref))
sys.exit(0 if abs(math.log(got) - math.log(ref)) <= 0.02 else 1)
PY

# save, then compare with the same model (llama-perplexity's flag spelling for the compare)
"$Q" perplexity -m "$M" -f "$TEXT" -c 128 --chunks 2 -t 2 --save-logits "$tmp/base.lp" > /dev/null 2>&1 || fail "save"
"$Q" perplexity -m "$M" --kl-divergence-base "$tmp/base.lp" --kl-divergence -t 2 > "$tmp/kl" 2> "$tmp/err" || fail "kld: $(cat "$tmp/err")"
grep -qE '^Mean +KLD: +0\.000000' "$tmp/kl" || fail "self KLD not 0: $(cat "$tmp/kl")"
grep -qE '^Same top p : +100\.000 %' "$tmp/kl" || fail "self top agreement: $(cat "$tmp/kl")"
# --kl-divergence-base alone saves, like llama-perplexity
"$Q" perplexity -m "$M" -f "$TEXT" -c 128 --chunks 2 -t 2 --kl-divergence-base "$tmp/b2.lp" > /dev/null 2>&1 || fail "save via -base"
cmp -s "$tmp/base.lp" "$tmp/b2.lp" || fail "--kl-divergence-base alone should save the same file"

# eval
"$Q" eval -m "$M" -f "$T/eval/tasks_stories.jsonl" -t 2 > "$tmp/ev" 2> "$tmp/err" || fail "eval: $(cat "$tmp/err")"
grep -q '^tasks: 16$' "$tmp/ev" || fail "eval tasks: $(cat "$tmp/ev")"
grep -qE '^acc_norm .*95% CI \[[0-9.]+, [0-9.]+\] \(Wilson\)$' "$tmp/ev" || fail "eval acc_norm: $(cat "$tmp/ev")"
grep -qE '^acc  .*\(Wilson\)$' "$tmp/ev" || fail "eval acc: $(cat "$tmp/ev")"
"$Q" eval -m "$M" -f "$T/eval/tasks_stories.jsonl" -t 2 -v | grep -q '^task 0 (line 1), answer 0: \[0\] -' || fail "eval -v"

# bad input: exit status and message
expect() { # expect STATUS NEEDLE -- command...
    local want=$1 needle=$2; shift 3
    set +e; "$@" > /dev/null 2> "$tmp/e"; local rc=$?; set -e
    [ $rc -eq "$want" ] || fail "$*: exit $rc, expected $want ($(cat "$tmp/e"))"
    grep -qF -- "$needle" "$tmp/e" || fail "$*: message '$(cat "$tmp/e")' lacks '$needle'"
}
printf 'Once upon a time\n' > "$tmp/short.txt"
printf '%s\n' '{"context": "a", "choices": ["b", "c"], "answer": 0}' '{"context": "a", "choices": ["b"], "answer": 0}' > "$tmp/bad.jsonl"
printf 'not a log-probabilities file at all.....' > "$tmp/junk.lp"
expect 2 "give the text with -f FILE" -- "$Q" perplexity -m "$M"
expect 2 "unknown option '--bogus'" -- "$Q" perplexity -m "$M" -f "$TEXT" --bogus
expect 2 "-c expects an integer from 3" -- "$Q" perplexity -m "$M" -f "$TEXT" -c 2
expect 2 "--chunks needs a value" -- "$Q" perplexity -m "$M" -f "$TEXT" --chunks
expect 2 "--kl-divergence needs the saved file" -- "$Q" perplexity -m "$M" --kl-divergence
expect 2 "in separate runs" -- "$Q" perplexity -m "$M" --save-logits "$tmp/a" --kl-divergence "$tmp/b"
expect 1 "cannot open '/nonexistent.txt'" -- "$Q" perplexity -m "$M" -f /nonexistent.txt
expect 1 "needs at least 256" -- "$Q" perplexity -m "$M" -f "$tmp/short.txt" -c 128
expect 1 "is not a log-probabilities file" -- "$Q" perplexity -m "$M" --kl-divergence "$tmp/junk.lp"
expect 1 "cannot open log-probabilities file" -- "$Q" perplexity -m "$M" --kl-divergence "$tmp/none.lp"
expect 2 "give the tasks with -f" -- "$Q" eval -m "$M"
expect 2 "unknown option '--bogus'" -- "$Q" eval --bogus
expect 1 "line 2: \"choices\" must be an array of at least 2 strings" -- "$Q" eval -m "$M" -f "$tmp/bad.jsonl"
expect 1 "cannot open '/nonexistent.jsonl'" -- "$Q" eval -m "$M" -f /nonexistent.jsonl
echo ok

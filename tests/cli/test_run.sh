#!/usr/bin/env bash
# End-to-end `quarrel run` on stories260K: the greedy story from "Once upon a time" is
# llama.cpp's (../shared/reference/stories260K.json, up to its first near-tie), --json gives one
# object per token with the top-10 logits, and bad input gets clear errors and non-zero exits.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
M=$S/models/stories260K.gguf
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# the story: the reference's greedy text up to the first step whose top-2 gap is within tolerance
/usr/bin/python3 - "$S/reference/stories260K.json" > "$tmp/expected" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); tol = d["tolerance"]["abs_logit"]; c = d["cases"][0]
out = b""
for k, hexp in enumerate(c["greedy_pieces_hex"]):
    if c["steps"][k]["gap12"] <= tol: break
    out += bytes.fromhex(hexp)
sys.stdout.write(c["prompt"] + out.decode("utf-8", "replace"))
PY
"$Q" run -m "$M" -p "Once upon a time" -n 64 --temp 0 -t 2 > "$tmp/out" 2> "$tmp/err" || fail "run failed: $(cat "$tmp/err")"
exp=$(cat "$tmp/expected")
got=$(head -c ${#exp} "$tmp/out")
[ "$got" = "$exp" ] || fail "story differs: got [$got] expected [$exp]"
[ ${#exp} -gt 40 ] || fail "expected prefix too short to mean anything"
grep -q "generation: .* tok/s" "$tmp/err" || fail "no timing line on stderr"
# the weights left on the mapping (--no-repack) tell the same story
"$Q" run -m "$M" -p "Once upon a time" -n 64 --temp 0 -t 1 --no-repack > "$tmp/out_nr" 2> "$tmp/err" ||
    fail "run --no-repack failed: $(cat "$tmp/err")"
[ "$(head -c ${#exp} "$tmp/out_nr")" = "$exp" ] || fail "story differs with --no-repack: $(cat "$tmp/out_nr")"

# a bare name and the default model resolve through the models folder
QUARREL_MODELS=$S/models "$Q" run -m stories260K -p "Once upon a time" -n 8 --temp 0 > "$tmp/out2" 2>/dev/null || fail "name lookup"
head -c 30 "$tmp/out2" | grep -q "Once upon a time, there was" || fail "name lookup output: $(cat "$tmp/out2")"
"$Q" run -n 8 --temp 0 > "$tmp/out3" 2>/dev/null || fail "default model"
grep -q "Once upon a time" "$tmp/out3" || fail "default model output"

# --json: one object per token, top-10 logits, ids equal to llama.cpp's greedy ids
"$Q" run -m "$M" -p "Once upon a time" -n 5 --temp 0 --json > "$tmp/json" 2>/dev/null || fail "json run"
/usr/bin/python3 - "$tmp/json" "$S/reference/stories260K.json" <<'PY' || fail "json output"
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
ref = json.load(open(sys.argv[2]))["cases"][0]
assert len(lines) == 5, len(lines)
for k, o in enumerate(lines):
    assert len(o["top"]) == 10 and o["top"][0][0] == o["id"], o
    assert o["id"] == ref["greedy_ids"][k], (k, o["id"])
    assert abs(o["top"][0][1] - ref["steps"][k]["top"][0][1]) < 0.05
    # log-probabilities: a log-softmax of the same logits keeps their differences, the chosen
    # token's is the first (greedy), and the top-10 probabilities sum to at most 1
    lp = dict(o["top_logprobs"])
    assert abs(o["logprob"] - lp[o["id"]]) < 1e-6, o
    top = dict(o["top"])
    for t, l in lp.items():
        assert abs((l - o["logprob"]) - (top[t] - top[o["id"]])) < 1e-3, (t, l)
    assert sum(math.exp(l) for l in lp.values()) <= 1 + 1e-6
PY

# seeded sampling is reproducible through the CLI
a=$("$Q" run -m "$M" -p "Once upon a time" -n 32 --temp 1 --seed 42 2>/dev/null)
b=$("$Q" run -m "$M" -p "Once upon a time" -n 32 --temp 1 --seed 42 2>/dev/null)
[ "$a" = "$b" ] || fail "same seed, different text"

# the samplers beyond the default chain are accepted (XTC, mirostat v1)
"$Q" run -m "$M" -p "Once upon a time" -n 16 --seed 3 --xtc-probability 0.5 --xtc-threshold 0.1 \
    > "$tmp/samplers" 2> "$tmp/e" || fail "run with the XTC flags failed: $(cat "$tmp/e")"
grep -q "Once upon a time" "$tmp/samplers" || fail "XTC run output: $(cat "$tmp/samplers")"
"$Q" run -m "$M" -p "Once upon a time" -n 16 --seed 3 --mirostat 1 --mirostat-ent 3 \
    > "$tmp/samplers" 2> "$tmp/e" || fail "run with --mirostat 1 failed: $(cat "$tmp/e")"
grep -q "Once upon a time" "$tmp/samplers" || fail "mirostat 1 output: $(cat "$tmp/samplers")"
"$Q" run -m "$M" -p "Once upon a time" -n 16 --seed 3 --dry-multiplier 0.8 --dry-base 1.75 \
    --dry-allowed-length 2 --dry-penalty-last-n -1 --dry-sequence-breaker . \
    --dry-sequence-breaker "##" > "$tmp/samplers" 2> "$tmp/e" || fail "run with the DRY flags failed: $(cat "$tmp/e")"
grep -q "Once upon a time" "$tmp/samplers" || fail "DRY output: $(cat "$tmp/samplers")"
"$Q" run -m "$M" -p "Once upon a time" -n 16 --temp 0 --dry-multiplier 0.8 \
    --dry-sequence-breaker none > /dev/null 2> "$tmp/e" || fail "DRY without breakers: $(cat "$tmp/e")"

# the timing line counts the prompt (even of one token) and the generated tokens apart:
# stories260K's prompt "" is just BOS
"$Q" run -m "$M" -p "" -n 5 --temp 0 > /dev/null 2> "$tmp/t"
grep -q "^prompt: 1 tokens, .* | generation: 5 tokens, " "$tmp/t" || fail "timing line: $(cat "$tmp/t")"

# bad input
expect_err() { # expected-exit-code message-substring command...
    local code=$1 msg=$2; shift 2
    set +e; "$@" > /dev/null 2> "$tmp/e"; local rc=$?; set -e
    [ $rc -eq "$code" ] || fail "'$*' exited $rc, expected $code ($(cat "$tmp/e"))"
    grep -q -- "$msg" "$tmp/e" || fail "'$*': message '$(cat "$tmp/e")' lacks '$msg'"
}
expect_err 2 "unknown option '--bogus'" "$Q" run -m "$M" --bogus
expect_err 2 "-n expects an integer" "$Q" run -m "$M" -n abc
expect_err 2 "--temp needs a value" "$Q" run -m "$M" --temp
expect_err 1 "not found" "$Q" run -m no-such-model-xyz
expect_err 1 "context holds 8" "$Q" run -m "$M" -c 8 -p "Once upon a time there was a little girl who liked to play"
expect_err 2 "--xtc-probability expects a number from 0 to 1, got '1.5'" "$Q" run -m "$M" --xtc-probability 1.5
expect_err 2 "--dry-base expects a number from 1 to" "$Q" run -m "$M" --dry-base 0.5
expect_err 2 "--dry-penalty-last-n expects an integer from -1" "$Q" run -m "$M" --dry-penalty-last-n -5
expect_err 2 "--dry-sequence-breaker needs a value" "$Q" run -m "$M" --dry-sequence-breaker
printf 'GGUF\3\0\0\0garbage' > "$tmp/bad.gguf"
expect_err 1 "truncated" "$Q" run -m "$tmp/bad.gguf"
"$Q" run -m "$M" -c 16 -n 100 --temp 0 -p "Once upon a time" > /dev/null 2> "$tmp/e" || true
grep -q "context full" "$tmp/e" || fail "no context-full message: $(cat "$tmp/e")"
echo "ok"

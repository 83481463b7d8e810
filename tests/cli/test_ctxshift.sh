#!/usr/bin/env bash
# Context shift (issue 23) through `quarrel run`: stories260K with -c 64 -n 200 --context-shift
# --temp 0 gives llama.cpp's tokens driven through the same shifts (ctxshift_stories260K_ref.json,
# made by mk_ctxshift_refs.py with llama_memory_seq_rm/seq_add as llama-cli does it) up to the
# first near-tie, with --keep 0, 5, -1 (and a --keep longer than the prompt: the whole prompt),
# f16 and f32 caches (and smol135 with q8_0 and q4_0 keys shifts and keeps generating), 1 and 2 threads, and with speculative decoding (which ends at the first
# shift); without the flag a full context stops with a message; `chat` shifts within and across
# turns; every synthetic architecture
# (windowed layers, partial rotary, layers without RoPE, ...) shifts and keeps generating; bad
# --keep values are usage errors.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
M=$S/models/stories260K.gguf
REF=$T/cli/ctxshift_stories260K_ref.json
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

# the reference really shifts: five or more shifts per case, llama-cli's n_keep
/usr/bin/python3 - "$REF" <<'PY' || fail "reference file"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["n_ctx"] == 64 and d["n_predict"] == 200
keeps = [(c["keep"], c["kv_type"], c["n_keep"]) for c in d["cases"]]
assert keeps == [(0, "f16", 1), (5, "f16", 6), (-1, "f16", 9), (-1, "f16", 12), (0, "f32", 1)], keeps
for c in d["cases"]:
    assert len(c["greedy_ids"]) == 200 and len(c["shifts"]) >= 5, c["shifts"]
    assert c["shifts"][0]["n_past"] == 63, c["shifts"][0]
PY

# compare CASE NAME ARGS...: quarrel run --json against the reference case: ids up to the first
# near-tie, top-10 logits within the tolerance while the ids agree, and at least 150 ids
# checked where the reference has no near-tie before step 150
compare() {
    local case=$1 name=$2
    shift 2
    "$Q" run -m "$M" -c 64 -n 200 --context-shift --temp 0 --json "$@" > "$tmp/$name.jsonl" \
        2> "$tmp/$name.err" || fail "$name: run failed: $(cat "$tmp/$name.err")"
    grep -q "^context shifts: [5-9]" "$tmp/$name.err" || fail "$name: no shift reported: $(cat "$tmp/$name.err")"
    [ "$(wc -l < "$tmp/$name.jsonl")" = 200 ] || fail "$name: $(wc -l < "$tmp/$name.jsonl") tokens, not 200"
    /usr/bin/python3 "$T/cli/compare_run_json.py" "$tmp/$name.jsonl" "$REF" "$case" "$REF" "$name" \
        > "$tmp/$name.cmp" || fail "$(cat "$tmp/$name.cmp")"
    cat "$tmp/$name.cmp"
    /usr/bin/python3 - "$tmp/$name.cmp" "$REF" "$case" <<'PY' || fail "$name: too few ids compared: $(cat "$tmp/$name.cmp")"
import json, re, sys
last = int(re.search(r"ids checked through step (-?\d+)", open(sys.argv[1]).read()).group(1))
c = json.load(open(sys.argv[2]))["cases"][int(sys.argv[3])]
tie = c["first_near_tie"]
need = min(150, tie if tie is not None else 200)
assert last + 1 >= need and last + 1 >= min(tie or 200, 200), (last, tie)
PY
}
P1="The sun was shining" P2="Lily and Tom went to the park"
compare 0 keep0 -p "$P1" -t 1
compare 0 keep0_t2 -p "$P1" -t 2
compare 0 keep0_explicit -p "$P1" -t 1 --keep 0 --no-context-shift --context-shift
compare 1 keep5 -p "$P1" -t 1 --keep 5
compare 2 keep_all -p "$P1" -t 2 --keep -1
compare 2 keep_longer_than_prompt -p "$P1" -t 1 --keep 100
compare 3 keep_all_longer_prompt -p "$P2" -t 1 --keep -1
compare 4 f32 -p "$P1" -t 1 --kv-type f32
# a wrong n_keep is caught: case 0's run against case 1's reference must fail
if /usr/bin/python3 "$T/cli/compare_run_json.py" "$tmp/keep0.jsonl" "$REF" 1 "$REF" wrong > /dev/null; then
    fail "the comparison cannot tell --keep 0 from --keep 5"
fi
# speculative decoding: a draft model (stories260K drafting for itself) and n-gram lookup give
# the same greedy tokens; speculation stops at the first shift
compare 0 spec_draft -p "$P1" -t 1 -md "$M" --spec-draft-n-max 4
grep -q "^speculation: [1-9][0-9]* drafted" "$tmp/spec_draft.err" || fail "no drafting: $(cat "$tmp/spec_draft.err")"
compare 0 spec_ngram -p "$P1" -t 1 --spec-type ngram-simple

# without --context-shift a full context stops, with a message, after 64 - 9 tokens and a bit
"$Q" run -m "$M" -c 64 -n 200 --temp 0 --json -p "$P1" > "$tmp/noshift.jsonl" 2> "$tmp/noshift.err" ||
    fail "run without shift: $(cat "$tmp/noshift.err")"
grep -q "context full (64 tokens); stopping" "$tmp/noshift.err" || fail "no context-full message: $(cat "$tmp/noshift.err")"
n=$(wc -l < "$tmp/noshift.jsonl")
[ "$n" -ge 55 ] && [ "$n" -le 57 ] || fail "without shift: $n tokens"
! grep -q "context shifts" "$tmp/noshift.err" || fail "a shift without --context-shift"
# a --keep as large as the context: nothing to drop, so it stops as full too
"$Q" run -m "$M" -c 18 -n 100 --temp 0 --context-shift --keep -1 \
    -p "Once upon a time there was a little girl named Lily who" > "$tmp/full.out" 2> "$tmp/full.err" ||
    fail "run with nothing to drop: $(cat "$tmp/full.err")"
grep -q "context full" "$tmp/full.err" || fail "nothing to drop: $(cat "$tmp/full.err")"

# every synthetic architecture shifts and keeps generating, f16 and f32 caches: 80 tokens with a
# context of 24, finite logits
for arch in llama qwen2 qwen3 gemma2 gemma3 phi3 olmo2 granite smollm3; do
    "$Q" synth --arch "$arch" -o "$tmp/$arch.gguf" 2> "$tmp/err" || fail "synth $arch: $(cat "$tmp/err")"
    for kv in f16 f32; do
        "$Q" run -m "$tmp/$arch.gguf" -p "a b c d" -c 24 -n 80 --context-shift --keep 2 \
            --ignore-eos --temp 0 -t 2 --kv-type $kv --json > "$tmp/a.jsonl" 2> "$tmp/a.err" ||
            fail "$arch $kv: $(cat "$tmp/a.err")"
        grep -q "^context shifts: [1-9]" "$tmp/a.err" || fail "$arch $kv: no shift: $(cat "$tmp/a.err")"
        /usr/bin/python3 - "$tmp/a.jsonl" <<'PY' || fail "$arch $kv: output"
import json, math, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert len(rows) == 80, len(rows)
assert all(isinstance(l, (int, float)) and math.isfinite(l) for r in rows for _, l in r["top"])
PY
    done
done

# quantized K caches shift too, as llama.cpp's k-shift does it (dequantize, turn back from the
# Walsh-Hadamard rotation, rope, rotate, quantize again): smol135 (head size 64, so the K
# rotation is on) with q8_0 keys (f16 or q8_0 values) and q4_0 keys and values against
# ctxshift_smol135-qkv_ref.json (mk_ctxshift_refs.py --set smol135-qkv), 1 and 2 threads
SMOL=$S/models/smol135-q4_k_m.gguf SREF=$T/cli/ctxshift_smol135-qkv_ref.json
for c in "0|-ctk q8_0" "1|-ctk q8_0 -ctv q8_0" "2|-ctk q4_0 -ctv q4_0" "0|-ctk q8_0 -fa on"; do
    i=${c%%|*} kv=${c#*|}
    for th in 1 2; do
        "$Q" run -m "$SMOL" -p "The sun was shining" -c 32 -n 60 --context-shift --keep 2 \
            --temp 0 -t $th $kv --json > "$tmp/q.jsonl" 2> "$tmp/q.err" ||
            fail "smol135 $kv -t $th: $(cat "$tmp/q.err")"
        grep -q "^context shifts: 3" "$tmp/q.err" || fail "smol135 $kv: shifts: $(cat "$tmp/q.err")"
        /usr/bin/python3 "$T/cli/compare_run_json.py" "$tmp/q.jsonl" "$SREF" "$i" "$SREF" \
            "smol135 $kv -t $th" > "$tmp/q.cmp" || fail "$(cat "$tmp/q.cmp")"
        cat "$tmp/q.cmp"
        grep -q "60 steps compared, ids checked through step \(59\|40\)" "$tmp/q.cmp" ||
            fail "smol135 $kv: too few steps compared: $(cat "$tmp/q.cmp")"
    done
done

# chat: a reply runs past the context with --context-shift, and later turns whose conversation
# no longer fits lose its middle the same way (the kept tokens reused from the cache); without
# the flag the reply is cut short
printf 'Tell me a story\nMore please\nAnd again\n' |
    "$Q" chat -m "$M" -c 64 -n 150 --temp 0 --context-shift --keep 2 --ignore-eos --verbose -t 1 \
        > "$tmp/chat.out" 2> "$tmp/chat.err" || fail "chat: $(cat "$tmp/chat.err")"
[ "$(grep -c "^chat: reply: 150 tokens (limit of -n tokens)" "$tmp/chat.err")" = 3 ] ||
    fail "chat replies: $(cat "$tmp/chat.err")"
grep -q "^chat: turn 2: .* 3 reused from the cache" "$tmp/chat.err" || fail "chat reuse: $(cat "$tmp/chat.err")"
printf 'Tell me a story\n' | "$Q" chat -m "$M" -c 64 -n 150 --temp 0 --ignore-eos --verbose -t 1 \
    > /dev/null 2> "$tmp/chat.err" || fail "chat without shift: $(cat "$tmp/chat.err")"
grep -q "context full (64 tokens): the reply is cut short" "$tmp/chat.err" || fail "chat stop: $(cat "$tmp/chat.err")"
rc=0
"$Q" chat -m "$M" --context-shift --keep x < /dev/null > /dev/null 2> "$tmp/chat.err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--keep expects an integer" "$tmp/chat.err" || fail "chat --keep x: rc $rc"

# bad input: clear errors, usage exit status
bad() { # bad MESSAGE ARGS...
    local want=$1 rc=0
    shift
    "$Q" run -m "$M" -n 4 "$@" > /dev/null 2> "$tmp/bad.err" || rc=$?
    [ "$rc" -ge 1 ] && [ "$rc" -le 123 ] || fail "$* exit $rc"
    grep -q -- "$want" "$tmp/bad.err" || fail "$*: message $(cat "$tmp/bad.err")"
}
bad "--keep expects an integer from -1" --context-shift --keep abc
bad "--keep expects an integer from -1" --context-shift --keep -2
bad "--keep expects an integer from -1" --context-shift --keep 1.5
bad "--keep expects an integer from -1" --keep 99999999999
bad "--keep needs a value" --context-shift --keep
bad "unknown option '--context-shift=1'" --context-shift=1
echo "PASS"

#!/usr/bin/env bash
# `quarrel tokenize`: ids equal llama.cpp's prompt_tokens (../shared/reference/*.json), both
# output formats, -f reads every byte of a file, --special parses special tokens, and errors.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for m in stories260K smol135-q4_k_m qwen2-tiny-q8_0; do
    n=$(/usr/bin/python3 -c "import json; print(len(json.load(open('$S/reference/$m.json'))['cases']))")
    for ((c = 0; c < n; c++)); do
        /usr/bin/python3 -c "import json,sys; sys.stdout.write(json.load(open('$S/reference/$m.json'))['cases'][$c]['prompt'])" > "$tmp/prompt"
        want=$(/usr/bin/python3 -c "import json; print(' '.join(map(str, json.load(open('$S/reference/$m.json'))['cases'][$c]['prompt_tokens'])))")
        got=$("$Q" tokenize -m "$S/models/$m.gguf" --ids -f "$tmp/prompt")
        [ "$got" = "$want" ] || fail "$m case $c: got [$got] want [$want]"
    done
done
# one `id 'piece'` per line
out=$("$Q" tokenize -m "$S/models/stories260K.gguf" "Once upon a time")
[ "$(echo "$out" | head -1 | tr -s ' ')" = " 1 '<s>'" ] || fail "first line: $(echo "$out" | head -1)"
echo "$out" | grep -q "^ *403 ' Once'$" || fail "piece line"
[ "$("$Q" tokenize -m "$S/models/stories260K.gguf" --no-bos --ids "Once")" = "403" ] || fail "--no-bos"
# special tokens: one token only with --special (151644 is qwen2's <|im_start|>)
[ "$("$Q" tokenize -m "$S/models/qwen2-tiny-q8_0.gguf" --ids --special "<|im_start|>")" = "151644" ] || fail "--special"
[ "$("$Q" tokenize -m "$S/models/qwen2-tiny-q8_0.gguf" --ids "<|im_start|>" | wc -w)" -gt 1 ] || fail "no --special"
# errors
set +e
"$Q" tokenize -m "$S/models/stories260K.gguf" 2> "$tmp/e"; rc=$?
[ $rc -eq 2 ] && grep -q "either TEXT or -f FILE" "$tmp/e" || fail "no text: $rc"
"$Q" tokenize -m "$S/models/stories260K.gguf" -f /nonexistent 2> "$tmp/e"; rc=$?
[ $rc -eq 1 ] && grep -q "cannot open '/nonexistent'" "$tmp/e" || fail "missing file: $rc"
"$Q" tokenize -m "$S/models/stories260K.gguf" --frobnicate x 2> "$tmp/e"; rc=$?
[ $rc -eq 2 ] && grep -q "unknown option '--frobnicate'" "$tmp/e" || fail "bad flag: $rc"
set -e
echo ok

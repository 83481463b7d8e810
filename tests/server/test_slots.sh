#!/usr/bin/env bash
# test_slots.sh - the server's slot save/restore/erase (llama.cpp's POST
# /slots/{id}?action=save|restore|erase with {"filename"} under --slot-save-path, issue 23):
# a greedy request's slot is saved, another request takes the slot, the file is restored, and
# the same request again evaluates one prompt token (timings.prompt_n) and answers the same text
# with the same logprobs, byte for byte, as the first (uninterrupted) one; after erase it
# evaluates the whole prompt again, same answer. Restoring into another slot (2 slots) routes
# the request there. llama.cpp's reply shapes. Refused with 4xx, nothing written outside the
# folder, the slot untouched: filenames that would leave the folder ('/', '..', leading dot),
# a missing filename, an unknown action, a bad slot id, a missing, truncated or corrupt file,
# a file of another model; without --slot-save-path llama.cpp's 501; a --slot-save-path that
# is no folder is a usage error.
set -euo pipefail
source "$QR_TEST_DIR/server/server_lib.sh"
M=$QR_SHARED_DIR/models/stories260K.gguf
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT
mkdir -p "$tmp/slots"

post() { # post PATH BODY OUT: the HTTP status on stdout
    curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "$2" "http://127.0.0.1:$PORT$1"
}
field() { # field FILE EXPR: a Python expression over the JSON reply r
    /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"
}
REQ='{"prompt":"Once upon a time, there was a little dog named Max. Max liked to run","max_tokens":32,"temperature":0,"logprobs":5}'
OTHER='{"prompt":"The sun was shining on the big green hill","max_tokens":8,"temperature":0}'
# same ANSWER1 ANSWER2: the same text and logprobs
same() {
    /usr/bin/python3 - "$1" "$2" <<'PY' || fail "answers differ: $(head -c 400 "$1") / $(head -c 400 "$2")"
import json, sys
a, b = (json.load(open(f))["choices"][0] for f in sys.argv[1:3])
assert a["text"] == b["text"], (a["text"], b["text"])
assert a["logprobs"] == b["logprobs"], "logprobs differ"
assert len(a["logprobs"]["tokens"]) == 32
PY
}

# ---- without --slot-save-path: llama.cpp's 501 ----
start_server "$tmp/log0" -m "$M" -c 256 -t 1
[ "$(post '/slots/0?action=save' '{"filename":"x.bin"}' "$tmp/r")" = 501 ] || fail "no save path: $(cat "$tmp/r")"
grep -q 'does not support slots action. Start it with `--slot-save-path`' "$tmp/r" || fail "501 message: $(cat "$tmp/r")"
[ "$(field "$tmp/r" 'r["error"]["type"]')" = not_supported_error ] || fail "501 type: $(cat "$tmp/r")"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
echo "ok   without --slot-save-path: 501"

# ---- one slot: save, another request, restore, the same request ----
start_server "$tmp/log1" -m "$M" -c 256 -t 1 --slot-save-path "$tmp/slots"
[ "$(post /v1/completions "$REQ" "$tmp/a1")" = 200 ] || fail "first request: $(cat "$tmp/a1")"
n_prompt=$(field "$tmp/a1" 'r["usage"]["prompt_tokens"]')
[ "$(field "$tmp/a1" 'r["timings"]["prompt_n"]')" = "$n_prompt" ] || fail "first request's prompt_n"
[ "$(post '/slots/0?action=save' '{"filename":"a.bin"}' "$tmp/s")" = 200 ] || fail "save: $(cat "$tmp/s")"
/usr/bin/python3 - "$tmp/s" "$tmp/slots/a.bin" "$n_prompt" <<'PY' || fail "save reply: $(cat "$tmp/s")"
import json, os, sys
r = json.load(open(sys.argv[1]))
assert set(r) == {"id_slot", "filename", "n_saved", "n_written", "timings"}, r
assert r["id_slot"] == 0 and r["filename"] == "a.bin"
assert r["n_saved"] == int(sys.argv[3]) + 31, r  # the prompt and the generated tokens but the last
assert r["n_written"] == os.path.getsize(sys.argv[2]) > 0, r
assert r["timings"]["save_ms"] >= 0
PY
n_saved=$(field "$tmp/s" 'r["n_saved"]')
[ "$(post /v1/completions "$OTHER" "$tmp/o")" = 200 ] || fail "other request: $(cat "$tmp/o")"
[ "$(post '/slots/0?action=restore' '{"filename":"a.bin"}' "$tmp/rs")" = 200 ] || fail "restore: $(cat "$tmp/rs")"
/usr/bin/python3 - "$tmp/rs" "$tmp/slots/a.bin" "$n_saved" <<'PY' || fail "restore reply: $(cat "$tmp/rs")"
import json, os, sys
r = json.load(open(sys.argv[1]))
assert set(r) == {"id_slot", "filename", "n_restored", "n_read", "timings"}, r
assert r["id_slot"] == 0 and r["filename"] == "a.bin" and r["n_restored"] == int(sys.argv[3]), r
assert r["n_read"] == os.path.getsize(sys.argv[2]) and r["timings"]["restore_ms"] >= 0, r
PY
[ "$(post /v1/completions "$REQ" "$tmp/a2")" = 200 ] || fail "restored request: $(cat "$tmp/a2")"
[ "$(field "$tmp/a2" 'r["timings"]["prompt_n"]')" = 1 ] || fail "restored request evaluated $(field "$tmp/a2" 'r["timings"]["prompt_n"]') prompt tokens, not 1"
same "$tmp/a1" "$tmp/a2"
echo "ok   save, another request, restore: 1 of $n_prompt prompt tokens evaluated, the same text and logprobs"

# erase: the whole prompt again, the same answer
[ "$(post '/slots/0?action=erase' '' "$tmp/e")" = 200 ] || fail "erase: $(cat "$tmp/e")"
/usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r == {"id_slot": 0, "n_erased": int(sys.argv[2]) + 31}, r' \
    "$tmp/e" "$n_prompt" || fail "erase reply: $(cat "$tmp/e")"
[ "$(post /v1/completions "$REQ" "$tmp/a3")" = 200 ] || fail "after erase: $(cat "$tmp/a3")"
[ "$(field "$tmp/a3" 'r["timings"]["prompt_n"]')" = "$n_prompt" ] || fail "after erase the prompt was reused"
same "$tmp/a1" "$tmp/a3"
echo "ok   erase: the whole prompt evaluated again, the same answer"

# ---- refusals: 4xx, the slot untouched, nothing written outside the folder ----
[ "$(post '/slots/0?action=restore' '{"filename":"a.bin"}' "$tmp/rs")" = 200 ] || fail "restore again"
refuse() { # refuse STATUS URL BODY MESSAGE
    local code
    code=$(post "$2" "$3" "$tmp/x")
    [ "$code" = "$1" ] || fail "$2 $3: HTTP $code, expected $1: $(cat "$tmp/x")"
    grep -q -- "$4" "$tmp/x" || fail "$2 $3: message: $(cat "$tmp/x")"
    [ "$(field "$tmp/x" 'r["error"]["code"]')" = "$1" ] || fail "$2: error shape: $(cat "$tmp/x")"
}
for name in '../escape.bin' '../../tmp/escape.bin' 'sub/escape.bin' '..' '.' '.hidden' \
    '/etc/passwd' 'a\\b' '' 'trailing.' ' lead'; do
    refuse 400 '/slots/0?action=save' "{\"filename\":\"$name\"}" "Invalid filename"
    refuse 400 '/slots/0?action=restore' "{\"filename\":\"$name\"}" "Invalid filename"
done
[ ! -e "$tmp/escape.bin" ] && [ -z "$(find "$tmp/slots" -name 'escape*')" ] || fail "a file was written"
refuse 400 '/slots/0?action=save' '{}' "'filename' (a string) is required"
refuse 400 '/slots/0?action=save' '{"filename":7}' "'filename' (a string) is required"
refuse 400 '/slots/0?action=save' 'not json' ""
refuse 400 '/slots/0?action=fly' '{"filename":"a.bin"}' "Invalid action"
refuse 400 '/slots/0' '{"filename":"a.bin"}' "Invalid action"
refuse 400 '/slots/1?action=erase' '' "Invalid slot ID"
refuse 400 '/slots/-1?action=erase' '' "Invalid slot ID"
refuse 400 '/slots/abc?action=erase' '' "Invalid slot ID"
refuse 400 '/slots/?action=erase' '' "Invalid slot ID"
refuse 400 '/slots/0?action=restore' '{"filename":"missing.bin"}' "Unable to restore slot"
size=$(stat -c %s "$tmp/slots/a.bin")
head -c $((size / 2)) "$tmp/slots/a.bin" > "$tmp/slots/trunc.bin"
refuse 400 '/slots/0?action=restore' '{"filename":"trunc.bin"}' "truncated"
cp "$tmp/slots/a.bin" "$tmp/slots/corrupt.bin"
printf '\x55' | dd of="$tmp/slots/corrupt.bin" bs=1 seek=$((size - 40)) conv=notrunc 2>/dev/null
refuse 400 '/slots/0?action=restore' '{"filename":"corrupt.bin"}' "checksum"
"$QUARREL" run -m "$QR_SHARED_DIR/models/smol135-q4_k_m.gguf" -p "Hello" -n 2 -t 1 \
    --prompt-cache "$tmp/slots/smol.bin" > /dev/null 2>&1 || fail "making smol135's state file"
refuse 400 '/slots/0?action=restore' '{"filename":"smol.bin"}' "another model"
code=$(curl -s -o "$tmp/x" -w '%{http_code}' "http://127.0.0.1:$PORT/slots/0?action=save")
[ "$code" = 405 ] || fail "GET /slots/0: HTTP $code"
# the refused restores left the restored cache in place
[ "$(post /v1/completions "$REQ" "$tmp/a4")" = 200 ] || fail "after refusals: $(cat "$tmp/a4")"
[ "$(field "$tmp/a4" 'r["timings"]["prompt_n"]')" = 1 ] || fail "a refused restore changed the slot"
same "$tmp/a1" "$tmp/a4"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
echo "ok   bad filenames, actions, slot ids and files refused with 4xx; the slot kept its cache"

# ---- two slots: a state restored into slot 1 serves the request there ----
start_server "$tmp/log2" -m "$M" -c 512 -t 1 --parallel 2 --slot-save-path "$tmp/slots"
[ "$(post '/slots/1?action=restore' '{"filename":"a.bin"}' "$tmp/rs")" = 200 ] || fail "restore into slot 1: $(cat "$tmp/rs")"
[ "$(field "$tmp/rs" 'r["id_slot"]')" = 1 ] || fail "restore into slot 1: $(cat "$tmp/rs")"
[ "$(post /v1/completions "$REQ" "$tmp/a5")" = 200 ] || fail "two slots: $(cat "$tmp/a5")"
[ "$(field "$tmp/a5" 'r["timings"]["prompt_n"]')" = 1 ] || fail "two slots: the restored slot was not used"
same "$tmp/a1" "$tmp/a5"
[ "$(post '/slots/0?action=save' '{"filename":"empty.bin"}' "$tmp/s0")" = 200 ] || fail "saving an empty slot"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
echo "ok   two slots: restored into slot 1, the request reused it"

# ---- a --slot-save-path that is not a folder ----
set +e
"$QUARREL" serve -m "$M" --slot-save-path "$tmp/nope" > /dev/null 2> "$tmp/err"
rc=$?
set -e
[ "$rc" -ge 1 ] && [ "$rc" -le 123 ] && grep -q "not a directory" "$tmp/err" || fail "--slot-save-path nope: exit $rc: $(cat "$tmp/err")"
echo "ok   --slot-save-path that is no folder: exit $rc"

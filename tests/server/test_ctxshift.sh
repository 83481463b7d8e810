#!/usr/bin/env bash
# test_ctxshift.sh - `quarrel serve --context-shift`: a greedy request runs past a slot's
# context of 64 cells to 200 tokens, its text llama.cpp's driven through the same shifts
# (tests/cli/ctxshift_stories260K_ref.json) up to the first near-tie: with the server's n_keep
# (0), a request's "n_keep" of 5 (the server adds the BOS as llama.cpp's does: 6 kept, the
# reference's --keep 5), two slots at once, and with n-gram speculation; /metrics counts the
# shifts; without the flag a full slot stops with "length"; bad n_keep/n_discard values get 400
# and a bad --keep a usage error.
set -euo pipefail
source "$QR_TEST_DIR/server/server_lib.sh"
M=$QR_SHARED_DIR/models/stories260K.gguf
REF=$QR_TEST_DIR/cli/ctxshift_stories260K_ref.json
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT

post() { # post PATH BODY OUT: the HTTP status on stdout
    curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' \
        -d "$2" "http://127.0.0.1:$PORT$1"
}
# expected CASE: the reference's text up to its first near-tie
expected() {
    /usr/bin/python3 - "$REF" "$1" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); c = d["cases"][int(sys.argv[2])]
n = c["first_near_tie"] if c["first_near_tie"] is not None else len(c["greedy_ids"])
sys.stdout.write(b"".join(bytes.fromhex(h) for h in c["greedy_pieces_hex"][:n]).decode())
PY
}
# check OUT CASE NAME: 200 tokens, finish "length", the text starts with the reference's
check() {
    /usr/bin/python3 - "$1" "$tmp/exp$2" "$3" <<'PY' || fail "$3: $(head -c 600 "$1")"
import json, sys
r = json.load(open(sys.argv[1])); exp = open(sys.argv[2]).read()
c = r["choices"][0]
assert r["usage"]["completion_tokens"] == 200, r["usage"]
assert c["finish_reason"] == "length", c["finish_reason"]
assert len(exp) > 400, len(exp)
assert c["text"].startswith(exp), "%s: got %r, llama.cpp %r" % (sys.argv[3], c["text"][:len(exp)], exp)
print("ok   %s: 200 tokens, llama.cpp's text for %d characters" % (sys.argv[3], len(exp)))
PY
}
expected 0 > "$tmp/exp0"
expected 1 > "$tmp/exp1"
REQ='"prompt":"The sun was shining","max_tokens":200,"temperature":0'

start_server "$tmp/log" -m "$M" -c 64 -t 1 --context-shift
[ "$(post /v1/completions "{$REQ}" "$tmp/r0")" = 200 ] || fail "request: $(cat "$tmp/r0")"
check "$tmp/r0" 0 keep0
[ "$(post /v1/completions "{$REQ,\"n_keep\":5}" "$tmp/r1")" = 200 ] || fail "n_keep 5: $(cat "$tmp/r1")"
check "$tmp/r1" 1 n_keep5
# the whole prompt kept, and a fixed n_discard: the request still runs to 200 tokens
for extra in '"n_keep":-1' '"n_discard":7' '"n_keep":3,"n_discard":100'; do
    [ "$(post /v1/completions "{$REQ,$extra}" "$tmp/rx")" = 200 ] || fail "$extra: $(cat "$tmp/rx")"
    /usr/bin/python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); assert r["usage"]["completion_tokens"] == 200, r' \
        "$tmp/rx" || fail "$extra: $(cat "$tmp/rx")"
done
curl -s "http://127.0.0.1:$PORT/metrics" > "$tmp/metrics"
shifts=$(sed -n 's/^quarrel_context_shifts_total \([0-9]*\).*/\1/p' "$tmp/metrics")
[ -n "$shifts" ] && [ "$shifts" -ge 20 ] || fail "context shifts in /metrics: '$shifts'"
# bad values: 400 with a message naming the field
[ "$(post /v1/completions "{$REQ,\"n_keep\":\"x\"}" "$tmp/bad")" = 400 ] || fail "n_keep x: $(cat "$tmp/bad")"
grep -q "n_keep" "$tmp/bad" || fail "n_keep message: $(cat "$tmp/bad")"
[ "$(post /v1/completions "{$REQ,\"n_discard\":-3}" "$tmp/bad")" = 400 ] || fail "n_discard -3: $(cat "$tmp/bad")"
grep -q "n_discard" "$tmp/bad" || fail "n_discard message: $(cat "$tmp/bad")"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

# two slots of 64 cells, two requests at once, both shifting within the same steps; the server's
# --keep 5 is a request's n_keep 5
start_server "$tmp/log2" -m "$M" -c 128 --parallel 2 -t 2 --context-shift --keep 5
post /v1/completions "{$REQ}" "$tmp/p0" > "$tmp/s0" &
a=$!
post /v1/completions "{$REQ,\"n_keep\":0}" "$tmp/p1" > "$tmp/s1"
wait $a
[ "$(cat "$tmp/s0")" = 200 ] && [ "$(cat "$tmp/s1")" = 200 ] || fail "parallel: $(cat "$tmp/p0" "$tmp/p1")"
check "$tmp/p0" 1 parallel_server_keep5
check "$tmp/p1" 0 parallel_keep0
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

# n-gram speculation: the same text; the drafter follows the shifted cache
start_server "$tmp/log3" -m "$M" -c 64 -t 1 --context-shift --spec-type ngram-simple
[ "$(post /v1/completions "{$REQ}" "$tmp/r3")" = 200 ] || fail "spec: $(cat "$tmp/r3")"
check "$tmp/r3" 0 ngram_speculation
/usr/bin/python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["timings"]; assert t["draft_n"] > 0, t' \
    "$tmp/r3" || fail "no drafting: $(cat "$tmp/r3")"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

# without --context-shift a full slot stops with "length" before 64 tokens
start_server "$tmp/log4" -m "$M" -c 64 -t 1
[ "$(post /v1/completions "{$REQ}" "$tmp/r4")" = 200 ] || fail "no shift: $(cat "$tmp/r4")"
/usr/bin/python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
n = r["usage"]["completion_tokens"]
assert r["choices"][0]["finish_reason"] == "length" and 50 <= n < 64, r["usage"]' "$tmp/r4" ||
    fail "no shift: $(cat "$tmp/r4")"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

# a bad --keep is a usage error
rc=0
"$QUARREL" serve -m "$M" --context-shift --keep abc > /dev/null 2> "$tmp/err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--keep expects an integer" "$tmp/err" || fail "serve --keep abc: rc $rc $(cat "$tmp/err")"
echo PASS

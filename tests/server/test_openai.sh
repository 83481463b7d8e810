#!/usr/bin/env bash
# test_openai.sh - end-to-end test of `quarrel serve` on stories260K: the official OpenAI SDK
# (npm openai, pinned in package.json, installed into the build directory) runs
# openai_test.mjs; then a curl client killed mid-stream and a full queue (429) are checked
# here. Needs node and npm: without them the test fails.
set -euo pipefail
model="$QR_SHARED_DIR/models/stories260K.gguf"
. "$QR_TEST_DIR/server/server_lib.sh"
npm_setup "$PWD/node-test" openai_test.mjs harness.mjs
work="$PWD/node-test"

key=test-key-123
start_server server.log -m "$model" --parallel 8 -c 2048 -t 2 --api-key "$key"
base="http://127.0.0.1:$PORT"

BASE_URL=$base API_KEY=$key REFERENCE="$QR_SHARED_DIR/reference/stories260K.json" \
    EMBED_REFS="$QR_TEST_DIR/runtime/embed_refs.json" \
    timeout 400 node "$work/openai_test.mjs"

# A client that drops its connection mid-stream: the server keeps serving, frees the slot and counts
# the request as cancelled.
cancelled() {
    curl -s "$base/metrics" -H "Authorization: Bearer $key" | sed -n 's/^quarrel_requests_cancelled_total //p'
}
c0=$(cancelled)
# The client drops the connection (RST) the moment the first event arrives: stories260K fills
# its 256-cell slot in a few milliseconds, so anything slower than this may see the whole stream.
BASE="$base" KEY="$key" timeout 60 /usr/bin/python3 - <<'PY' || { echo "FAIL: the stream never started"; exit 1; }
import os, socket, struct, sys, urllib.parse
u = urllib.parse.urlparse(os.environ["BASE"])
body = b'{"prompt":"Once upon a time","max_tokens":2000,"temperature":0,"stream":true}'
s = socket.create_connection((u.hostname, u.port))
s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
          b"Authorization: Bearer " + os.environ["KEY"].encode() + b"\r\nContent-Length: "
          + str(len(body)).encode() + b"\r\n\r\n" + body)
got = b""
while b"data: " not in got:
    chunk = s.recv(65536)
    if not chunk:
        sys.exit(1)
    got += chunk
s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
s.close()
PY
busy=
for _ in $(seq 1 600); do
    busy=$(curl -s "$base/metrics" -H "Authorization: Bearer $key" | sed -n 's/^quarrel_slots_busy //p')
    [ "$busy" = 0 ] && break
    sleep 0.05
done
[ "$busy" = 0 ] || { echo "FAIL: the killed client's slot is still busy ($busy)"; exit 1; }
c1=$(cancelled)
[ "$((c1 - c0))" = 1 ] || { echo "FAIL: cancelled requests went from $c0 to $c1, not up by 1"; exit 1; }
out=$(curl -s "$base/v1/completions" -H "Authorization: Bearer $key" \
    -d '{"prompt":"Once upon a time","max_tokens":5,"temperature":0}')
echo "$out" | grep -q '"text":", there was a little"' ||
    { echo "FAIL: after a killed client the server answered: $out"; exit 1; }
echo "ok   a client killed mid-stream leaves the server serving"

# A full queue: one slot, one waiting place; a burst of long requests (1000 tokens each, so the
# first is still running when the last arrives) gets 429 for the rest.
start_server server2.log -m "$model" --parallel 1 --queue 1 -t 1
base2="http://127.0.0.1:$PORT"
for i in 1 2 3 4 5; do
    curl -s -o "burst$i.json" -w '%{http_code}\n' "$base2/v1/completions" \
        -d '{"prompt":"Once upon a time","max_tokens":1000,"temperature":0}' >"burst$i.code" &
done
wait_for=(); for i in 1 2 3 4 5; do wait_for+=("burst$i.code"); done
for _ in $(seq 1 600); do
    n=0
    for f in "${wait_for[@]}"; do [ -s "$f" ] && n=$((n + 1)); done
    [ "$n" = 5 ] && break
    sleep 0.1
done
codes=$(cat burst*.code | sort | tr '\n' ' ')
echo "burst status codes: $codes"
echo "$codes" | grep -q 200 || { echo "FAIL: no request of the burst succeeded"; exit 1; }
echo "$codes" | grep -q 429 || { echo "FAIL: a full queue did not answer 429"; exit 1; }
grep -l '"code":429' burst*.json | head -1 | xargs grep -q 'server is busy' ||
    { echo "FAIL: the 429 answer does not say the server is busy"; exit 1; }
echo "ok   a full queue answers 429"

# SIGTERM stops the server cleanly
kill -TERM "$SERVER_PID"
for _ in $(seq 1 300); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$SERVER_PID" 2>/dev/null; then echo "FAIL: SIGTERM did not stop the server"; exit 1; fi
wait "$SERVER_PID" || { echo "FAIL: the server exited with an error after SIGTERM"; cat server2.log; exit 1; }
grep -q 'quarrel serve: stopped' server2.log || { echo "FAIL: no clean stop"; cat server2.log; exit 1; }
echo "ok   SIGTERM stops the server"
echo "all server end-to-end checks passed"

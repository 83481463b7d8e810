#!/usr/bin/env bash
# test_serve_cli.sh - `quarrel serve` option errors: each bad invocation exits non-zero with a
# message naming the problem; a port already in use is reported, not crashed on.
set -uo pipefail
: "${QUARREL:?}" "${QR_SHARED_DIR:?}"
model="$QR_SHARED_DIR/models/stories260K.gguf"
fails=0

# expect_error EXPECTED_SUBSTRING ARGS...
expect_error() {
    local want=$1
    shift
    local out rc
    out=$(timeout 20 "$QUARREL" serve "$@" 2>&1 </dev/null)
    rc=$?
    if [ "$rc" = 0 ] || [ "$rc" = 124 ] || ! grep -qF -- "$want" <<<"$out"; then
        echo "FAIL: quarrel serve $* -> rc $rc, output: $out (wanted: $want)"
        fails=$((fails + 1))
    else
        echo "ok   serve $* -> $want"
    fi
}

expect_error "unknown option '--bogus'" -m "$model" --bogus
expect_error "--port expects an integer from 0 to 65535, got 'abc'" -m "$model" --port abc
expect_error "--port expects an integer from 0 to 65535, got '70000'" -m "$model" --port 70000
expect_error "--parallel expects an integer from 1 to 256, got '0'" -m "$model" --parallel 0
expect_error "--port needs a value" -m "$model" --port
expect_error "give either --api-key or --api-key-file, not both" -m "$model" --api-key a --api-key-file /dev/null
expect_error "--api-key must not be empty" -m "$model" --api-key ""
expect_error "/nonexistent/key" -m "$model" --api-key-file /nonexistent/key
keyfile=$(mktemp)
expect_error "is empty" -m "$model" --api-key-file "$keyfile"
rm -f "$keyfile"
expect_error "host 'not-an-address' is not a numeric IPv4 or IPv6 address" -m "$model" --host not-an-address --port 0
expect_error "no-such-model" -m no-such-model --port 0
notgguf=$(mktemp)
echo "not a gguf file" >"$notgguf"
expect_error "quarrel: serve:" -m "$notgguf" --port 0
rm -f "$notgguf"
expect_error "context of 4 cells cannot hold 8 sequences" -m "$model" --port 0 --parallel 8 -c 4

# a port already in use: the second server says so
log=$(mktemp)
"$QUARREL" serve -m "$model" --port 0 -t 1 2>"$log" &
pid=$!
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "FAIL: the first server did not start: $(cat "$log")"
    fails=$((fails + 1))
else
    expect_error "cannot listen on 127.0.0.1 port $port" -m "$model" --port "$port"
fi
kill "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -f "$log"

[ "$fails" = 0 ] && echo "all serve option checks passed"
exit $((fails > 0))

#!/usr/bin/env bash
# test_page.sh - the chat page of `quarrel serve` (GET /) end to end. curl checks the route
# (200 text/html with the textarea and the Send button, no API key needed, HEAD, the ETag's
# 304, 404 and 405 beside it); then Debian's chromium, driven by puppeteer-core (pinned in
# package.json, installed into build/page-test), runs page_test.mjs against the server on
# stories260K. Needs chromium, node, npm and curl: without them the test fails. The
# screenshot is left in build/page-test/screenshot.png.
set -euo pipefail
: "${QUARREL:?}" "${QR_SHARED_DIR:?}" "${QR_TEST_DIR:?}"
here="$QR_TEST_DIR/page"
work="$PWD/page-test"
model="$QR_SHARED_DIR/models/stories260K.gguf"
version=24.43.1

for tool in chromium node npm curl; do
    command -v "$tool" >/dev/null || { echo "FAIL: $tool is not installed"; exit 1; }
done

mkdir -p "$work"
cp "$here/package.json" "$here/page_test.mjs" "$work/"
rm -f "$work/screenshot.png"
if [ ! -f "$work/node_modules/puppeteer-core/package.json" ] ||
    ! grep -q "\"version\": \"$version\"" "$work/node_modules/puppeteer-core/package.json"; then
    (cd "$work" && PUPPETEER_SKIP_DOWNLOAD=1 timeout 300 npm install --no-audit --no-fund --loglevel=error) ||
        { echo "FAIL: npm install of puppeteer-core@$version failed"; exit 1; }
fi

# the server's start (free port, wait for /health, killed at exit): tests/server/server_lib.sh
# shellcheck source=../server/server_lib.sh
. "$QR_TEST_DIR/server/server_lib.sh"
key=page-test-key
log="$work/server.log"
start_server "$log" -m "$model" -c 2048 -t 1 --api-key "$key"
port=$PORT
base="http://127.0.0.1:$port"

fail() { echo "FAIL: $*"; exit 1; }

# GET /: the page, without the API key the /v1 routes need
curl -s -D "$work/get.headers" -o "$work/page.html" "$base/"
head -1 "$work/get.headers" | grep -q '^HTTP/1.1 200' || fail "GET / answered $(head -1 "$work/get.headers")"
grep -qi '^Content-Type: text/html; charset=utf-8' "$work/get.headers" || fail "GET / is not text/html; charset=utf-8"
grep -qi '^Cache-Control: no-cache' "$work/get.headers" || fail "GET / has no Cache-Control: no-cache"
grep -q '<textarea id="input"' "$work/page.html" || fail "the page has no message textarea"
grep -q '<button type="submit" id="send">Send</button>' "$work/page.html" || fail "the page has no Send button"
# the build inlined page.css and page.js: nothing is fetched from anywhere
grep -q '<script>' "$work/page.html" && grep -q '<style>' "$work/page.html" || fail "page.js or page.css not inlined"
refs=$(grep -Eo '(src|href)="[^"]*"' "$work/page.html" | grep -v '^href="data:' || true)
[ -z "$refs" ] || fail "the page loads something: $refs"
echo "ok   GET / is the page (text/html, textarea, Send), without an API key"

# HEAD /: the same headers, no body
curl -s -I "$base/" >"$work/head.headers"
head -1 "$work/head.headers" | grep -q '^HTTP/1.1 200' || fail "HEAD / answered $(head -1 "$work/head.headers")"
len=$(sed -n 's/^Content-Length: \([0-9]*\)\r$/\1/Ip' "$work/head.headers")
[ "$len" = "$(stat -c %s "$work/page.html")" ] || fail "HEAD / Content-Length '$len' is not the page's size"
# raw HTTP/1.0, so the server closes after its answer: all that comes is the header block
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'HEAD / HTTP/1.0\r\n\r\n' >&3
timeout 10 cat <&3 >"$work/head.raw"
exec 3<&-
body_bytes=$(sed '1,/^\r$/d' "$work/head.raw" | wc -c)
[ "$body_bytes" = 0 ] || fail "HEAD / sent $body_bytes bytes after the headers"
echo "ok   HEAD / gives the headers alone"

# the ETag: a revalidation that matches gets 304 and no body
etag=$(sed -n 's/^ETag: \(.*\)\r$/\1/Ip' "$work/get.headers")
[ -n "$etag" ] || fail "GET / has no ETag"
code=$(curl -s -o "$work/304.body" -w '%{http_code}' -H "If-None-Match: $etag" "$base/")
[ "$code" = 304 ] && [ ! -s "$work/304.body" ] || fail "If-None-Match $etag answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' -H 'If-None-Match: "other"' "$base/")
[ "$code" = 200 ] || fail "a stale If-None-Match answered $code, not 200"
echo "ok   the ETag revalidates with 304"

# beside it: unknown paths 404, other methods 405, /v1 still wants the key
code=$(curl -s -o "$work/404.json" -w '%{http_code}' "$base/nonexistent")
[ "$code" = 404 ] || fail "GET /nonexistent answered $code"
grep -q 'no route GET /nonexistent' "$work/404.json" || fail "404 body: $(cat "$work/404.json")"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/index.html")
[ "$code" = 404 ] || fail "GET /index.html answered $code"
code=$(curl -s -o "$work/405.json" -w '%{http_code}' -X POST -d x "$base/")
[ "$code" = 405 ] || fail "POST / answered $code"
code=$(curl -s -o /dev/null -w '%{http_code}' "$base/v1/chat/completions" \
    -d '{"messages":[{"role":"user","content":"hi"}]}')
[ "$code" = 401 ] || fail "/v1/chat/completions without the key answered $code"
echo "ok   /nonexistent 404, POST / 405, /v1 still needs the key"

BASE_URL=$base API_KEY=$key CHROMIUM=$(command -v chromium) OUT_DIR=$work \
    timeout 300 node "$work/page_test.mjs"
[ -s "$work/screenshot.png" ] || fail "no screenshot"
echo "all chat page checks passed (screenshot: $work/screenshot.png)"

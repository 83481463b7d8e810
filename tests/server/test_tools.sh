#!/usr/bin/env bash
# test_tools.sh - end-to-end structured output and tool calling through the official OpenAI SDK
# (tools_test.mjs, with ajv to validate against the schemas): qwen2-tiny served with Qwen 2.5's
# chat template (Hermes-style <tool_call>) and with the built-in chatml (the generic JSON form),
# and stories260K (response_format; its 256-token context is too small for tools). Needs the grammar engine: without it the constrained outputs do not
# validate and the test fails (it never skips). Needs node and npm.
set -euo pipefail
: "${QUARREL:?}" "${QR_SHARED_DIR:?}" "${QR_TEST_DIR:?}"
here="$QR_TEST_DIR/server"
work="$PWD/node-tools-test"

command -v node >/dev/null || { echo "FAIL: node is not installed (needed for the OpenAI SDK test)"; exit 1; }
command -v npm >/dev/null || { echo "FAIL: npm is not installed (needed for the OpenAI SDK test)"; exit 1; }
command -v curl >/dev/null || { echo "FAIL: curl is not installed"; exit 1; }

mkdir -p "$work"
cp "$here/package.json" "$here/tools_test.mjs" "$work/"
if [ ! -f "$work/node_modules/openai/package.json" ] || [ ! -f "$work/node_modules/ajv/package.json" ] ||
    ! grep -q '"version": "6.49.0"' "$work/node_modules/openai/package.json"; then
    (cd "$work" && timeout 300 npm install --no-audit --no-fund --loglevel=error) ||
        { echo "FAIL: npm install of openai and ajv failed"; exit 1; }
fi

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT

# start_server LOG ARGS...: quarrel serve on a free port; sets PORT
start_server() {
    local log=$1
    shift
    : >"$log"
    "$QUARREL" serve --port 0 -t 2 "$@" 2>"$log" &
    pids+=("$!")
    PORT=
    for _ in $(seq 1 300); do
        PORT=$(sed -n 's/^quarrel serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
        [ -n "$PORT" ] && break
        kill -0 "${pids[-1]}" 2>/dev/null || { echo "FAIL: the server exited:"; cat "$log"; exit 1; }
        sleep 0.1
    done
    [ -n "$PORT" ] || { echo "FAIL: the server did not report its port"; cat "$log"; exit 1; }
    for _ in $(seq 1 600); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")" = 200 ] && return 0
        sleep 0.1
    done
    echo "FAIL: /health never answered 200"
    cat "$log"
    exit 1
}

start_server tools-qwen.log -m "$QR_SHARED_DIR/models/qwen2-tiny-q8_0.gguf" -c 4096 \
    --chat-template-file "$QR_SHARED_DIR/templates/Qwen-Qwen2.5-7B-Instruct.jinja"
qwen="http://127.0.0.1:$PORT"
start_server tools-chatml.log -m "$QR_SHARED_DIR/models/qwen2-tiny-q8_0.gguf" -c 4096 --chat-template chatml
chatml="http://127.0.0.1:$PORT"
start_server tools-stories.log -m "$QR_SHARED_DIR/models/stories260K.gguf" --chat-template chatml
stories="http://127.0.0.1:$PORT"

QWEN_URL=$qwen QWEN_CHATML_URL=$chatml STORIES_URL=$stories timeout 500 node "$work/tools_test.mjs"

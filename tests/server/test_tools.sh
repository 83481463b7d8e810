#!/usr/bin/env bash
# test_tools.sh - end-to-end structured output and tool calling through the official OpenAI SDK
# (tools_test.mjs, with ajv to validate against the schemas): qwen2-tiny served with Qwen 2.5's
# chat template (Hermes-style <tool_call>) and with the built-in chatml (the generic JSON form),
# and stories260K (response_format; its 256-token context is too small for tools). Needs the grammar engine: without it the constrained outputs do not
# validate and the test fails (it never skips). Needs node and npm.
set -euo pipefail
. "$QR_TEST_DIR/server/server_lib.sh"
npm_setup "$PWD/node-tools-test" tools_test.mjs harness.mjs
work="$PWD/node-tools-test"

start_server tools-qwen.log -t 2 -m "$QR_SHARED_DIR/models/qwen2-tiny-q8_0.gguf" -c 4096 \
    --chat-template-file "$QR_SHARED_DIR/templates/Qwen-Qwen2.5-7B-Instruct.jinja"
qwen="http://127.0.0.1:$PORT"
start_server tools-chatml.log -t 2 -m "$QR_SHARED_DIR/models/qwen2-tiny-q8_0.gguf" -c 4096 --chat-template chatml
chatml="http://127.0.0.1:$PORT"
start_server tools-stories.log -t 2 -m "$QR_SHARED_DIR/models/stories260K.gguf" --chat-template chatml
stories="http://127.0.0.1:$PORT"

QWEN_URL=$qwen QWEN_CHATML_URL=$chatml STORIES_URL=$stories timeout 500 node "$work/tools_test.mjs"

#!/usr/bin/env bash
# test_ollama.sh - end-to-end test of `quarrel serve`'s ollama API on stories260K through the
# official ollama client (npm ollama, pinned in package.json, installed into the build
# directory): ollama_test.mjs against a server without a chat template (the prompt as is) and
# one whose template renders just the messages' contents (chat prompts equal llama.cpp's
# reference prompts); tool calls in ollama's shape from qwen2-tiny; and /api/pull and /api/delete against the test registry of
# tests/registry (registry_server.py serving stories260K as "stories") into a temporary store.
# Needs node and npm: without them the test fails.
set -euo pipefail
. "$QR_TEST_DIR/server/server_lib.sh"
work="$PWD/node-ollama-test"
npm_setup "$work" ollama_test.mjs harness.mjs
model="$QR_SHARED_DIR/models/stories260K.gguf"

key=ollama-key-1
start_server ollama.log -m "$model" --parallel 4 -c 1024 -t 2 --api-key "$key"
base="http://127.0.0.1:$PORT"
start_server ollama-tmpl.log -m "$model" --parallel 2 -c 512 -t 1 \
    --chat-template '{% for m in messages %}{{ m.content }}{% endfor %}'
tmpl="http://127.0.0.1:$PORT"

# tool calls: qwen2-tiny with Qwen 2.5's template (Hermes <tool_call>)
start_server ollama-qwen.log -m "$QR_SHARED_DIR/models/qwen2-tiny-q8_0.gguf" -c 4096 -t 2 \
    --chat-template-file "$QR_SHARED_DIR/templates/Qwen-Qwen2.5-7B-Instruct.jinja"
qwen="http://127.0.0.1:$PORT"

# the test registry and a server pulling from it into a store of its own
reg=$(mktemp -d)
trap 'cleanup; rm -rf "$reg"' EXIT
echo ok >"$reg/mode"
python3 "$QR_TEST_DIR/registry/registry_server.py" --model "$model" --port-file "$reg/port" \
    --mode-file "$reg/mode" --log "$reg/log" --digests "$reg/digests" --lifetime 600 &
pids+=("$!")
for _ in $(seq 100); do [ -s "$reg/port" ] && break; sleep 0.1; done
[ -s "$reg/port" ] || { echo "FAIL: the test registry did not start"; exit 1; }
OLLAMA_MODELS="$reg/store" start_server ollama-pull.log -m "$model" -c 256 -t 1 \
    --registry "http://127.0.0.1:$(cat "$reg/port")" --insecure
pull="http://127.0.0.1:$PORT"

BASE_URL=$base API_KEY=$key TMPL_URL=$tmpl QWEN_URL=$qwen PULL_URL=$pull STORE="$reg/store" MODEL_PATH="$model" \
    REFERENCE="$QR_SHARED_DIR/reference/stories260K.json" \
    EMBED_REFS="$QR_TEST_DIR/runtime/embed_refs.json" \
    timeout 400 node "$work/ollama_test.mjs"

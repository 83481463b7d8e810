#!/usr/bin/env bash
# test_ollama.sh - end-to-end test of `quarrel serve`'s ollama API on stories260K through the
# official ollama client (npm ollama, pinned in package.json, installed into the build
# directory): ollama_test.mjs against a server without a chat template (the prompt as is) and
# one whose template renders just the messages' contents (chat prompts equal llama.cpp's
# reference prompts). Needs node and npm: without them the test fails.
set -euo pipefail
. "$QR_TEST_DIR/server/server_lib.sh"
work="$PWD/node-ollama-test"
npm_setup "$work" ollama_test.mjs
model="$QR_SHARED_DIR/models/stories260K.gguf"

key=ollama-key-1
start_server ollama.log -m "$model" --parallel 4 -c 1024 -t 2 --api-key "$key"
base="http://127.0.0.1:$PORT"
start_server ollama-tmpl.log -m "$model" --parallel 2 -c 512 -t 1 \
    --chat-template '{% for m in messages %}{{ m.content }}{% endfor %}'
tmpl="http://127.0.0.1:$PORT"

BASE_URL=$base API_KEY=$key TMPL_URL=$tmpl MODEL_PATH="$model" \
    REFERENCE="$QR_SHARED_DIR/reference/stories260K.json" \
    EMBED_REFS="$QR_TEST_DIR/runtime/embed_refs.json" \
    timeout 400 node "$work/ollama_test.mjs"

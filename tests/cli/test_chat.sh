#!/usr/bin/env bash
# `quarrel chat` end to end on stories260K: piped turns, KV reuse between turns, /save /load
# /clear, templates, bad input, and a pseudo-terminal session with Ctrl-C (tests/cli/chat_repl.py).
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
exec timeout 540 /usr/bin/python3 "$T/cli/chat_repl.py" "$Q" "$S/models/stories260K.gguf"

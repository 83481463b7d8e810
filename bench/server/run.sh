#!/usr/bin/env bash
# run.sh - server throughput with 1, 4 and 8 concurrent clients on smol135-q4_k_m.
#   bench/server/run.sh [QUARREL_BINARY] [THREADS]
# Starts `quarrel serve --parallel 8` on a free port, runs bench.mjs for each client count
# (EOS banned so each request generates the full token count), prints one JSON line each.
# Environment: MODEL, REQUESTS, TOKENS, CLIENTS (default "1 4 8"), SERVE_FLAGS (more serve
# flags, e.g. "-md DRAFT.gguf" for speculative decoding).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
quarrel=${1:-$here/../../build/quarrel}
threads=${2:-2}
model=${MODEL:-$here/../../../shared/models/smol135-q4_k_m.gguf}
log=$(mktemp)
# shellcheck disable=SC2086 # SERVE_FLAGS is a list of words
"$quarrel" serve -m "$model" --port 0 --parallel 8 -c 4096 -t "$threads" ${SERVE_FLAGS:-} 2>"$log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -f "$log"' EXIT
port=
for _ in $(seq 1 100); do
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
    [ -n "$port" ] && break
    sleep 0.1
done
url="http://127.0.0.1:$port"
until curl -sf "$url/health" >/dev/null; do sleep 0.1; done
eos=$(curl -s "$url/tokenize" -d '{"content":"<|endoftext|>"}' | sed -n 's/.*"tokens":\[\([0-9]*\)\].*/\1/p')
node "$here/bench.mjs" --url "$url" --clients 1 --requests 2 --tokens 16 --eos "$eos" >/dev/null # warm-up
for c in ${CLIENTS:-1 4 8}; do
    node "$here/bench.mjs" --url "$url" --clients "$c" --requests "${REQUESTS:-4}" --tokens "${TOKENS:-64}" --eos "$eos"
done

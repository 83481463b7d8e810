#!/usr/bin/env bash
# `quarrel serve --lora`: through the server, greedy completions with adapters give llama.cpp's
# text with the same adapters (tests/lora/data/stories260K-lora*.json, up to each reference's
# first near-tie): the global scale (--lora), a request's "lora" at 0.5 and "lora": [] (the
# base model, ../shared/reference/stories260K.json), all three at once in one batch (two
# slots and a queue), after POST /lora-adapters changes the global scale; GET /lora-adapters
# has llama.cpp's shape; bad "lora" fields and bodies get 400.
set -euo pipefail
source "$QR_TEST_DIR/server/server_lib.sh"
S=$QR_SHARED_DIR T=$QR_TEST_DIR
M=$S/models/stories260K.gguf
PY=/usr/bin/python3
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT
post() { # post PATH BODY OUT: the HTTP status on stdout
    curl -s -o "$3" -w '%{http_code}' -H 'Content-Type: application/json' -d "$2" \
        "http://127.0.0.1:$PORT$1"
}
# the adapter of the references, regenerated
args=$($PY -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))["adapters"]["a"]))' \
    "$T/lora/data/stories260K-lora.json")
# shellcheck disable=SC2086
QR_SHARED_DIR=$S $PY "$T/lora/mk_lora.py" "$M" "$tmp/a.gguf" $args
# expected REF CASE: the reference's prompt, then its greedy text up to its first near-tie
expected() {
    $PY - "$1" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); c = d["cases"][int(sys.argv[2])]
tol = d["tolerance"]["abs_logit"]
n = next((k for k, s in enumerate(c["steps"][:len(c["greedy_ids"])]) if s["gap12"] <= tol),
         len(c["greedy_ids"]))
n = min(n, 32)  # the requests ask for 32 tokens
print(c["prompt"])
sys.stdout.write(b"".join(bytes.fromhex(h) for h in c["greedy_pieces_hex"][:n]).decode())
PY
}
# request NAME REF CASE EXTRA: a greedy completion of the reference's prompt in the background
request() {
    local name=$1 ref=$2 case=$3 extra=$4
    expected "$ref" "$case" > "$tmp/$name.exp"
    local prompt
    prompt=$(head -1 "$tmp/$name.exp")
    local body
    body=$($PY -c 'import json,sys; print(json.dumps(dict(prompt=sys.argv[1], max_tokens=32, temperature=0, **json.loads(sys.argv[2]))))' "$prompt" "{$extra}")
    post /v1/completions "$body" "$tmp/$name.out" > "$tmp/$name.status" &
    reqs+=($!)
}
reqs=()
finish() { wait "${reqs[@]}"; reqs=(); } # the requests (not the server)
check() { # check NAME: 200 and the text starts with llama.cpp's
    [ "$(cat "$tmp/$1.status")" = 200 ] || fail "$1: $(cat "$tmp/$1.out")"
    $PY - "$tmp/$1.out" "$tmp/$1.exp" "$1" <<'PY' || fail "$1: $(head -c 400 "$tmp/$1.out")"
import json, sys
r = json.load(open(sys.argv[1])); exp = open(sys.argv[2]).read().split("\n", 1)[1]
text = r["choices"][0]["text"]
assert len(exp) > 10, exp
assert text.startswith(exp), "got %r, llama.cpp %r" % (text[:len(exp)], exp)
print("ok   %s: llama.cpp's text for %d characters" % (sys.argv[3], len(exp)))
PY
}
D=$T/lora/data
start_server "$tmp/log" -m "$M" -c 512 -t 2 --parallel 2 --lora "$tmp/a.gguf"
# GET /lora-adapters: llama.cpp's shape
curl -s "http://127.0.0.1:$PORT/lora-adapters" > "$tmp/get"
$PY - "$tmp/get" "$tmp/a.gguf" <<'PY' || fail "GET /lora-adapters: $(cat "$tmp/get")"
import json, sys
r = json.load(open(sys.argv[1]))
assert r == [{"id": 0, "path": sys.argv[2], "scale": 1.0}], r
print("ok   GET /lora-adapters:", r)
PY
# one at a time: the global scale, a request's 0.5, a request's [] (the base model)
request global "$D/stories260K-lora.json" 0 ''; finish; check global
request half "$D/stories260K-lora-half.json" 0 '"lora":[{"id":0,"scale":0.5}]'; finish; check half
request base "$S/reference/stories260K.json" 1 '"lora":[]'; finish; check base
# all at once: two slots batched with different scales, the third queued behind them
request global2 "$D/stories260K-lora.json" 1 ''
request half2 "$D/stories260K-lora-half.json" 1 '"lora":[{"id":0,"scale":0.5}]'
request base2 "$S/reference/stories260K.json" 1 '"lora":[]'
finish
check global2; check half2; check base2
# POST /lora-adapters: the global scale becomes 0.5
[ "$(post /lora-adapters '[{"id":0,"scale":0.5}]' "$tmp/set")" = 200 ] || fail "POST: $(cat "$tmp/set")"
grep -q '"success":true' "$tmp/set" || fail "POST answer: $(cat "$tmp/set")"
curl -s "http://127.0.0.1:$PORT/lora-adapters" | grep -q '"scale":0.5' || fail "GET after POST"
request posted "$D/stories260K-lora-half.json" 0 ''; finish; check posted
# bad input: 400 with the problem named
bad() { # bad PATH BODY PATTERN
    local st
    st=$(post "$1" "$2" "$tmp/bad")
    [ "$st" = 400 ] || fail "$2: status $st: $(cat "$tmp/bad")"
    grep -qE "$3" "$tmp/bad" || fail "$2: no /$3/ in $(cat "$tmp/bad")"
    echo "ok   400 for $2: $(head -c 160 "$tmp/bad")"
}
bad /v1/completions '{"prompt":"x","lora":[{"id":1,"scale":1}]}' "'lora\[0\]\.id' is 1, but the server has 1 LoRA adapter"
bad /v1/completions '{"prompt":"x","lora":{"id":0}}' "'lora' must be an array"
bad /v1/completions '{"prompt":"x","lora":[{"id":0,"scale":"big"}]}' "'lora\[0\]\.scale' must be a number"
bad /v1/completions '{"prompt":"x","lora":[{"scale":1}]}' "'lora\[0\]\.id' must be an integer"
bad /lora-adapters '{"id":0,"scale":1}' "Request body must be an array"
bad /lora-adapters '[{"id":-1,"scale":1}]' "is -1, but the server has 1"
bad /lora-adapters 'not json' "not valid JSON"
echo "the server's LoRA adapters match llama.cpp"

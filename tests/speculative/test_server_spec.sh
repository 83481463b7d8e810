#!/usr/bin/env bash
# Speculative decoding in `quarrel serve` (per slot, with continuous batching): greedy replies
# from a server with a draft (or ngram-simple) equal a plain server's byte for byte while the
# requests share decode steps (3 slots, sent at once, completions, chat and a stream among
# them); "speculative": false turns it off for one request; the metrics and the replies'
# timings count drafted and accepted tokens; seeded sampling with a draft is reproducible; bad
# flags and fields get clear errors. stories260K with its Q8_0 copy, and smol135 F16 (from
# ../shared/models/synth/mk_synth.py) with smol135-q4_k_m.
set -euo pipefail
source "$QR_TEST_DIR/server/server_lib.sh"
S=$QR_SHARED_DIR
M=$S/models/stories260K.gguf
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'cleanup; rm -rf "$tmp"' EXIT
"$QUARREL" quantize "$M" "$tmp/s-q8_0.gguf" Q8_0 > /dev/null 2>&1 || fail "quantize Q8_0"

# requests PORT OUT: the request set (requests.json), all sent at once; OUT gets one line of
# JSON per request: {"text", "timings"} (a stream's text is its deltas joined)
cat > "$tmp/requests.json" <<'EOF'
[
 {"path": "/v1/completions", "body": {"prompt": "Once upon a time", "max_tokens": 160, "temperature": 0}},
 {"path": "/v1/completions", "body": {"prompt": "Tom and Lily went to the park. Tom and Lily", "max_tokens": 120, "temperature": 0}},
 {"path": "/v1/chat/completions", "body": {"messages": [{"role": "user", "content": "Tell me a story about a cat."}], "max_tokens": 100, "temperature": 0}},
 {"path": "/v1/completions", "body": {"prompt": "The little dog", "max_tokens": 90, "temperature": 0, "stream": true}},
 {"path": "/v1/completions", "body": {"prompt": "One day, a bird", "max_tokens": 80, "temperature": 0, "speculative": false}},
 {"path": "/v1/completions", "body": {"prompt": "Once upon a time", "max_tokens": 60, "temperature": 0, "stop": ["park"]}}
]
EOF
requests() {
    /usr/bin/python3 - "$1" "$tmp/requests.json" "$2" <<'EOF'
import json, sys, threading, urllib.request
port, reqs, out = sys.argv[1], json.load(open(sys.argv[2])), sys.argv[3]
res = [None] * len(reqs)
def go(i, r):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{r['path']}",
                                 data=json.dumps(r["body"]).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=300) as f:
        body = f.read().decode()
    if r["body"].get("stream"):
        text, timings = "", None
        for line in body.splitlines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            d = json.loads(line[6:])
            text += d["choices"][0]["text"]
            timings = d.get("timings", timings)
    else:
        d = json.loads(body)
        c = d["choices"][0]
        text = c["message"]["content"] if "message" in c else c["text"]
        timings = d.get("timings")
    res[i] = {"text": text, "timings": timings}
ts = [threading.Thread(target=go, args=(i, r)) for i, r in enumerate(reqs)]
for t in ts: t.start()
for t in ts: t.join()
if any(r is None for r in res):
    sys.exit("a request failed")
with open(out, "w") as f:
    for r in res:
        f.write(json.dumps(r) + "\n")
EOF
}
texts() { /usr/bin/python3 -c 'import json,sys; [print(json.dumps(json.loads(l)["text"])) for l in open(sys.argv[1])]' "$1"; }
metric() { curl -s "http://127.0.0.1:$PORT/metrics" | sed -n "s/^$1 //p"; }

# same_replies NAME MODEL SERVE_FLAGS...: the request set against a plain server and one with the
# flags; every text equal; the speculating requests report draft counts, the one with
# "speculative": false none
same_replies() {
    local name=$1 model=$2
    shift 2
    start_server "$tmp/plain.log" -m "$model" --parallel 3 -t 2
    requests "$PORT" "$tmp/plain.jsonl" ||
        fail "$name: requests to the plain server; its log: $(tail -n 40 "$tmp/plain.log")"
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
    start_server "$tmp/spec.log" -m "$model" --parallel 3 -t 2 "$@"
    requests "$PORT" "$tmp/spec.jsonl" ||
        fail "$name: requests to the server with $*; its log: $(tail -n 40 "$tmp/spec.log")"
    texts "$tmp/plain.jsonl" > "$tmp/plain.txt"
    texts "$tmp/spec.jsonl" > "$tmp/spec.txt"
    cmp -s "$tmp/plain.txt" "$tmp/spec.txt" || fail "$name: greedy replies differ with $*:
$(diff "$tmp/plain.txt" "$tmp/spec.txt")"
    /usr/bin/python3 - "$tmp/spec.jsonl" "$name" <<'EOF' || fail "$name: the replies' timings"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
drafted = 0
for i, r in enumerate(rows):
    t = r["timings"]
    assert t is not None and "draft_n" in t, f"request {i}: no draft counts in timings: {t}"
    assert 0 <= t["draft_n_accepted"] <= t["draft_n"], f"request {i}: {t}"
    drafted += t["draft_n"]
assert rows[4]["timings"]["draft_n"] == 0, f"speculative false still drafted: {rows[4]}"
assert drafted > 0, "nothing was drafted"
print(f"{sys.argv[2]}: {drafted} drafted, {sum(r['timings']['draft_n_accepted'] for r in rows)} accepted")
EOF
    local d a
    d=$(metric quarrel_draft_tokens_total) a=$(metric quarrel_draft_tokens_accepted_total)
    [ -n "$d" ] && [ "${d%.*}" -gt 0 ] && [ -n "$a" ] && [ "${a%.*}" -gt 0 ] &&
        [ "${a%.*}" -le "${d%.*}" ] || fail "$name: metrics drafted '$d', accepted '$a'"
    echo "ok: $name: the replies equal the plain server's (metrics: $d drafted, $a accepted)"
}

same_replies "stories260K + Q8_0 draft" "$M" -md "$tmp/s-q8_0.gguf"
same_replies "stories260K + Q8_0 draft, n-max 5" "$M" -md "$tmp/s-q8_0.gguf" --spec-draft-n-max 5
same_replies "stories260K ngram-simple" "$M" --spec-type ngram-simple --spec-draft-n-max 4

# seeded sampling with a draft: the same request twice, the same text; per-request n_max
body='{"prompt": "Once upon a time", "max_tokens": 80, "temperature": 0.9, "seed": 11, "speculative.n_max": 3}'
text_of() { /usr/bin/python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])'; }
a=$(curl -s "http://127.0.0.1:$PORT/v1/completions" -d "$body" | text_of) || fail "sampling: $a"
b=$(curl -s "http://127.0.0.1:$PORT/v1/completions" -d "$body" | text_of) || fail "sampling: $b"
[ "$a" = "$b" ] && [ -n "$a" ] || fail "seeded sampling is not reproducible: $a / $b"
echo "ok: seeded sampling with speculation is reproducible"

# bad fields: 400 naming them
for bad in '"speculative": "yes"' '"speculative.n_max": 0' '"speculative.p_min": 2' \
    '"speculative.n_max": 2, "speculative.n_min": 3'; do
    code=$(curl -s -o "$tmp/err" -w '%{http_code}' "http://127.0.0.1:$PORT/v1/completions" \
        -d "{\"prompt\": \"x\", \"max_tokens\": 2, $bad}")
    [ "$code" = 400 ] && grep -q "speculative" "$tmp/err" || fail "$bad: $code $(cat "$tmp/err")"
done
echo "ok: bad speculative fields get 400"
kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true

# smol135 F16 with smol135-q4_k_m: the pair whose identity needs batch-invariant logits
F16=${QR_SMOL135_F16:-$PWD/spec-smol135-f16.gguf}
if [ ! -f "$F16" ]; then
    /usr/bin/python3 -c 'import numpy' 2>/dev/null ||
        fail "smol135 F16: /usr/bin/python3 cannot import numpy (apt-get install -y python3-numpy)"
    /usr/bin/python3 "$S/models/synth/mk_synth.py" smol135 "$F16.tmp.$$.gguf" > /dev/null &&
        mv "$F16.tmp.$$.gguf" "$F16"
fi
same_replies "smol135 F16 + smol135-q4_k_m" "$F16" -md "$S/models/smol135-q4_k_m.gguf"

# bad flags: clear errors, non-zero exit
expect() {
    local want=$1 out rc
    shift
    out=$(timeout 60 "$QUARREL" serve --port 0 "$@" 2>&1 </dev/null) && rc=0 || rc=$?
    [ "$rc" != 0 ] && [ "$rc" != 124 ] && grep -qF -- "$want" <<<"$out" ||
        fail "serve $* -> rc $rc: $out (wanted: $want)"
    echo "ok: serve $* -> $want"
}
expect "vocabulary" -m "$M" -md "$S/models/qwen2-tiny-q8_0.gguf"
expect "--spec-draft-n-max expects an integer from 1" -m "$M" -md "$tmp/s-q8_0.gguf" --spec-draft-n-max 0
expect "uses no draft model" -m "$M" -md "$tmp/s-q8_0.gguf" --spec-type ngram-simple
expect "needs a draft model" -m "$M" --spec-type draft-simple
expect "no-such-draft" -m "$M" -md no-such-draft

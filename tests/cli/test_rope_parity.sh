#!/usr/bin/env bash
# `quarrel run` under RoPE overrides against llama.cpp: stories260K's greedy run from "Once upon
# a time" with each variant's flags (tests/model/data/stories260K-rope-<variant>.json, made by
# tests/model/mk_rope_override_refs.sh with llama.cpp's same flags: yarn with --rope-scale 4
# and --yarn-orig-ctx 64, linear with --rope-scale 2, --rope-freq-base 5000). --json gives
# each step's top-10 logits: they must be within stories260K's tolerance (0.048, from
# ../shared/reference/stories260K.json) of llama.cpp's for the reference's top-10 ids, and the
# generated ids equal llama.cpp's up to its first near-tie (top-2 gap within the tolerance).
# Then: perplexity, eval and serve (whose contexts the library creates) change their output
# under an override.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
M=$S/models/stories260K.gguf
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tol_ref=$S/reference/stories260K.json

failed=()
for v in yarn linear base; do
    ref=$T/model/data/stories260K-rope-$v.json
    [ -f "$ref" ] || fail "missing $ref (tests/model/mk_rope_override_refs.sh makes it)"
    # the reference's prompt, generation length, context size and its own flags (llama.cpp's
    # spellings, which quarrel takes as they are), one a line
    mapfile -t cfg < <(/usr/bin/python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["config"]["n_gen"]); print(d["n_ctx"]); print(d["cases"][0]["prompt"])
print("\n".join(d["config"]["rope_args"]))' "$ref")
    n_gen=${cfg[0]} n_ctx=${cfg[1]} prompt=${cfg[2]} flags=("${cfg[@]:3}")
    "$Q" run -m "$M" --json --temp 0 -n "$n_gen" -c "$n_ctx" -t 1 -p "$prompt" "${flags[@]}" \
        > "$tmp/$v.jsonl" 2> "$tmp/$v.err" || fail "run ${flags[*]}: $(cat "$tmp/$v.err")"
    /usr/bin/python3 "$T/cli/compare_run_json.py" "$tmp/$v.jsonl" "$ref" 0 "$tol_ref" \
        "$v ${flags[*]}" || failed+=("$v")
done
if [ ${#failed[@]} = 0 ]; then
    echo "all RoPE override variants match llama.cpp"
else
    echo "FAIL: differs from llama.cpp under: ${failed[*]}" >&2
fi

# the overrides reach the contexts that perplexity, eval and serve create (the library makes
# the first and last): a base frequency of 50 instead of 10000 changes every number they print
strong=(--rope-freq-base 50)
TEXT=$S/reference/text/gpl-3.txt
ppl() { "$Q" perplexity -m "$M" -f "$TEXT" -c 128 --chunks 2 -t 1 "$@" 2>/dev/null; }
a=$(ppl) && b=$(ppl "${strong[@]}") || fail "perplexity failed"
[ "$a" != "$b" ] || fail "perplexity ignores ${strong[*]}: $a"
ev() { "$Q" eval -m "$M" -f "$T/eval/tasks_stories.jsonl" -t 1 -v "$@" 2>/dev/null | head -4; }
a=$(ev) && b=$(ev "${strong[@]}") || fail "eval failed"
[ "$a" != "$b" ] || fail "eval ignores ${strong[*]}: $a"
# serve: the greedy completion of the prompt, with and without the override
complete() {
    local log=$tmp/serve.log pid port= text
    "$Q" serve -m "$M" --port 0 -t 1 "$@" 2>"$log" &
    pid=$!
    for _ in $(seq 1 200); do
        port=$(sed -n 's/^quarrel serve: listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
        [ -n "$port" ] && break
        sleep 0.1
    done
    text=$(/usr/bin/python3 - "$port" <<'PY'
import json, sys, time, urllib.request, urllib.error
url = "http://127.0.0.1:%s" % sys.argv[1]
for _ in range(200):  # /health says 503 until the model and context are ready
    try:
        if urllib.request.urlopen(url + "/health", timeout=5).status == 200:
            break
    except Exception:
        time.sleep(0.1)
body = json.dumps({"prompt": "Once upon a time", "max_tokens": 24, "temperature": 0}).encode()
req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
print(json.load(urllib.request.urlopen(req, timeout=60))["choices"][0]["text"])
PY
)
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    printf '%s' "$text"
}
a=$(complete) || true
b=$(complete "${strong[@]}") || true
[ -n "$a" ] && [ -n "$b" ] || fail "serve gave no completion: $(cat "$tmp/serve.log")"
[ "$a" != "$b" ] || fail "serve ignores ${strong[*]}: $a"
echo "perplexity, eval and serve apply the overrides"
[ ${#failed[@]} = 0 ]

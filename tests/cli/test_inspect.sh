#!/usr/bin/env bash
# `quarrel inspect` on the shared models: metadata, tensors, totals; --json parses; errors.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
out=$("$Q" inspect "$S/models/smol135-q4_k_m.gguf")
echo "$out" | grep -q "GGUF version 3" || fail "version"
echo "$out" | grep -q "general.architecture .* \"llama\"" || fail "arch key"
echo "$out" | grep -q "tokenizer.ggml.tokens .*\[string x 49152\]" || fail "array summary"
echo "$out" | grep -q "blk.0.ffn_down.weight" || fail "tensor list"
echo "$out" | grep -q "bits per weight" || fail "totals"
"$Q" inspect --json "$S/reference/alltypes.gguf" | /usr/bin/python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["version"] == 3
assert d["metadata"]["quarrel.kvtest.u8"] == 200
assert d["metadata"]["quarrel.kvtest.str"] == "h\u00e9llo \u4e16\u754c"
names = {t["name"]: t for t in d["tensors"]}
assert names["q4_K"]["type"] == "q4_K" and names["q4_K"]["shape"] == [512, 8], names["q4_K"]
' || fail "json"
set +e
"$Q" inspect /nonexistent.gguf 2> /tmp/inspect_err.$$; rc=$?
set -e
[ $rc -eq 1 ] && grep -q "cannot open '/nonexistent.gguf'" /tmp/inspect_err.$$ || fail "missing file: $rc $(cat /tmp/inspect_err.$$)"
rm -f /tmp/inspect_err.$$
echo ok

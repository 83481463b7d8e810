#!/usr/bin/env bash
# `quarrel export-lora`: adapters merged into the base (llama-export-lora's flags), the merged
# model run without adapters gives llama.cpp's logits with the adapters unmerged (the
# references of tests/lora/data, their tolerance; compare_run_json.py), and llama.cpp loads the
# merged file and gives them too (../shared/peer/llamaref.py); merged tensors are F32 where the
# base's are F32 and F16 otherwise, the others copied as they were.
set -euo pipefail
Q=${QUARREL:?} T=${QR_TEST_DIR:?} S=${QR_SHARED_DIR:?}
PY=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# shellcheck source=ref_setup.sh
. "$(dirname "$0")/ref_setup.sh"
for name in stories260K-lora-two smol135-lora qwen3-tiny-lora-two phi3-tiny-lora-two; do
    ref=$T/lora/data/$name.json
    lora_ref_setup "$ref"
    args=()
    for f in $flags; do args+=("$(sed "s|\([a-z]*\)\.gguf|$tmp/\1.gguf|g" <<< "$f")"); done
    "$Q" export-lora -m "$model" "${args[@]}" -o "$tmp/merged.gguf" 2> "$tmp/err" ||
        fail "$name: export-lora: $(cat "$tmp/err")"
    # the tensors: merged ones F32 or F16 as llama-export-lora writes them, the rest as they were
    QR_SHARED_DIR=$S $PY - "$model" "$tmp/merged.gguf" "$tmp/a.gguf" <<'PY' || fail "$name: tensor types"
import os, sys
sys.path.insert(0, os.path.join(os.environ["QR_SHARED_DIR"], "models", "synth"))
import gguf
base, merged, ad = (gguf.GGUFReader(p) for p in sys.argv[1:])
adapted = set(t.name[:-len(".lora_a")] for t in ad.tensors if t.name.endswith(".lora_a"))
assert [t.name for t in base.tensors] == [t.name for t in merged.tensors]
assert merged.kv["general.file_type"] == 1
for b, m in zip(base.tensors, merged.tensors):
    want = (b.type if b.type == 0 else 1) if b.name in adapted else b.type
    assert m.type == want and m.shape == b.shape, (b.name, b.type, m.type)
    if b.name not in adapted:
        assert bytes(b.data) == bytes(m.data), b.name
print("ok   %d tensors, %d merged" % (len(base.tensors), len(adapted)))
PY
    for ((c = 0; c < n_cases; c++)); do
        prompt=$($PY -c 'import json,sys; print(json.load(open(sys.argv[1]))["cases"][int(sys.argv[2])]["prompt"])' "$ref" "$c")
        "$Q" run -m "$tmp/merged.gguf" --json --temp 0 -n "$n_gen" -c "$n_ctx" -t 2 -p "$prompt" \
            > "$tmp/out.jsonl" 2> "$tmp/err" || fail "$name: $(cat "$tmp/err")"
        $PY "$T/cli/compare_run_json.py" "$tmp/out.jsonl" "$ref" "$c" "$ref" "$name merged, case $c" ||
            fail "$name case $c: the merged model differs from llama.cpp with the adapters"
    done
    # llama.cpp loads the merged model and gives the adapters' logits too (teacher-forced on
    # its own greedy path: compared while the ids agree)
    $PY "$S/peer/llamaref.py" "$tmp/merged.gguf" --out "$tmp/peer" --ctx "$n_ctx" --n-gen "$n_gen" \
        --cpu-backend haswell --flash-attn off --no-repack \
        --prompt-file <($PY -c 'import json,sys; sys.stdout.write(json.load(open(sys.argv[1]))["cases"][0]["prompt"])' "$ref") \
        > /dev/null 2> "$tmp/err" || fail "$name: llama.cpp did not load the merged model: $(tail -3 "$tmp/err")"
    $PY - "$tmp/peer.json" "$ref" "$name" <<'PY' || fail "$name: llama.cpp on the merged model"
import json, sys
got, ref = (json.load(open(p)) for p in sys.argv[1:3])
tol = ref["tolerance"]["abs_logit"]
worst = 0.0
for gs, rs in zip(got["cases"][0]["steps"], ref["cases"][0]["steps"]):
    if gs["input_id"] != rs["input_id"]:
        break
    g = dict(gs["top"])
    for t, l in rs["top"]:
        if t in g:
            worst = max(worst, abs(g[t] - l))
assert worst <= tol, "largest top-10 difference %.4f > %.4f" % (worst, tol)
print("ok   %s: llama.cpp on the merged model within %.4f (tolerance %.4f)" % (sys.argv[3], worst, tol))
PY
done
echo "export-lora's merged models match llama.cpp with the adapters"

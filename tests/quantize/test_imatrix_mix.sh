#!/usr/bin/env bash
# `quarrel quantize --imatrix` against llama.cpp's llama_model_quantize with the same importance
# (params.imatrix): for each tests/quantize/data/imatrix-MODEL.json (made by mk_imatrix_refs.py),
# get the source (stories260K, or `quarrel synth` of qwen3-mix and granite-mix), write the
# synthetic importance as a legacy imatrix.dat, quantize to Q4_K_M, Q2_K, Q3_K_M, Q5_K_M, Q6_K,
# Q4_0, Q4_1, Q5_0 and Q5_1 and compare every tensor's type and bytes (check_imatrix_refs.py).
# stories260K's 64- and 172-wide rows fall back to the legacy types, so it checks their
# importance paths; qwen3-mix and granite-mix (256 wide) the k-quants'; granite's 8 layers
# llama.cpp's Q4_0/Q5_0 rule for the first ffn_down with an importance.
set -euo pipefail
Q=${QUARREL:?} T=${QR_TEST_DIR:?}
export QR_SHARED_DIR=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/quarrel-imatrix-mix.XXXXXX")
trap 'rm -rf "$dir"' EXIT

for m in stories260K qwen3 granite; do
    f="$T/quantize/data/imatrix-$m.json"
    [ -f "$f" ] || fail "no fixture $f"
    /usr/bin/python3 "$T/quantize/check_imatrix_refs.py" "$Q" "$f" "$dir" > "$dir/diff" 2>&1 ||
        fail "$m with importance differs from llama.cpp:
$(head -40 "$dir/diff")"
    n=$(/usr/bin/python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["mixes"]))' "$f")
    echo "$m: $n mixes with importance match llama.cpp"
done

# the fixture records llama.cpp's importance-weighted bytes, not the plain ones
/usr/bin/python3 - "$T/quantize/data/imatrix-qwen3.json" "$T/quantize/data/mix-qwen3.json" <<'PY' ||
import json, sys
with_im, plain = (json.load(open(p))["sha256"] for p in sys.argv[1:3])
name = "blk.0.attn_q.weight"
sys.exit(0 if with_im[name]["q4_K"] != plain[name]["q4_K"] else 1)
PY
    fail "imatrix-qwen3.json has the bytes of a quantization without importance"

# the checker itself: a fixture with one type and one hash changed must be caught
/usr/bin/python3 - "$T/quantize/data/imatrix-qwen3.json" "$dir/bad.json" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
m = ref["mixes"]["Q4_K_M"]
types = m["types"].split()
types[ref["tensors"].index("blk.0.attn_q.weight")] = "q5_K"
m["types"] = " ".join(types)
ref["sha256"]["blk.1.ffn_up.weight"]["q4_K"] = "0" * 64
json.dump(ref, open(sys.argv[2], "w"))
PY
set +e
/usr/bin/python3 "$T/quantize/check_imatrix_refs.py" "$Q" "$dir/bad.json" "$dir" Q4_K_M > "$dir/diff" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "a corrupted fixture passed (exit $rc): $(cat "$dir/diff")"
grep -qF "qwen3 Q4_K_M: blk.0.attn_q.weight is q4_K, llama.cpp q5_K" "$dir/diff" ||
    fail "changed type not reported: $(cat "$dir/diff")"
grep -qF "qwen3 Q4_K_M: blk.1.ffn_up.weight (q4_K): bytes differ" "$dir/diff" ||
    fail "changed hash not reported: $(cat "$dir/diff")"
echo ok

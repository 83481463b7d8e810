#!/usr/bin/env bash
# `quarrel quantize` mixes against llama.cpp's on every architecture Quarrel runs beyond llama:
# for each tests/quantize/data/mix-ARCH.json (llama.cpp v0.5.0's llama_model_quantize of
# `quarrel synth --shape ARCH-mix`, made by mk_mix_refs.py), regenerate the F16 source, quantize
# it to every file type llama.cpp made of it (mk_mix_refs.py: the k-quant mixes, IQ1_S ... IQ4_XS,
# TQ1_0, TQ2_0, MXFP4_MOE, without and with an importance matrix) and compare every tensor's
# type and bytes
# (check_mix_refs.py). The shapes are 256 wide with 512-long ffn rows, so the k-quants apply
# and the per-tensor rules show: phi3's fused attn_qkv and ffn_up, q/k and post norms, LongRoPE
# factors, tied and untied output heads, 2 to 8 layers, 2 and 4 query heads per kv head.
set -euo pipefail
Q=${QUARREL:?} T=${QR_TEST_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/quarrel-mix-arch.XXXXXX")
trap 'rm -rf "$dir"' EXIT

# The IQ1/IQ2/IQ3 mixes cost seconds each (ggml's grid searches): all of them on qwen3 (2 query
# heads per kv head) and phi3 (4, fused attn_qkv), the rest of the mixes everywhere. Under the
# sanitizers (several times slower) only phi3, whose fused tensors take the most paths (both
# together passed the 600 s limit under load).
archs=(qwen3 gemma2 gemma3 phi3 olmo2 granite smollm3)
[ "${QR_SANITIZED:-0}" != 1 ] || archs=(phi3)
for a in "${archs[@]}"; do
    f="$T/quantize/data/mix-$a.json"
    [ -f "$f" ] || fail "no fixture $f"
    mixes=$(/usr/bin/python3 -c '
import json, sys
all_iq = sys.argv[2] in ("qwen3", "phi3")
print(" ".join(m for m in json.load(open(sys.argv[1]))["mixes"]
               if all_iq or not m.startswith(("IQ1", "IQ2", "IQ3"))))' "$f" "$a")
    /usr/bin/python3 "$T/quantize/check_mix_refs.py" "$Q" "$f" "$dir" $mixes > "$dir/diff" 2>&1 ||
        fail "$a differs from llama.cpp:
$(head -40 "$dir/diff")"
    echo "$a: $(echo $mixes | wc -w) mixes match llama.cpp"
done

# the checker itself: a fixture with one type and one hash changed must be caught
/usr/bin/python3 - "$T/quantize/data/mix-phi3.json" "$dir/bad.json" <<'PY'
import json, sys
ref = json.load(open(sys.argv[1]))
m = ref["mixes"]["Q4_K_M"]
types = m["types"].split()
i = ref["tensors"].index("blk.0.attn_qkv.weight")
types[i] = "q5_K"  # the rule llama.cpp's dead ATTENTION_QKV branch would give
m["types"] = " ".join(types)
ref["sha256"]["blk.1.ffn_up.weight"]["q4_K"] = "0" * 64
json.dump(ref, open(sys.argv[2], "w"))
PY
set +e
/usr/bin/python3 "$T/quantize/check_mix_refs.py" "$Q" "$dir/bad.json" "$dir" Q4_K_M > "$dir/diff" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "a corrupted fixture passed (exit $rc): $(cat "$dir/diff")"
grep -qF "phi3-mix Q4_K_M: blk.0.attn_qkv.weight is q4_K, llama.cpp q5_K" "$dir/diff" ||
    fail "changed type not reported: $(cat "$dir/diff")"
grep -qF "phi3-mix Q4_K_M: blk.1.ffn_up.weight (q4_K): bytes differ" "$dir/diff" ||
    fail "changed hash not reported: $(cat "$dir/diff")"
echo ok

#!/usr/bin/env bash
# `quarrel quantize`: usage errors, a bad type name, a missing input (no output left behind),
# then stories260K to Q8_0, inspected and run greedily. The expected text is llama.cpp's greedy
# continuation of the same Q8_0 file (../shared/peer/llamaref.py, haswell, flash-attn off,
# no repack: ", there was a little girl named Lily. She loved to play"; every step's top-2
# gap is at least 0.08, above stories260K's 0.048 logit tolerance).
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/quarrel-quantize.XXXXXX")
trap 'rm -rf "$dir"' EXIT
out="$dir/stories-q8_0.gguf"

expect_fail() { # expect_fail RC NEEDLE args...
    local want=$1 needle=$2 rc
    shift 2
    set +e
    "$Q" quantize "$@" > "$dir/stdout" 2> "$dir/stderr"
    rc=$?
    set -e
    [ $rc -eq "$want" ] || fail "quantize $*: exit $rc, want $want: $(cat "$dir/stderr")"
    grep -qF -- "$needle" "$dir/stderr" || fail "quantize $*: no '$needle' in: $(cat "$dir/stderr")"
}

expect_fail 2 "expected IN.gguf OUT.gguf TYPE, got 0 arguments"
expect_fail 2 "expected IN.gguf OUT.gguf TYPE, got 2 arguments" "$S/models/stories260K.gguf" "$out"
expect_fail 2 "unknown option '--bogus'" --bogus "$S/models/stories260K.gguf" "$out" Q8_0
expect_fail 2 "-t expects an integer from 1 to 1024, got 'zero'" "$S/models/stories260K.gguf" "$out" Q8_0 -t zero
expect_fail 1 "unknown file type 'Q9_9'" "$S/models/stories260K.gguf" "$out" Q9_9
expect_fail 1 "cannot open '$dir/missing.gguf'" "$dir/missing.gguf" "$out" Q8_0
[ ! -e "$out" ] || fail "an output file was left after a failure"
expect_fail 1 "is already q5_0: re-quantizing to q8_0 is refused without --allow-requantize" \
    "$S/models/smol135-q4_k_m.gguf" "$out" Q8_0
[ -z "$(ls "$dir" | grep -v -e '^stdout$' -e '^stderr$')" ] || fail "files left behind: $(ls "$dir")"
"$Q" quantize --help | grep -q "usage: quarrel quantize IN.gguf OUT.gguf TYPE" || fail "--help"

"$Q" quantize "$S/models/stories260K.gguf" "$out" Q8_0 -t 2 -v > "$dir/stdout" 2> "$dir/stderr" ||
    fail "quantize: $(cat "$dir/stderr")"
grep -q "wrote $out (Q8_0)" "$dir/stdout" || fail "no 'wrote' line"
grep -q "blk.0.attn_q.weight .* converting to q8_0" "$dir/stderr" || fail "verbose lines"

info=$("$Q" inspect "$out")
echo "$info" | grep -Eq "general.file_type +u32 +7$" || fail "file_type is not 7 (MOSTLY_Q8_0)"
echo "$info" | grep -Eq "general.quantization_version +u32 +2$" || fail "quantization_version"
echo "$info" | grep -Eq "blk.0.attn_q.weight +q8_0" || fail "attn_q is not q8_0"
echo "$info" | grep -Eq "blk.0.attn_norm.weight +f32" || fail "norms must stay f32"
# ffn_down rows are 172 long: not a multiple of 32, so llama.cpp's fallback gives f16
echo "$info" | grep -Eq "blk.0.ffn_down.weight +f16" || fail "ffn_down fallback to f16"

text=$("$Q" run -m "$out" -p "Once upon a time" -n 16 --temp 0 2> "$dir/stderr") ||
    fail "run: $(cat "$dir/stderr")"
echo "$text" | grep -qF "Once upon a time, there was a little girl named Lily. She loved to play" ||
    fail "greedy text differs from llama.cpp's: $text"

# --imatrix and --pure: a legacy imatrix.dat with one entry (blk.0.attn_q.weight, 64 columns),
# options before the positionals, the type in lower case
/usr/bin/python3 - "$dir/imatrix.dat" <<'PY'
import struct, sys
name = b"blk.0.attn_q.weight"
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<ii", 1, len(name)) + name + struct.pack("<ii", 1, 64))
    f.write(struct.pack("<64f", *[1.0 + i for i in range(64)]))
PY
rm -f "$out"
expect_fail 2 "--imatrix needs a value" "$S/models/stories260K.gguf" "$out" IQ4_NL --imatrix
expect_fail 1 "imatrix '$dir/none.dat': cannot open" --imatrix "$dir/none.dat" \
    "$S/models/stories260K.gguf" "$out" IQ4_NL
head -c 30 "$dir/imatrix.dat" > "$dir/cut.dat"
expect_fail 1 "truncated" "$S/models/stories260K.gguf" "$out" IQ4_NL --imatrix "$dir/cut.dat"
"$Q" quantize --imatrix "$dir/imatrix.dat" -v "$S/models/stories260K.gguf" "$out" iq4_nl \
    > "$dir/stdout" 2> "$dir/stderr" || fail "quantize --imatrix: $(cat "$dir/stderr")"
grep -q "wrote $out (iq4_nl, with importance matrix)" "$dir/stdout" || fail "no 'wrote' line"
grep -q "blk.0.attn_q.weight .* converting to iq4_nl (importance)" "$dir/stderr" ||
    fail "attn_q not quantized with its importance: $(cat "$dir/stderr")"
grep -q "blk.1.attn_q.weight .* converting to iq4_nl \.\." "$dir/stderr" ||
    fail "blk.1.attn_q has no entry: $(cat "$dir/stderr")"
info=$("$Q" inspect "$out")
echo "$info" | grep -Eq "general.file_type +u32 +25$" || fail "file_type is not 25 (IQ4_NL)"
# output.weight: q6_K by the mix, 64 columns fall back to q8_0; --pure keeps iq4_nl
echo "$info" | grep -Eq "output.weight +q8_0" || fail "IQ4_NL output.weight is not q8_0"
"$Q" quantize "$S/models/stories260K.gguf" "$out" IQ4_XS --pure > /dev/null 2> "$dir/stderr" ||
    fail "quantize --pure: $(cat "$dir/stderr")"
info=$("$Q" inspect "$out")
echo "$info" | grep -Eq "general.file_type +u32 +30$" || fail "file_type is not 30 (IQ4_XS)"
# 64 columns: iq4_xs's 256-blocks do not fit, llama.cpp falls back to iq4_nl
echo "$info" | grep -Eq "output.weight +iq4_nl" || fail "--pure IQ4_XS output.weight"
echo "$info" | grep -Eq "blk.0.attn_q.weight +iq4_nl" || fail "--pure IQ4_XS attn_q"

# the very low-bit file types need an importance matrix (llama-quantize refuses too): smol135's
# 1536-wide ffn_down from layer 3 on would be iq2_xxs (the rest falls back to iq4_nl or is q2_K;
# stories260K, 64 wide, falls back entirely and needs none). Refused before writing anything.
rm -f "$out"
expect_fail 1 "would be iq2_xxs, a very low-bit type that llama-quantize refuses to make without an importance matrix" \
    "$S/models/smol135-q4_k_m.gguf" "$out" IQ2_XXS --allow-requantize
[ ! -e "$out" ] || fail "an output file was left after a refused IQ2_XXS"
expect_fail 2 "--output-tensor-type needs a value" "$S/models/stories260K.gguf" "$out" Q8_0 \
    --output-tensor-type
expect_fail 1 "--token-embedding-type: 'q7_0' is not a tensor type" \
    "$S/models/stories260K.gguf" "$out" Q8_0 --token-embedding-type q7_0

# --output-tensor-type, --token-embedding-type (any case), --leave-output-tensor
"$Q" quantize --output-tensor-type Q4_0 "$S/models/stories260K.gguf" "$out" Q8_0 \
    --token-embedding-type F16 > /dev/null 2> "$dir/stderr" || fail "quantize: $(cat "$dir/stderr")"
info=$("$Q" inspect "$out")
echo "$info" | grep -Eq "output.weight +q4_0" || fail "--output-tensor-type q4_0: $info"
echo "$info" | grep -Eq "token_embd.weight +f16" || fail "--token-embedding-type f16"
"$Q" quantize "$S/models/stories260K.gguf" "$out" Q4_0 --leave-output-tensor > /dev/null \
    2> "$dir/stderr" || fail "quantize: $(cat "$dir/stderr")"
info=$("$Q" inspect "$out")
echo "$info" | grep -Eq "output.weight +f32" || fail "--leave-output-tensor"

# --allow-requantize: a q8_0 model back to F32 (llama's ALL_F32) is its dequantisation, d * q
"$Q" quantize "$S/models/stories260K.gguf" "$dir/q8.gguf" Q8_0 > /dev/null 2>&1 || fail "Q8_0"
expect_fail 1 "is already q8_0: re-quantizing to f32 is refused without --allow-requantize" \
    "$dir/q8.gguf" "$out" F32
"$Q" quantize "$dir/q8.gguf" "$out" F32 --allow-requantize > /dev/null 2> "$dir/stderr" ||
    fail "quantize --allow-requantize: $(cat "$dir/stderr")"
/usr/bin/python3 - "$T/quantize" "$dir/q8.gguf" "$out" <<'PY' || fail "F32 is not the q8_0 dequantisation"
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import gguf_tensors
meta, q8 = gguf_tensors.read(sys.argv[2], data=True)
meta32, f32 = gguf_tensors.read(sys.argv[3], data=True)
assert meta32["general.file_type"] == 0, meta32["general.file_type"]
n = 0
for (name, t, ne, body), (name2, t2, _, body2) in zip(q8, f32):
    assert name == name2
    assert t2 == "f32", (name, t2)
    if t == "f32":  # norms
        assert body2 == body, name
        continue
    if t == "f16":  # ffn_down, 172 wide: f16 in the Q8_0 file
        want = np.frombuffer(body, dtype="<f2").astype(np.float32)
    else:
        assert t == "q8_0", (name, t)
        blocks = np.frombuffer(body, dtype=np.dtype([("d", "<f2"), ("q", "i1", 32)]))
        want = (blocks["d"].astype(np.float32)[:, None] * blocks["q"].astype(np.float32)).ravel()
    got = np.frombuffer(body2, dtype="<f4")
    assert np.array_equal(got, want), name
    n += 1
assert n > 10, n
PY
# and on to another quantized type
"$Q" quantize "$dir/q8.gguf" "$out" Q4_0 --allow-requantize > /dev/null 2> "$dir/stderr" ||
    fail "quantize --allow-requantize Q4_0: $(cat "$dir/stderr")"
info=$("$Q" inspect "$out")
echo "$info" | grep -Eq "blk.0.attn_q.weight +q4_0" || fail "requantized attn_q"

# a file whose metadata does not describe its tensors (2 layers, a lone blk.5.ffn_up) is still
# quantized tensor by tensor: the per-layer rules count the tensors they see
/usr/bin/python3 - "$S/models/synth" "$dir/lone.gguf" <<'PY'
import sys
import numpy as np
sys.path.insert(0, sys.argv[1])
import gguf
w = gguf.GGUFWriter(sys.argv[2])
w.add_string("general.architecture", "llama")
w.add_u32("llama.block_count", 2)
x = np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32)
w.add_tensor("blk.5.ffn_up.weight", x, 0, [256, 8])
w.write()
PY
"$Q" quantize "$dir/lone.gguf" "$out" q4_k_m > /dev/null 2> "$dir/stderr" ||
    fail "lone tensor: $(cat "$dir/stderr")"
info=$("$Q" inspect "$out")
echo "$info" | grep -Eq "blk.5.ffn_up.weight +q4_K" || fail "lone tensor not q4_K"
echo ok

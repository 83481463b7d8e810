#!/usr/bin/env bash
# `quarrel quantize`: usage errors, a bad type name, a missing input (no output left behind),
# then stories260K to Q8_0, inspected and run greedily. The expected text is llama.cpp's greedy
# continuation of the same Q8_0 file (../shared/peer/llamaref.py, haswell, flash-attn off,
# no repack: ", there was a little girl named Lily. She loved to play"; every step's top-2
# gap is at least 0.08, above stories260K's 0.048 logit tolerance).
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
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
expect_fail 1 "is already q5_0: re-quantizing to q8_0 is not supported" \
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
echo ok

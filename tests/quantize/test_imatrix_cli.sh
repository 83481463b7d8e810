#!/usr/bin/env bash
# `quarrel imatrix` against llama-imatrix's results (tests/quantize/data/imatrix-*.json and .bin,
# made through the peer by mk_imatrix_refs.sh): stories260K in three groupings of chunks (16 a
# batch in steps of 32 tokens; 5 chunks of 8 in one step; chunks of 1030 whose last step of 6
# rows is not counted), phi3-tiny (synthesized; fused attn_qkv and ffn_up are one entry each)
# and smol135 (3 chunks of 128), each in both formats, checked by
# check_imatrix.py (metadata, entry names, shapes and types exactly; counts exactly; sums
# within 1e-3 relative, smol135 within its measured tolerances; the final PPL within 0.02 in
# ln). Then: `quarrel quantize --imatrix` takes both files (and the IQ4_NL tensors they steer
# differ from those made without one); bad input gives a clear error, a non-zero exit and no
# file; and the checker catches a changed count, sum and name.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?} T=${QR_TEST_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/quarrel-imatrix.XXXXXX")
trap 'rm -rf "$dir"' EXIT
text=$S/reference/text/gpl-3.txt
check() { /usr/bin/python3 "$T/quantize/check_imatrix.py" "$@"; }

# case NAME MODEL N_CTX CHUNKS
case_() {
    local ref=$T/quantize/data/imatrix-$1.json m=$2
    [ -f "$m" ] || m=$S/models/$2
    "$Q" imatrix -m "$m" -f "$text" -o "$dir/$1.gguf" -c "$3" --chunks "$4" -t 2 \
        > "$dir/stdout" 2> "$dir/stderr" || fail "imatrix $1: $(cat "$dir/stderr")"
    local ppl
    ppl=$(sed -n 's/^Final estimate: PPL = \([^ ]*\) +\/- .*/\1/p' "$dir/stdout")
    [ -n "$ppl" ] || fail "imatrix $1: no final PPL in: $(cat "$dir/stdout")"
    grep -q "^imatrix: chunk $4/$4, running PPL " "$dir/stderr" || fail "no progress: $(cat "$dir/stderr")"
    "$Q" imatrix -m "$m" -f "$text" -o "$dir/$1.dat" -c "$3" --chunks "$4" -t 2 \
        --output-format dat --no-ppl > "$dir/stdout" 2> "$dir/stderr" ||
        fail "imatrix $1 (dat): $(cat "$dir/stderr")"
    ! grep -q "PPL" "$dir/stdout" "$dir/stderr" || fail "--no-ppl printed a PPL"
    check "$ref" "$dir/$1.gguf" "$text" --dat "$dir/$1.dat" --ppl "$ppl" > "$dir/diff" 2>&1 ||
        fail "$1 differs from llama-imatrix:
$(head -30 "$dir/diff")"
    echo "$1: matches llama-imatrix (PPL $ppl)"
}
case_ stories260K-c128 stories260K.gguf 128 20
case_ stories260K-c8 stories260K.gguf 8 5
case_ stories260K-c1030 stories260K.gguf 1030 2
"$Q" synth --shape phi3-tiny -o "$dir/phi3-tiny.gguf" > /dev/null || fail "synth phi3-tiny"
case_ phi3-tiny-c64 "$dir/phi3-tiny.gguf" 64 3
case_ smol135-c128 smol135-q4_k_m.gguf 128 3
"$Q" synth --arch qwen3moe -o "$dir/qwen3moe-tiny.gguf" > /dev/null || fail "synth qwen3moe"
case_ qwen3moe-tiny-c64 "$dir/qwen3moe-tiny.gguf" 64 3 # experts: sums and counts per expert

# quantize takes both files; the importance changes the IQ4_NL tensors it is used for
m=$S/models/stories260K.gguf
"$Q" quantize "$m" "$dir/plain.gguf" IQ4_NL > /dev/null 2>&1 || fail "quantize without imatrix"
for f in gguf dat; do
    "$Q" quantize "$m" "$dir/im-$f.gguf" IQ4_NL --imatrix "$dir/stories260K-c128.$f" \
        > /dev/null 2> "$dir/stderr" || fail "quantize --imatrix (.$f): $(cat "$dir/stderr")"
    ! cmp -s "$dir/plain.gguf" "$dir/im-$f.gguf" || fail "the .$f importance changed nothing"
done

# bad input: a clear message, a non-zero exit (not a crash), no output file
expect_fail() { # expect_fail RC NEEDLE args...
    local want=$1 needle=$2 rc
    shift 2
    set +e
    "$Q" imatrix "$@" > "$dir/stdout" 2> "$dir/stderr"
    rc=$?
    set -e
    [ $rc -eq "$want" ] || fail "imatrix $*: exit $rc, want $want: $(cat "$dir/stderr")"
    grep -qF -- "$needle" "$dir/stderr" || fail "imatrix $*: no '$needle' in: $(cat "$dir/stderr")"
    [ ! -e "$dir/bad.gguf" ] || fail "imatrix $*: left an output file"
}
head -c 300 "$text" > "$dir/short.txt"
: > "$dir/empty.txt"
o=$dir/bad.gguf
expect_fail 2 "give the text with -f FILE" -m "$m" -o "$o"
expect_fail 1 "cannot open '$dir/missing.txt'" -m "$m" -f "$dir/missing.txt" -o "$o"
expect_fail 1 "not found; looked at" -m "$dir/missing.gguf" -f "$text" -o "$o"
expect_fail 1 "needs at least 256 (2 chunks; use a smaller -c or a longer text)" -m "$m" -f "$dir/short.txt" -o "$o" -c 128
expect_fail 1 "the text has 1 tokens; a context of 512 needs at least 1024" -m "$m" -f "$dir/empty.txt" -o "$o"
expect_fail 2 "-c expects an integer from 2 to" -m "$m" -f "$text" -o "$o" -c 1
expect_fail 2 "-c expects an integer from 2 to" -m "$m" -f "$text" -o "$o" -c many
expect_fail 1 "context of 4096 tokens: the model was trained on at most 2048" -m "$m" -f "$text" -o "$o" -c 4096
expect_fail 1 "cannot write '$dir/no/such/dir/x.gguf'" -m "$m" -f "$text" -o "$dir/no/such/dir/x.gguf" -c 64
expect_fail 1 "cannot write '$dir'" -m "$m" -f "$text" -o "$dir" -c 64
expect_fail 2 "--output-format is 'gguf' or 'dat', not 'json'" -m "$m" -f "$text" -o "$o" --output-format json
expect_fail 2 "--chunks expects an integer from 1 to" -m "$m" -f "$text" -o "$o" --chunks 0
expect_fail 2 "unknown option '--bogus'" -m "$m" -f "$text" -o "$o" --bogus
expect_fail 2 "-o needs a value" -m "$m" -f "$text" -o
expect_fail 1 "no weight product had 16 or more input rows" -m "$m" -f "$text" -o "$o" -c 4 --chunks 3
"$Q" imatrix --help | grep -q "usage: quarrel imatrix -m MODEL -f TEXT" || fail "--help"
"$Q" help | grep -q "^  imatrix " || fail "imatrix missing from quarrel help"

# the checker can fail: a count, a sum beyond its tolerance and a name changed
/usr/bin/python3 - "$T/quantize/data/imatrix-stories260K-c8" "$dir/bad" <<'PY'
import json, shutil, struct, sys
ref = json.load(open(sys.argv[1] + ".json"))
ref["entries"][5]["count"] += 1
ref["entries"][9]["name"] = "blk.1.attn_x.weight"
ref["bin"] = "bad.bin"
json.dump(ref, open(sys.argv[2] + ".json", "w"))
raw = bytearray(open(sys.argv[1] + ".bin", "rb").read())
off = ref["entries"][0]["offset"] * 4 + 12
struct.pack_into("<f", raw, off, struct.unpack_from("<f", raw, off)[0] * 1.002)
open(sys.argv[2] + ".bin", "wb").write(raw)
PY
set +e
check "$dir/bad.json" "$dir/stories260K-c8.gguf" "$text" > "$dir/diff" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "a corrupted reference passed (exit $rc): $(cat "$dir/diff")"
grep -qF "tensor names differ: missing ['blk.1.attn_x.weight.counts'" "$dir/diff" ||
    fail "changed name not reported: $(cat "$dir/diff")"
/usr/bin/python3 - "$dir/bad.json" "$T/quantize/data/imatrix-stories260K-c8.json" <<'PY'
import json, sys
ref, orig = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
ref["entries"][9]["name"] = orig["entries"][9]["name"]  # the name back, the rest stays
json.dump(ref, open(sys.argv[1], "w"))
PY
set +e
check "$dir/bad.json" "$dir/stories260K-c8.gguf" "$text" --dat "$dir/stories260K-c8.dat" > "$dir/diff" 2>&1
rc=$?
set -e
[ $rc -eq 1 ] || fail "a corrupted reference passed (exit $rc): $(cat "$dir/diff")"
grep -qF "blk.0.attn_k.weight.in_sum2: 1 of 64 values off by more than 0.001 relative (first [3]" "$dir/diff" ||
    fail "changed sum not reported: $(cat "$dir/diff")"
grep -qF "blk.0.ffn_gate.weight.counts is 40.0, llama-imatrix 41" "$dir/diff" ||
    fail "changed count not reported: $(cat "$dir/diff")"
grep -qF "entry 'blk.0.ffn_gate.weight' ncall 5 nval 64, llama-imatrix 'blk.0.ffn_gate.weight' 6 64" "$dir/diff" ||
    fail "changed count not reported in the .dat: $(cat "$dir/diff")"
echo ok

#!/usr/bin/env bash
# The CLI on the mixtures of experts (`quarrel synth --arch mixtral`, a llama file with experts,
# in Q8_0, and `--arch gpt-oss --expert-type MXFP4`): `quarrel perplexity` within
# llama-perplexity's acceptance (|ln PPL - ln PPL_ref| <= 0.02, ../shared/reference/README.md)
# of the peer's llama.cpp on the same file and text
# (../shared/peer/llamaref_ppl.py, installed by the README's test command), and `quarrel bench`
# running prompt and generation and counting only the used experts' share of the expert
# tensors as the bytes a decode reads. (`quarrel run` on every synthetic architecture, experts
# included: test_run_arch.sh.)
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 24000 "$S/reference/text/gpl-3.txt" > "$tmp/text.txt"
# NAME SYNTH-ARGS...: the two checks below on `quarrel synth SYNTH-ARGS`
check_model() {
name=$1; shift
model=$tmp/$name.gguf
"$Q" synth "$@" -o "$model" 2> "$tmp/err" || fail "synth: $(cat "$tmp/err")"

# perplexity against llama.cpp's
"$Q" perplexity -m "$model" -f "$tmp/text.txt" -c 128 > "$tmp/ppl.out" 2>&1 ||
    fail "perplexity: $(tail -3 "$tmp/ppl.out")"
/usr/bin/python3 "$S/peer/llamaref_ppl.py" "$model" "$tmp/text.txt" --ctx 128 \
    --out "$tmp/ref.json" > /dev/null 2>&1 ||
    fail "llamaref_ppl.py failed: the peer is needed (the README's test command installs it)"
/usr/bin/python3 - "$tmp/ppl.out" "$tmp/ref.json" "$name" <<'PY' || fail "$name: perplexity differs from llama.cpp's"
import json, math, re, sys
out = open(sys.argv[1]).read()
ppl = float(re.findall(r"PPL = ([0-9.e+]+)", out)[-1])
ref = json.load(open(sys.argv[2]))["ppl"]
d = abs(math.log(ppl) - math.log(ref))
print("%s ctx 128: PPL %.6g, llama.cpp %.6g, |ln ratio| %.5f" % (sys.argv[3], ppl, ref, d))
assert d <= 0.02, d
PY

# bench: both tests run; a decode reads 2 of the 8 experts (and of their biases)
"$Q" bench -m "$model" -p 16 -n 4 -r 1 -t 1 -o json > "$tmp/bench.json" 2> "$tmp/err" ||
    fail "bench: $(cat "$tmp/err")"
"$Q" inspect --json "$model" > "$tmp/inspect.json"
/usr/bin/python3 - "$tmp/bench.json" "$tmp/inspect.json" <<'PY' || fail "$name: bench on experts"
import json, sys
b = json.load(open(sys.argv[1])); t = json.load(open(sys.argv[2]))["tensors"]
exps = sum(x["bytes"] for x in t if "_exps." in x["name"])
rest = sum(x["bytes"] for x in t if "_exps." not in x["name"] and x["name"] != "token_embd.weight")
want = rest + exps * 2 // 8
assert abs(b["weight_bytes_per_decode"] - want) <= 64, (b["weight_bytes_per_decode"], want)
tests = [r["test"] for r in b["results"]]
assert "pp16" in tests and "tg4" in tests, tests
PY
}
# gpt-oss as it ships: MXFP4 experts (sinks, biases, windows, YaRN)
check_model gpt-oss-tiny-mxfp4 --arch gpt-oss --expert-type MXFP4
check_model mixtral-tiny-q8_0 --arch mixtral --type Q8_0 # $model: mixtral-tiny-q8_0 from here
# imatrix: the experts' entries hold one sum row and one count per expert (llama-imatrix's
# MUL_MAT_ID branch: every routed row counts, so each layer's counts add up to tokens x 2 used);
# quantizing with it to IQ2_XXS (which needs one) takes each expert's slice
"$Q" imatrix -m "$model" -f "$tmp/text.txt" -o "$tmp/imatrix.gguf" -c 64 --chunks 3 \
    > "$tmp/imatrix.out" 2>&1 || fail "imatrix: $(tail -3 "$tmp/imatrix.out")"
"$Q" inspect --json "$tmp/imatrix.gguf" > "$tmp/imatrix.json"
/usr/bin/python3 - "$tmp/imatrix.json" <<'PY' || fail "imatrix entries of the experts"
import json, sys
t = {x["name"]: x for x in json.load(open(sys.argv[1]))["tensors"]}
for l in range(2):
    for w in ("gate", "up", "down"):
        name = "blk.%d.ffn_%s_exps.weight" % (l, w)
        assert t[name + ".counts"]["shape"] == [1, 8], t[name + ".counts"]
        assert t[name + ".in_sum2"]["shape"][1] == 8, t[name + ".in_sum2"]
PY
/usr/bin/python3 - "$tmp/imatrix.gguf" "$tmp/imatrix.json" <<'PY' || fail "imatrix counts of the experts"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
# the data section starts after the header, key-values and tensor infos, aligned to 32
SZ = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
def skip(off, typ):
    if typ == 8:
        return off + 8 + struct.unpack_from("<Q", b, off)[0]
    if typ == 9:
        et, n = struct.unpack_from("<IQ", b, off); off += 12
        for _ in range(n) if et == 8 else ():
            off = skip(off, 8)
        return off if et == 8 else off + SZ[et] * n
    return off + SZ[typ]
_, _, n_t, n_kv = struct.unpack_from("<4sIQQ", b, 0); off = 24
for _ in range(n_kv):
    off = skip(off, 8); off = skip(off + 4, struct.unpack_from("<I", b, off)[0])
for _ in range(n_t):
    off = skip(off, 8); nd = struct.unpack_from("<I", b, off)[0]; off += 4 + 8 * nd + 4 + 8
data = (off + 31) // 32 * 32
for x in json.load(open(sys.argv[2]))["tensors"]:
    if "_exps." in x["name"] and x["name"].endswith(".counts"):
        c = struct.unpack_from("<8f", b, data + x["offset"])
        assert sum(c) == 3 * 64 * 2 and min(c) > 0, (x["name"], c)
PY
"$Q" quantize "$model" "$tmp/iq2.gguf" IQ2_XXS --imatrix "$tmp/imatrix.gguf" --allow-requantize \
    > "$tmp/q.out" 2>&1 || fail "quantize with the experts' importance: $(tail -3 "$tmp/q.out")"
"$Q" run -m "$tmp/iq2.gguf" -p "Hello" -n 4 > /dev/null 2>&1 || fail "run on the IQ2_XXS mixture"
echo ok

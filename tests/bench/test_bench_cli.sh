#!/usr/bin/env bash
# `quarrel bench` and `quarrel synth`: bench's JSON has the expected fields (with -d, llama-bench's
# "tg64 @ d4096" labels) (speeds are not
# asserted: they depend on the machine); bad flags exit 2 with a message naming the problem;
# synth writes a tiny model, deterministic in its seed, that `quarrel run` loads and runs.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# ---- bench: JSON ----
"$Q" bench -m "$S/models/stories260K.gguf" -p 8 -n 4 -r 1 -t 1 -o json > "$T/b.json" \
    || fail "bench -o json exited $?"
/usr/bin/python3 - "$T/b.json" <<'PY' || fail "bench json"
import json, math, sys
d = json.load(open(sys.argv[1]))
assert d["model"] == "stories260K.gguf", d["model"]
assert d["arch"] == "llama"
# stories260K: 292800 parameters, all F32 (1171200 bytes); a decode reads all but token_embd
# (512 x 64 x 4 bytes), since the model has its own output.weight
assert d["model_n_params"] == 292800, d["model_n_params"]
assert d["model_size"] == 1171200, d["model_size"]
assert d["weight_bytes_per_decode"] == 1171200 - 512 * 64 * 4, d["weight_bytes_per_decode"]
assert d["n_prompt"] == 8 and d["n_gen"] == 4 and d["repetitions"] == 1 and d["warmup"] is True
assert d["bandwidth_source"] == "measured"
assert d["peak_rss_bytes"] > 1171200 // 2, d["peak_rss_bytes"]
r = d["results"]
assert [(x["threads"], x["test"], x["n_prompt"], x["n_gen"]) for x in r] == \
    [(1, "pp8", 8, 0), (1, "tg4", 0, 4)], r
for x in r:
    assert len(x["samples_ts"]) == 1 and x["samples_ts"][0] == x["avg_ts"], x
    assert x["avg_ts"] > 0 and math.isfinite(x["avg_ts"]) and x["stddev_ts"] == 0, x
    assert x["bw_gbps"] is None or x["bw_gbps"] > 0, x
    if x["bw_gbps"]:
        assert abs(x["bw_share"] - x["gbps"] / x["bw_gbps"]) < 1e-9, x
# pp8 is one decode: the weights once for 8 tokens; tg reads them every token
assert r[0]["bytes_per_token"] == d["weight_bytes_per_decode"] / 8, r[0]
assert r[1]["bytes_per_token"] == d["weight_bytes_per_decode"], r[1]
assert abs(r[1]["gbps"] - r[1]["bytes_per_token"] * r[1]["avg_ts"] / 1e9) < 1e-9, r[1]
PY

# two thread counts, --bw given, -b splitting the prompt: pp12 in batches of 5 is 3 decodes
"$Q" bench -m "$S/models/stories260K.gguf" -p 12 -b 5 -n 2 -r 2 -t 1,2 --bw 10 -o json > "$T/b2.json" \
    || fail "bench -t 1,2 exited $?"
/usr/bin/python3 - "$T/b2.json" <<'PY' || fail "bench json 2"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"]
assert [(x["threads"], x["test"]) for x in r] == [(1, "pp12"), (1, "tg2"), (2, "pp12"), (2, "tg2")], r
assert d["bandwidth_source"] == "given"
for x in r:
    assert x["bw_gbps"] == 10 and len(x["samples_ts"]) == 2, x
assert r[0]["bytes_per_token"] == d["weight_bytes_per_decode"] * 3 / 12, r[0]
PY

# -d (llama-bench's depth): each test after that many tokens in the cache, llama-bench's labels
"$Q" bench -m "$S/models/stories260K.gguf" -p 6 -n 3 -r 1 -t 1 -d 0,20 -b 8 --tg-after-pp \
    --bw 10 -o json > "$T/b3.json" || fail "bench -d exited $?"
/usr/bin/python3 - "$T/b3.json" <<'PY' || fail "bench -d json"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["results"]
assert [(x["threads"], x["test"], x["n_depth"]) for x in r] == \
    [(1, "pp6", 0), (1, "tg3", 0), (1, "pp6 @ d20", 20), (1, "tg3 @ d20", 20)], r
PY
"$Q" bench -m "$S/models/stories260K.gguf" -p 4 -n 2 -r 1 -t 1 -d 16 -ctk f32 --bw 10 \
    > "$T/b3.md" 2> /dev/null || fail "bench -d md exited $?"
grep -q "^| stories260K.gguf | .* | 1 | tg2 @ d16 | .* ± " "$T/b3.md" || fail "md depth row: $(cat "$T/b3.md")"

# markdown: a llama-bench-like table
"$Q" bench -m "$S/models/stories260K.gguf" -p 4 -n 2 -r 1 -t 1 --bw 10 > "$T/b.md" 2> /dev/null \
    || fail "bench md exited $?"
grep -q "^| model | size | params | threads | test | t/s | GB/s | bw |" "$T/b.md" || fail "md header"
grep -q "^| stories260K.gguf | .* | 1 | pp4 | .* ± " "$T/b.md" || fail "md pp row: $(cat "$T/b.md")"
grep -q "^| stories260K.gguf | .* | 1 | tg2 | .* ± .* of 10.0 |" "$T/b.md" || fail "md tg row"
grep -q "peak RSS: " "$T/b.md" || fail "md peak RSS"

# ---- bad input: exit 2 (flags) or 1 (files), a message naming the problem ----
expect() { # expect RC 'message substring' command...
    local want=$1 msg=$2 rc
    shift 2
    set +e
    "$@" > "$T/out" 2> "$T/err"
    rc=$?
    set -e
    [ $rc -eq "$want" ] || fail "'$*' exited $rc, not $want: $(cat "$T/err")"
    grep -qF -- "$msg" "$T/err" || fail "'$*': no '$msg' in: $(cat "$T/err")"
}
M="$S/models/stories260K.gguf"
expect 2 "unknown option '--bogus'" "$Q" bench -m "$M" --bogus
expect 2 "-t expects a comma-separated list" "$Q" bench -m "$M" -t 0
expect 2 "-t expects a comma-separated list" "$Q" bench -m "$M" -t 1,x
expect 2 "-t expects a comma-separated list" "$Q" bench -m "$M" -t 1,
expect 2 "-o must be md or json, not 'xml'" "$Q" bench -m "$M" -o xml
expect 2 "-d expects a comma-separated list of at most 8 depths" "$Q" bench -m "$M" -d -1
expect 2 "-d expects a comma-separated list of at most 8 depths" "$Q" bench -m "$M" -d 1,x
expect 2 "-d expects a comma-separated list of at most 8 depths" "$Q" bench -m "$M" -d 1,2,3,4,5,6,7,8,9
expect 2 "-d needs a value" "$Q" bench -m "$M" -d
expect 2 "-p expects an integer from 0" "$Q" bench -m "$M" -p -1
expect 2 "-r expects an integer from 1" "$Q" bench -m "$M" -r 0
expect 2 "--bw expects a number" "$Q" bench -m "$M" --bw fast
expect 2 "-n needs a value" "$Q" bench -m "$M" -n
expect 2 "give a model with -m" "$Q" bench -p 8
expect 2 "nothing to measure" "$Q" bench -m "$M" -p 0 -n 0
expect 1 "/nonexistent/model.gguf" "$Q" bench -m /nonexistent/model.gguf -r 1 --bw 1

expect 2 "unknown shape 'huge'" "$Q" synth --shape huge -o "$T/x.gguf"
expect 2 "unknown --type 'Q9_9'" "$Q" synth --shape tiny --type Q9_9 -o "$T/x.gguf"
expect 2 "give an output file with -o" "$Q" synth --shape tiny
expect 2 "give an architecture with --arch or a shape with --shape" "$Q" synth -o "$T/x.gguf"
expect 2 "--seed expects a non-negative integer" "$Q" synth --shape tiny --seed -3 -o "$T/x.gguf"
expect 2 "unknown option '--frobnicate'" "$Q" synth --shape tiny --frobnicate 3 -o "$T/x.gguf"
expect 2 "--layers 3: shape 'tiny' has 2 layers" "$Q" synth --shape tiny --layers 3 -o "$T/x.gguf"
expect 1 "/nonexistent/vocab.gguf" "$Q" synth --shape tiny --vocab /nonexistent/vocab.gguf -o "$T/x.gguf"
expect 1 "has no tokenizer.ggml.tokens" "$Q" synth --shape tiny --vocab "$S/reference/alltypes.gguf" -o "$T/x.gguf"
[ ! -e "$T/x.gguf" ] || fail "a failed synth left an output file"

# ---- synth: a tiny model that runs ----
V="$S/tokenizer-vectors/ggml-vocab-llama-spm.gguf"
"$Q" synth --shape tiny --type Q8_0 --vocab "$V" --seed 7 -o "$T/tiny.gguf" 2> "$T/err" \
    || fail "synth: $(cat "$T/err")"
"$Q" synth --shape tiny --type Q8_0 --vocab "$V" --seed 7 -o "$T/tiny2.gguf" 2> /dev/null || fail "synth 2"
"$Q" synth --shape tiny --type Q8_0 --vocab "$V" --seed 8 -o "$T/tiny3.gguf" 2> /dev/null || fail "synth 3"
cmp -s "$T/tiny.gguf" "$T/tiny2.gguf" || fail "same seed, different files"
! cmp -s "$T/tiny.gguf" "$T/tiny3.gguf" || fail "different seeds, same file"
ls "$T" | grep -q scratch && fail "scratch file left behind"
/usr/bin/python3 - "$T/tiny.gguf" "$V" <<'PY' || fail "synth file contents"
import struct, sys

def read_gguf(path):
    """Just enough of a GGUF reader: metadata (scalars, strings, string-array lengths) and
    tensor infos."""
    b = open(path, "rb").read()
    o = 0
    def u(fmt):
        nonlocal o
        v = struct.unpack_from("<" + fmt, b, o)
        o += struct.calcsize(fmt)
        return v[0]
    def s():
        nonlocal o
        n = u("Q")
        v = b[o:o + n].decode()
        o += n
        return v
    sizes = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    def val(t):
        if t == 8:
            return s()
        if t == 9:
            et, n = u("I"), u("Q")
            return [val(et) for _ in range(n)]
        return u(sizes[t])
    assert b[:4] == b"GGUF", path
    o = 4
    ver, nt, nkv = u("I"), u("Q"), u("Q")
    kv = {}
    for _ in range(nkv):
        k = s()
        kv[k] = val(u("I"))
    ts = {}
    for _ in range(nt):
        name = s()
        nd = u("I")
        ne = [u("Q") for _ in range(nd)]
        ts[name] = (u("I"), ne)
        u("Q")
    return kv, ts

kv, ts = read_gguf(sys.argv[1])
vkv, _ = read_gguf(sys.argv[2])
assert kv["general.architecture"] == "llama"
assert kv["llama.embedding_length"] == 256 and kv["llama.block_count"] == 2, kv
assert kv["llama.attention.head_count"] == 4 and kv["llama.attention.head_count_kv"] == 2
assert kv["llama.feed_forward_length"] == 512 and kv["llama.vocab_size"] == 32000
assert kv["general.file_type"] == 7  # LLAMA_FTYPE_MOSTLY_Q8_0
for k, v in vkv.items():
    if k.startswith("tokenizer."):
        assert kv[k] == v, k
assert len(ts) == 3 + 9 * 2, len(ts)
Q8_0, F32 = 8, 0
assert ts["token_embd.weight"] == (Q8_0, [256, 32000]), ts["token_embd.weight"]
assert ts["output.weight"] == (Q8_0, [256, 32000])
assert ts["blk.1.attn_k.weight"] == (Q8_0, [256, 128])  # 2 KV heads of 64
assert ts["blk.1.ffn_down.weight"] == (Q8_0, [512, 256])
assert ts["blk.0.attn_norm.weight"] == (F32, [256]) and ts["output_norm.weight"] == (F32, [256])
PY
"$Q" run -m "$T/tiny.gguf" -p "Hello" -n 4 --temp 0 --json > "$T/run.json" 2> "$T/err" \
    || fail "run on the synthetic model: $(cat "$T/err")"
/usr/bin/python3 - "$T/run.json" <<'PY' || fail "run output"
import json, math, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
assert len(lines) == 4, len(lines)
for t in lines:
    top = t["top"][0][1]
    # built for final logits of std ~4: the best of 32000 lies a few std out, never at 0 or huge
    assert math.isfinite(top) and 2 < top < 60, t["top"][:3]
PY
# bench runs on it too
"$Q" bench -m "$T/tiny.gguf" -p 8 -n 2 -r 1 -t 1 --bw 10 -o json > /dev/null || fail "bench on synth"
echo ok

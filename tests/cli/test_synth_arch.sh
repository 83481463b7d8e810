#!/usr/bin/env bash
# `quarrel synth --arch NAME`: every architecture's test model is a GGUF that `quarrel inspect`
# reads, with the architecture, keys and tensors llama.cpp expects (GGUF names, fused phi3
# tensors, no output.weight for gemma2, no pre-norms for olmo2, ...); the same seed gives the same
# bytes; unknown architectures, shapes and rope scalings are usage errors (exit 2).
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

check() { # check FILE ARCH: python assertions on `quarrel inspect --json`, from stdin
    "$Q" inspect --json "$1" > "$tmp/inspect.json" || fail "inspect $1"
    /usr/bin/python3 - "$tmp/inspect.json" "$2" || fail "$2: $1"
}

for arch in llama qwen2 qwen3 gemma2 gemma3 phi3 olmo2 granite smollm3; do
    "$Q" synth --arch "$arch" -o "$tmp/$arch.gguf" 2> "$tmp/err" || fail "synth $arch: $(cat "$tmp/err")"
    check "$tmp/$arch.gguf" "$arch" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); arch = sys.argv[2]
md = d["metadata"]; t = {x["name"]: x["shape"] for x in d["tensors"]}
K = lambda k: md[arch + "." + k]
assert md["general.architecture"] == arch, md["general.architecture"]
for k in ("context_length", "embedding_length", "block_count", "feed_forward_length",
          "attention.head_count", "attention.head_count_kv", "attention.layer_norm_rms_epsilon"):
    assert arch + "." + k in md, k
E, L, H, KV = K("embedding_length"), K("block_count"), K("attention.head_count"), K("attention.head_count_kv")
hd = md.get(arch + ".attention.key_length", E // H)
assert KV < H, "GQA"
assert "token_embd.weight" in t and "output_norm.weight" in t
assert "tokenizer.ggml.tokens" in md
last = "blk.%d." % (L - 1)
if arch == "phi3":
    assert t["blk.0.attn_qkv.weight"] == [E, (H + 2 * KV) * hd], t["blk.0.attn_qkv.weight"]
    assert t["blk.0.ffn_up.weight"] == [E, 2 * K("feed_forward_length")]
    assert "blk.0.ffn_gate.weight" not in t and "blk.0.attn_q.weight" not in t
    assert t["rope_factors_long.weight"] == [K("rope.dimension_count") // 2]
    assert t["rope_factors_short.weight"] == [K("rope.dimension_count") // 2]
    assert K("rope.scaling.original_context_length") < K("context_length")
    assert abs(K("rope.scaling.attn_factor") - 1.19) < 1e-6 and K("attention.sliding_window") == 8
else:
    assert t[last + "attn_q.weight"] == [E, H * hd] and t[last + "ffn_gate.weight"]
    assert t[last + "attn_k.weight"] == [E, KV * hd] and t[last + "attn_v.weight"] == [E, KV * hd]
if arch == "qwen2":
    assert "blk.0.attn_q.bias" in t and "blk.0.attn_v.bias" in t
if arch in ("qwen3", "gemma3"):
    assert hd != E // H, "head_dim apart from n_embd / n_head"
    assert t["blk.0.attn_q_norm.weight"] == [hd] and t["blk.0.attn_k_norm.weight"] == [hd]
if arch in ("gemma2", "gemma3", "olmo2"):
    assert t[last + "post_attention_norm.weight"] == [E] and t[last + "post_ffw_norm.weight"] == [E]
if arch == "gemma2":
    assert "output.weight" not in t
    assert K("attention.sliding_window") == 8
    assert K("attn_logit_softcapping") == 5 and K("final_logit_softcapping") == 15
if arch == "gemma3":
    assert L == 6 and K("attention.sliding_window") == 8
    assert K("rope.freq_base_swa") != K("rope.freq_base")
if arch == "olmo2":
    assert "blk.0.attn_norm.weight" not in t and "blk.0.ffn_norm.weight" not in t
    assert t["blk.0.attn_q_norm.weight"] == [H * hd] and t["blk.0.attn_k_norm.weight"] == [KV * hd]
    assert "output.weight" in t
else:
    assert t[last + "attn_norm.weight"] == [E] and t[last + "ffn_norm.weight"] == [E]
if arch == "granite":
    assert K("embedding_scale") == 12 and K("logit_scale") == 8
    assert abs(K("residual_scale") - 0.22) < 1e-6 and K("attention.scale") == 0.0078125
if arch == "smollm3":
    assert L == 4
PY
done

# mixtures of experts: mixtral is a llama file with experts (as Mixtral is stored), qwen3moe has
# qwen3's attention; 3-D expert tensors [n_in, n_out, n_expert], an F32 router, no dense FFN;
# the routing code (cmd_synth.c) gives every token two experts by a clear margin
for arch in mixtral qwen3moe; do
    "$Q" synth --arch "$arch" -o "$tmp/$arch.gguf" 2> "$tmp/err" || fail "synth $arch: $(cat "$tmp/err")"
    check "$tmp/$arch.gguf" "$arch" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); synth = sys.argv[2]
arch = "llama" if synth == "mixtral" else synth
md = d["metadata"]; t = {x["name"]: x for x in d["tensors"]}
assert md["general.architecture"] == arch, md["general.architecture"]
K = lambda k: md[arch + "." + k]
E, L, X, k = K("embedding_length"), K("block_count"), K("expert_count"), K("expert_used_count")
assert 4 <= X <= 8 and k == 2 and 2 <= L <= 4, (X, k, L)
ffe = md.get(arch + ".expert_feed_forward_length", K("feed_forward_length"))
assert (arch + ".expert_feed_forward_length" in md) == (arch == "qwen3moe")
for l in range(L):
    b = "blk.%d." % l
    assert t[b + "ffn_gate_inp.weight"]["shape"] == [E, X] and t[b + "ffn_gate_inp.weight"]["type"] == "f32"
    assert t[b + "ffn_gate_exps.weight"]["shape"] == [E, ffe, X]
    assert t[b + "ffn_up_exps.weight"]["shape"] == [E, ffe, X]
    assert t[b + "ffn_down_exps.weight"]["shape"] == [ffe, E, X]
    assert b + "ffn_gate.weight" not in t and b + "ffn_down.weight" not in t
assert "output.weight" in t, "untied"
if arch == "qwen3moe":
    assert t["blk.0.attn_q_norm.weight"]["shape"] == [md["qwen3moe.attention.key_length"]]
PY
done
"$Q" synth --shape qwen3moe-mix --type Q4_K_M -o "$tmp/moe-mix.gguf" 2> /dev/null || fail "qwen3moe-mix"
check "$tmp/moe-mix.gguf" qwen3moe <<'PY'
import json, sys
t = {x["name"]: x for x in json.load(open(sys.argv[1]))["tensors"]}
assert t["blk.0.ffn_gate_exps.weight"]["type"] in ("q4_K", "q5_K", "q6_K"), t["blk.0.ffn_gate_exps.weight"]
assert t["blk.0.ffn_gate_inp.weight"]["type"] == "f32"
PY

# gpt-oss: attention sinks, biases on q/k/v/output, the router and the experts (2-D, one row
# per expert), the FFN norm under post_attention_norm, YaRN as it ships (factor 32), a window;
# --expert-type MXFP4 makes the experts' matrices MXFP4 and leaves the rest F16
"$Q" synth --arch gpt-oss --expert-type MXFP4 -o "$tmp/gpt-oss.gguf" 2> "$tmp/err" ||
    fail "synth gpt-oss: $(cat "$tmp/err")"
check "$tmp/gpt-oss.gguf" gpt-oss <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); arch = sys.argv[2]
md = d["metadata"]; t = {x["name"]: x for x in d["tensors"]}
K = lambda k: md[arch + "." + k]
assert md["general.architecture"] == "gpt-oss"
E, L, H, KV = K("embedding_length"), K("block_count"), K("attention.head_count"), K("attention.head_count_kv")
X, k, ffe, hd = K("expert_count"), K("expert_used_count"), K("expert_feed_forward_length"), K("attention.key_length")
assert hd != E // H and 2 <= L <= 4 and 4 <= X <= 8 and k == 2, (hd, L, X, k)
assert K("attention.sliding_window") == 8 and K("rope.scaling.type") == "yarn"
assert K("rope.scaling.factor") == 32 and K("rope.scaling.original_context_length") == 128
shape = lambda n: t[n]["shape"]
for l in range(L):
    b = "blk.%d." % l
    assert shape(b + "attn_sinks.weight") == [H] and t[b + "attn_sinks.weight"]["type"] == "f32"
    assert shape(b + "attn_q.bias") == [H * hd] and shape(b + "attn_k.bias") == [KV * hd]
    assert shape(b + "attn_output.bias") == [E] and shape(b + "post_attention_norm.weight") == [E]
    assert b + "ffn_norm.weight" not in t
    assert shape(b + "ffn_gate_inp.bias") == [X]
    for n, w in (("gate", ffe), ("up", ffe), ("down", E)):
        assert t[b + "ffn_%s_exps.weight" % n]["type"] == "mxfp4", t[b + "ffn_%s_exps.weight" % n]
        assert shape(b + "ffn_%s_exps.bias" % n) == [w, X] and t[b + "ffn_%s_exps.bias" % n]["type"] == "f32"
    assert t[b + "attn_q.weight"]["type"] == "f16"
assert "output.weight" in t
PY

# rope-scaling variants
"$Q" synth --arch qwen3 --rope-scaling yarn -o "$tmp/yarn.gguf" 2> /dev/null || fail "yarn"
check "$tmp/yarn.gguf" qwen3 <<'PY'
import json, sys
md = json.load(open(sys.argv[1]))["metadata"]
assert md["qwen3.rope.scaling.type"] == "yarn" and md["qwen3.rope.scaling.factor"] == 4
assert md["qwen3.rope.scaling.original_context_length"] == 128 and md["qwen3.context_length"] == 512
PY
"$Q" synth --arch gemma3 --rope-scaling linear -o "$tmp/linear.gguf" 2> /dev/null || fail "linear"
check "$tmp/linear.gguf" gemma3 <<'PY'
import json, sys
md = json.load(open(sys.argv[1]))["metadata"]
assert md["gemma3.rope.scaling.type"] == "linear" and md["gemma3.rope.scaling.factor"] == 4
PY
"$Q" synth --arch phi3 --rope-scaling none -o "$tmp/norope.gguf" 2> /dev/null || fail "phi3 none"
check "$tmp/norope.gguf" phi3 <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
assert not any(x["name"].startswith("rope_factors") for x in d["tensors"])
assert "phi3.rope.scaling.original_context_length" not in d["metadata"]
PY

# deterministic: the same seed gives the same bytes, another seed other bytes
"$Q" synth --arch gemma3 -o "$tmp/a.gguf" 2> /dev/null
"$Q" synth --arch gemma3 --seed 1 -o "$tmp/b.gguf" 2> /dev/null
"$Q" synth --arch gemma3 --seed 2 -o "$tmp/c.gguf" 2> /dev/null
[ "$(sha256sum < "$tmp/a.gguf")" = "$(sha256sum < "$tmp/b.gguf")" ] || fail "same seed, other bytes"
[ "$(sha256sum < "$tmp/a.gguf")" != "$(sha256sum < "$tmp/c.gguf")" ] || fail "seed ignored"

# usage errors
usage_err() { # usage_err WORD ARGS...: exit 2 and a message naming WORD
    local word=$1; shift
    set +e; "$Q" synth "$@" -o "$tmp/x.gguf" 2> "$tmp/err"; local rc=$?; set -e
    [ $rc -eq 2 ] || fail "synth $*: exit $rc, not 2"
    grep -q -- "$word" "$tmp/err" || fail "synth $*: message does not name '$word': $(cat "$tmp/err")"
    [ ! -e "$tmp/x.gguf" ] || fail "synth $*: wrote a file"
}
usage_err "'mamba9'" --arch mamba9
usage_err "'qwen9-7b'" --shape qwen9-7b
usage_err "not gemma3" --arch gemma3 --shape qwen3-0.6b
usage_err "'spiral'" --arch qwen3 --rope-scaling spiral
usage_err "longrope" --arch qwen3 --rope-scaling longrope
usage_err "--arch" -t 2
usage_err "'Q9_9'" --arch gpt-oss --expert-type Q9_9
usage_err "no experts" --arch qwen3 --expert-type MXFP4
echo ok

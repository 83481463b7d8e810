#!/usr/bin/env bash
# Bad LoRA adapters and flags: each is refused with an exit status from 1 to 123 (never a
# crash) and a message naming the problem (and the offending tensor where there is one).
set -uo pipefail
Q=${QUARREL:?} T=${QR_TEST_DIR:?} S=${QR_SHARED_DIR:?}
PY=/usr/bin/python3
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
ST=$S/models/stories260K.gguf SM=$S/models/smol135-q4_k_m.gguf
fails=0
mk() { QR_SHARED_DIR=$S $PY "$T/lora/mk_lora.py" "$@" || { echo "FAIL: mk_lora.py $*"; exit 1; }; }
# expect WHAT PATTERN COMMAND...: the command fails with 1..123 and stderr matches PATTERN
expect() {
    local what=$1 pat=$2; shift 2
    "$@" > "$tmp/out" 2> "$tmp/err"
    local rc=$?
    if [ "$rc" -lt 1 ] || [ "$rc" -gt 123 ]; then
        echo "FAIL: $what: exit status $rc"; cat "$tmp/err"; fails=$((fails + 1)); return
    fi
    if ! grep -qE -- "$pat" "$tmp/err"; then
        echo "FAIL: $what: no /$pat/ in:"; cat "$tmp/err"; fails=$((fails + 1)); return
    fi
    echo "ok: $what: $(head -1 "$tmp/err")"
}
run() { "$Q" run -m "$ST" -n 2 --temp 0 -t 1 "$@"; }

mk "$ST" "$tmp/good.gguf" --rank 4
for bad in nan missing-b rank arch type suffix expert embd; do
    mk "$ST" "$tmp/$bad.gguf" --rank 4 --bad "$bad"
done
expect "NaN in lora_b" "tensor 'output.weight.lora_b' has a NaN or infinite value" run --lora "$tmp/nan.gguf"
expect "pair without lora_b" "LoRA pair of tensor 'output.weight' has no lora_b" run --lora "$tmp/missing-b.gguf"
expect "rank mismatch" "tensor 'output.weight': rank mismatch: lora_a has rank 4 .* lora_b has 3" \
    run --lora "$tmp/rank.gguf"
expect "wrong architecture" "architecture is 'gpt2' but the model's is 'llama'" run --lora "$tmp/arch.gguf"
expect "not an adapter" "general.type is 'model', expected 'adapter'" run --lora "$tmp/type.gguf"
expect "unexpected tensor" "unexpected tensor 'blk.0.attn_q.weight.extra'" run --lora "$tmp/suffix.gguf"
expect "expert (3-D) pair" "output.weight.lora_a' has shape \[64, 4, 2, 1\]: LoRA on expert" \
    run --lora "$tmp/expert.gguf"
expect "token_embd pair" "LoRA on tensor 'token_embd.weight' is not supported" run --lora "$tmp/embd.gguf"
# an adapter made for another base of the same architecture: the tensor is named
mk "$SM" "$tmp/smol-down.gguf" --rank 4 --only 'blk\.3\.ffn_down'
expect "another base's shapes" "tensor 'blk.3.ffn_down.weight': the adapter's pair maps 1536 inputs to 576 outputs but the model's tensor is \[172, 64\]" \
    run --lora "$tmp/smol-down.gguf"
mk "$SM" "$tmp/smol-deep.gguf" --rank 4 --only 'blk\.20\.attn_q'
expect "a tensor the base lacks" "tensor 'blk.20.attn_q.weight', which the model does not have" \
    run --lora "$tmp/smol-deep.gguf"
expect "missing file" "$tmp/none.gguf" run --lora "$tmp/none.gguf"
printf 'not a gguf file at all, just text\n' > "$tmp/text.gguf"
expect "not a GGUF file" "text.gguf" run --lora "$tmp/text.gguf"
# the flags' syntax
expect "--lora-scaled without a scale" "--lora-scaled expects FILE:SCALE" run --lora-scaled "$tmp/good.gguf"
expect "--lora-scaled with a bad scale" "--lora-scaled expects FILE:SCALE" run --lora-scaled "$tmp/good.gguf:x"
expect "--lora-scaled with an empty item" "--lora-scaled expects FILE:SCALE" run --lora-scaled "$tmp/good.gguf:1,"
expect "--lora without a value" "--lora needs a value" run --lora
expect "--lora with an empty list item" "--lora expects a file" run --lora "$tmp/good.gguf,"
# every command that takes adapters refuses a bad one
expect "chat" "has a NaN" "$Q" chat -m "$ST" --lora "$tmp/nan.gguf" < /dev/null
expect "perplexity" "has a NaN" "$Q" perplexity -m "$ST" -f "$T/eval/tasks_stories.jsonl" --lora "$tmp/nan.gguf"
expect "bench" "has a NaN" "$Q" bench -m "$ST" -p 0 -n 4 -r 1 -t 1 --bw 1 --lora "$tmp/nan.gguf"
expect "serve" "has a NaN" "$Q" serve -m "$ST" --port 0 --lora "$tmp/nan.gguf"
expect "export-lora" "has a NaN" "$Q" export-lora -m "$ST" --lora "$tmp/nan.gguf" -o "$tmp/m.gguf"
expect "export-lora without an adapter" "no adapter" "$Q" export-lora -m "$ST" -o "$tmp/m.gguf"
[ ! -e "$tmp/m.gguf" ] || { echo "FAIL: export-lora wrote a file after an error"; fails=$((fails + 1)); }
# the good adapter works everywhere
run --lora "$tmp/good.gguf" > /dev/null 2>&1 || { echo "FAIL: the good adapter"; fails=$((fails + 1)); }
"$Q" bench -m "$ST" -p 8 -n 4 -r 1 -t 1 --bw 1 --lora-scaled "$tmp/good.gguf:0.5" > /dev/null 2>&1 ||
    { echo "FAIL: bench with an adapter"; fails=$((fails + 1)); }
[ "$fails" = 0 ] || { echo "$fails failures"; exit 1; }
echo "every bad adapter refused"

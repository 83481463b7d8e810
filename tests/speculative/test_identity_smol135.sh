#!/usr/bin/env bash
# Speculative decoding's greedy identity on smol135 F16 (its source regenerated from
# ../shared/models/synth/mk_synth.py into the build tree) with smol135-q4_k_m as draft, 128
# tokens on three prompts through `quarrel run`.
#
# Before the logits were batch-invariant, smol135 F16's logits differed by up to ~0.013 between
# a position evaluated alone and in the draft's k + 1 batch, and on "The quick brown fox" step
# 101 (a near-tie, gap 0.007) the batched logits broke the tie the other way: this pair is the
# one that needs invariance.
set -euo pipefail
Q=${QUARREL:?} S=${QR_SHARED_DIR:?}
fail() { echo "FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

F16=${QR_SMOL135_F16:-$PWD/spec-smol135-f16.gguf}
if [ ! -f "$F16" ]; then
    /usr/bin/python3 -c 'import numpy' 2>/dev/null ||
        fail "smol135 F16: /usr/bin/python3 cannot import numpy (apt-get install -y python3-numpy)"
    /usr/bin/python3 "$S/models/synth/mk_synth.py" smol135 "$F16.tmp.gguf" > /dev/null && mv "$F16.tmp.gguf" "$F16"
fi
D=$S/models/smol135-q4_k_m.gguf
for p in "The quick brown fox" "def main():" "Once upon a time"; do
    "$Q" run -m "$F16" -p "$p" -n 128 --temp 0 -t 2 > "$tmp/plain" 2> "$tmp/e0" ||
        fail "run without a draft: $(cat "$tmp/e0")"
    "$Q" run -m "$F16" -p "$p" -n 128 --temp 0 -t 2 -md "$D" > "$tmp/spec" 2> "$tmp/e1" ||
        fail "run with the draft: $(cat "$tmp/e1")"
    cmp -s "$tmp/plain" "$tmp/spec" || fail "smol135 F16 with smol135-q4_k_m, prompt '$p': the
greedy text differs with the draft (are the logits still batch-invariant? tests/runtime)
--- without
$(cat "$tmp/plain")
--- with
$(cat "$tmp/spec")"
    echo "ok: '$p': $(grep '^speculation' "$tmp/e1")"
done

#!/usr/bin/env bash
# Regenerates tests/model/data/smol135-<variant>.{json,case0.logits0.f32}: smol135's F16 source
# quantized by llama.cpp to IQ4_XS, IQ3_S, IQ2_XXS and IQ1_M (these two with
# tests/quantize/synth_imatrix.py's importance matrix), TQ2_0 and --pure MXFP4_MOE
# (mk_smol135_types.py), llama.cpp's canonical run on each (haswell, flash attention off, no
# repack, 32 generated tokens after "Once upon a time"), then llama.cpp's other valid
# configurations, whose spread arch_tolerance.py writes into the JSON as `tolerance`. The JSON
# also records `tensors_sha256`, the digest of llama.cpp's file's tensors, which Quarrel's
# quantization of the same source must reproduce. Needs the peer (../shared/peer/README.md).
#
# usage: tests/model/mk_smol135_type_refs.sh [VARIANT...]  (QR_SHARED_DIR, LLAMAREF_BIN_DIR)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
S=${QR_SHARED_DIR:-/work/shared}
PY=/usr/bin/python3
. "$here/llamaref_tolerance.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(iq4_xs iq3_s iq2_xxs iq1_m tq2_0 mxfp4)
for v in "${variants[@]}"; do
    name=smol135-$v
    model=$tmp/$name.gguf
    digest=$($PY "$here/mk_smol135_types.py" "$v" "$model" "$tmp" --peer "$S/peer" \
        --shared "$S" | tail -n 1)
    reference_with_tolerance "$model" "$here/data/$name" "$tmp" --prompt "Once upon a time" \
        --n-gen 32
    # the model's name rather than its temporary path, and the digest of its tensors
    set_json_keys "$here/data/$name.json" "model=$name.gguf" "tensors_sha256=$digest" \
        "variant=$v"
    rm -f "$model"
    echo "$name: done"
done

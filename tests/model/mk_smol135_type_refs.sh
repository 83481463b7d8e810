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
REF="$PY $S/peer/llamaref.py"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(iq4_xs iq3_s iq2_xxs iq1_m tq2_0 mxfp4)
for v in "${variants[@]}"; do
    name=smol135-$v
    out=$here/data/$name
    model=$tmp/$name.gguf
    digest=$($PY "$here/mk_smol135_types.py" "$v" "$model" "$tmp" --peer "$S/peer" \
        --shared "$S" | tail -n 1)
    common=(--prompt "Once upon a time" --n-gen 32)
    $REF "$model" --out "$out" "${common[@]}" --cpu-backend haswell --flash-attn off \
        --no-repack > /dev/null
    var=$tmp/var
    $REF "$model" --out "$var-defaults" "${common[@]}" --dump-step-logits > /dev/null
    $REF "$model" --out "$var-x64" "${common[@]}" --dump-step-logits \
        --cpu-backend x64 --flash-attn off --no-repack > /dev/null
    $REF "$model" --out "$var-fa" "${common[@]}" --dump-step-logits \
        --cpu-backend haswell --flash-attn on --no-repack > /dev/null
    $REF "$model" --out "$var-incr" "${common[@]}" --dump-step-logits \
        --cpu-backend haswell --flash-attn off --no-repack --incremental-prompt > /dev/null
    $PY "$here/arch_tolerance.py" "$out" "auto-defaults=$var-defaults" "x64-generic=$var-x64" \
        "flash-attn-on=$var-fa" "token-by-token=$var-incr"
    # the model's name rather than its temporary path, and the digest of its tensors
    $PY - "$out.json" "$name" "$digest" "$v" <<'PYEOF'
import json, sys
path, name, digest, variant = sys.argv[1:]
d = json.load(open(path))
d["model"] = name + ".gguf"
d["tensors_sha256"] = digest
d["variant"] = variant
json.dump(d, open(path, "w"), indent=1, ensure_ascii=False)
open(path, "a").write("\n")
PYEOF
    rm -f "$model" "$var"-*
    echo "$name: done"
done

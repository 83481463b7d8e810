#!/usr/bin/env bash
# Regenerates tests/model/data/stories260K-iq4_nl.{json,case0.logits0.f32}: stories260K
# quantized to IQ4_NL by llama.cpp (mk_iq4_nl_model.py; ffn_down, 172 columns, falls back to
# F16 and the output head is Q8_0, as llama-quantize decides), llama.cpp's canonical run on it
# (haswell, flash attention off, no repack, 32 generated tokens after "Once upon a time"),
# then llama.cpp's other valid configurations, whose spread arch_tolerance.py writes into the
# JSON as `tolerance`. Needs the peer (../shared/peer/README.md).
#
# usage: tests/model/mk_iq4_nl_refs.sh     (QR_SHARED_DIR, LLAMAREF_BIN_DIR as llamaref.py)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
S=${QR_SHARED_DIR:-/work/shared}
PY=/usr/bin/python3
REF="$PY $S/peer/llamaref.py"
name=stories260K-iq4_nl
out=$here/data/$name
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=$tmp/$name.gguf
$PY "$here/mk_iq4_nl_model.py" "$model" --source "$S/models/stories260K.gguf" \
    --peer "$S/peer"
common=(--prompt "Once upon a time" --n-gen 32)
$REF "$model" --out "$out" "${common[@]}" --cpu-backend haswell --flash-attn off \
    --no-repack > /dev/null
v=$tmp/var
$REF "$model" --out "$v-defaults" "${common[@]}" --dump-step-logits > /dev/null
$REF "$model" --out "$v-x64" "${common[@]}" --dump-step-logits \
    --cpu-backend x64 --flash-attn off --no-repack > /dev/null
$REF "$model" --out "$v-fa" "${common[@]}" --dump-step-logits \
    --cpu-backend haswell --flash-attn on --no-repack > /dev/null
$REF "$model" --out "$v-repack" "${common[@]}" --dump-step-logits \
    --cpu-backend haswell --flash-attn off > /dev/null
$REF "$model" --out "$v-incr" "${common[@]}" --dump-step-logits \
    --cpu-backend haswell --flash-attn off --no-repack --incremental-prompt > /dev/null
$PY "$here/arch_tolerance.py" "$out" "auto-defaults=$v-defaults" "x64-generic=$v-x64" \
    "flash-attn-on=$v-fa" "repack-on=$v-repack" "token-by-token=$v-incr"
# the model's name rather than its temporary path
$PY - "$out.json" "$name" <<'PYEOF'
import json, sys
path, name = sys.argv[1:]
d = json.load(open(path))
d["model"] = name + ".gguf"
json.dump(d, open(path, "w"), indent=1, ensure_ascii=False)
open(path, "a").write("\n")
PYEOF

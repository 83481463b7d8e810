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
. "$here/llamaref_tolerance.sh"
name=stories260K-iq4_nl
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
model=$tmp/$name.gguf
$PY "$here/mk_iq4_nl_model.py" "$model" --source "$S/models/stories260K.gguf" \
    --peer "$S/peer"
reference_with_tolerance "$model" "$here/data/$name" "$tmp" --prompt "Once upon a time" --n-gen 32
set_json_keys "$here/data/$name.json" "model=$name.gguf"  # not its temporary path

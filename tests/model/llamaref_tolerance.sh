# llamaref_tolerance.sh - sourced by the mk_*_refs.sh scripts: llama.cpp's reference on a model
# and the tolerance its own configurations justify.
#
# reference_with_tolerance MODEL OUT_PREFIX TMPDIR LLAMAREF_ARGS...
#   ../shared/peer/llamaref.py's canonical run (haswell, flash attention off, no repack) into
#   OUT_PREFIX.json and OUT_PREFIX.case<i>.logits0.f32, then llama.cpp's other valid
#   configurations (its automatic defaults, the generic x64 build, flash attention on, weights
#   repacked, the prompt token by token), whose spread arch_tolerance.py writes into the JSON as
#   `tolerance`. Needs PY (Debian's python3) and S (the shared folder).
#   LLAMAREF: the driver (default $S/peer/llamaref.py; tests/lora/llamaref_lora.py adds adapters).
# set_json_keys JSON KEY=VALUE...: set string keys of a reference JSON ("model", ...).
reference_with_tolerance() {
    local model=$1 out=$2 tmp=$3
    shift 3
    local ref=("$PY" "${LLAMAREF:-$S/peer/llamaref.py}" "$model") v=$tmp/var
    "${ref[@]}" --out "$out" "$@" --cpu-backend haswell --flash-attn off --no-repack > /dev/null
    "${ref[@]}" --out "$v-defaults" "$@" --dump-step-logits > /dev/null
    "${ref[@]}" --out "$v-x64" "$@" --dump-step-logits \
        --cpu-backend x64 --flash-attn off --no-repack > /dev/null
    "${ref[@]}" --out "$v-fa" "$@" --dump-step-logits \
        --cpu-backend haswell --flash-attn on --no-repack > /dev/null
    "${ref[@]}" --out "$v-repack" "$@" --dump-step-logits \
        --cpu-backend haswell --flash-attn off > /dev/null
    "${ref[@]}" --out "$v-incr" "$@" --dump-step-logits \
        --cpu-backend haswell --flash-attn off --no-repack --incremental-prompt > /dev/null
    "$PY" "$(dirname "${BASH_SOURCE[0]}")/arch_tolerance.py" "$out" "auto-defaults=$v-defaults" \
        "x64-generic=$v-x64" "flash-attn-on=$v-fa" "repack-on=$v-repack" "token-by-token=$v-incr"
    rm -f "$v"-*
}

set_json_keys() {
    "$PY" - "$@" <<'PYEOF'
import json, sys
path, pairs = sys.argv[1], sys.argv[2:]
d = json.load(open(path))
for p in pairs:
    k, v = p.split("=", 1)
    d[k] = v
json.dump(d, open(path, "w"), indent=1, ensure_ascii=False)
open(path, "a").write("\n")
PYEOF
}

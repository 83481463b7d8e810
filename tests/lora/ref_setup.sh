# ref_setup.sh - sourced by the LoRA reference tests: lora_ref_setup REF.json reads a reference's
# settings (n_gen, n_ctx, n_cases, lora_flags into `flags`), makes its base model (`quarrel synth`
# into $tmp/base.gguf, or ../shared/models/BASE) into `model`, and regenerates its adapters into
# $tmp with tests/lora/mk_lora.py. Needs Q, S, T, PY and tmp set by the caller.
lora_ref_setup() {
    local ref=$1 synth base item
    mapfile -t cfg < <($PY -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["config"]["n_gen"]); print(d["n_ctx"]); print(len(d["cases"]))
print(" ".join(d.get("synth_args", []))); print(d.get("base", ""))
print(" ".join(d["lora_flags"]))
for k, v in d["adapters"].items(): print(k + "=" + " ".join(v))' "$ref")
    n_gen=${cfg[0]} n_ctx=${cfg[1]} n_cases=${cfg[2]} synth=${cfg[3]} base=${cfg[4]} flags=${cfg[5]}
    if [ -n "$synth" ]; then
        # shellcheck disable=SC2086
        "$Q" synth $synth -o "$tmp/base.gguf" 2>"$tmp/err" || { cat "$tmp/err"; exit 1; }
        model=$tmp/base.gguf
    else
        model=$S/models/$base
    fi
    for item in "${cfg[@]:6}"; do
        # shellcheck disable=SC2086
        QR_SHARED_DIR=$S $PY "$T/lora/mk_lora.py" "$model" "$tmp/${item%%=*}.gguf" ${item#*=}
    done
}

#!/usr/bin/python3
"""llama.cpp references under RoPE overrides: ../shared/peer/llamaref.py with the context
parameters that llama.cpp's --rope-* / --yarn-* flags set (common/arg.cpp, same spellings and
meaning as Quarrel's CLI).

Usage:
  llamaref_rope.py [--rope-scaling none|linear|yarn] [--rope-scale N] [--rope-freq-base N]
                   [--rope-freq-scale N] [--yarn-orig-ctx N] [--yarn-ext-factor N]
                   [--yarn-attn-factor N] [--yarn-beta-fast N] [--yarn-beta-slow N]
                   LLAMAREF_ARGS...
LLAMAREF_ARGS go to llamaref.py unchanged (MODEL.gguf --out PREFIX --prompt ... ). The output
is llamaref.py's (PREFIX.json, PREFIX.case<i>.logits0.f32) with config.rope_args added: the
override flags as given, for the test to pass to `quarrel run` as they are.

The peer's folder is $LLAMAREF_PEER_DIR, else ../shared/peer beside this checkout."""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
PEER = os.environ.get("LLAMAREF_PEER_DIR",
                      os.path.join(HERE, "..", "..", "..", "shared", "peer"))
sys.path.insert(0, os.path.abspath(PEER))
import libllama  # noqa: E402
import llamaref  # noqa: E402

# llama.h's enum llama_rope_scaling_type
SCALING = {"none": 0, "linear": 1, "yarn": 2}


FLOAT_FLAGS = ("--rope-freq-base", "--rope-freq-scale", "--yarn-ext-factor", "--yarn-attn-factor",
               "--yarn-beta-fast", "--yarn-beta-slow")


def parse_overrides(argv):
    """The rope flags with llama.cpp's meaning (common/arg.cpp) -> (llama_context_params
    fields, the flags as given, the rest of argv). As there, a later flag wins, and
    --rope-scale N and --rope-freq-scale 1/N set the same field."""
    fields, given, rest = {}, [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a not in FLOAT_FLAGS + ("--rope-scaling", "--rope-scale", "--yarn-orig-ctx"):
            rest.append(a)
            i += 1
            continue
        if i + 1 >= len(argv):
            raise SystemExit("%s needs a value" % a)
        v = argv[i + 1]
        if a == "--rope-scaling":
            if v not in SCALING:
                raise SystemExit("--rope-scaling expects none, linear or yarn, got %r" % v)
            fields["rope_scaling_type"] = SCALING[v]
        elif a == "--rope-scale":
            fields["rope_freq_scale"] = 1.0 / float(v)
        elif a == "--yarn-orig-ctx":
            fields["yarn_orig_ctx"] = int(v)
        else:
            fields[a[2:].replace("-", "_")] = float(v)
        given += [a, v]
        i += 2
    return fields, given, rest


def install(fields):
    """Make every llama_context_params the peer builds start with the overrides: wrap
    llama_context_default_params on the loaded library (libllama.Context starts from it)."""
    real_load = libllama.load

    def load(*a, **kw):
        L = real_load(*a, **kw)
        if not getattr(L, "_rope_overrides", False):
            real_default = L.llama_context_default_params

            def default_params():
                cp = real_default()
                for k, v in fields.items():
                    setattr(cp, k, v)
                return cp

            L.llama_context_default_params = default_params
            L._rope_overrides = True
        return L

    libllama.load = load


def main():
    fields, given, rest = parse_overrides(sys.argv[1:])
    if not fields:
        raise SystemExit("give at least one RoPE override (see --help of this script)")
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--out", required=True)
    out = ap.parse_known_args(rest)[0].out
    install(fields)
    llamaref.main(rest)
    path = out + ".json"
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    d["config"]["rope_args"] = given
    d["config"]["rope_context_params"] = fields
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("rope overrides: %s" % " ".join(given))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0)
    main()

#!/usr/bin/env python3
"""Measure llama.cpp's own spread on a reference and write `tolerance` into its JSON.

usage: /usr/bin/python3 arch_tolerance.py CANON_PREFIX NAME=VARIANT_PREFIX...

CANON_PREFIX.json is llamaref.py's canonical run (haswell, flash attention off, no repack,
whole-prompt batch); each VARIANT_PREFIX is the same model and prompts under another valid
llama.cpp configuration, run with --dump-step-logits. For every position of prompt_top and
steps, and each of the canonical top-10 ids there, |variant logit - canonical logit|:
  - steps: from the variant's full step logits (VARIANT.case<i>.steps.f32), compared while the
    two runs have fed the same tokens (a variant may take the other side of a near-tie; after
    that the inputs differ and positions no longer correspond);
  - prompt positions: from the variant's own top-10; an id outside it counts as
    canonical - (the variant's 10th logit), a lower bound of its difference;
  - logits0 (last prompt position): every one of the n_vocab logits, since the reference test
    checks all of them.
abs_logit = 2 * the largest difference over all variants, at least FLOOR (0.01) so rounding
noise below it never fails a test.
"""
import sys
sys.dont_write_bytecode = True
import json  # noqa: E402
import math  # noqa: E402

import numpy as np  # noqa: E402

FLOOR = 0.01


def spread(canon_prefix, var_prefix):
    c = json.load(open(canon_prefix + ".json"))
    v = json.load(open(var_prefix + ".json"))
    n_vocab = c["config"]["vocab"]["n_vocab"]
    worst = 0.0
    compared_steps = 0
    for ci, (cc, vc) in enumerate(zip(c["cases"], v["cases"])):
        assert cc["prompt_tokens"] == vc["prompt_tokens"], "prompt tokens differ"
        for cp, vp in zip(cc["prompt_top"], vc["prompt_top"]):
            vd = dict((i, x) for i, x in vp["top"])
            v10 = vp["top"][-1][1]
            for i, x in cp["top"]:
                d = abs(vd[i] - x) if i in vd else max(0.0, x - v10)
                worst = max(worst, d)
        steps = np.fromfile("%s.case%d.steps.f32" % (var_prefix, ci), dtype="<f4")
        steps = steps.reshape(-1, n_vocab)
        for k, (cs, vs) in enumerate(zip(cc["steps"], vc["steps"])):
            if cs["input_id"] != vs["input_id"] or cs["pos"] != vs["pos"]:
                break
            compared_steps += 1
            for i, x in cs["top"]:
                worst = max(worst, abs(float(steps[k, i]) - x))
        l0c = np.fromfile("%s.case%d.logits0.f32" % (canon_prefix, ci), dtype="<f4")
        l0v = np.fromfile("%s.case%d.logits0.f32" % (var_prefix, ci), dtype="<f4")
        worst = max(worst, float(np.max(np.abs(l0c.astype(np.float64) - l0v))))
    return worst, compared_steps


def main():
    canon = sys.argv[1]
    res = {}
    steps = {}
    for arg in sys.argv[2:]:
        name, prefix = arg.split("=", 1)
        res[name], steps[name] = spread(canon, prefix)
    m = max(res.values()) if res else 0.0
    tol = max(2.0 * m, FLOOR)
    d = json.load(open(canon + ".json"))
    d["tolerance"] = {
        "abs_logit": math.ceil(tol * 1e4) / 1e4,
        "llama_cpp_spread": res,
        "steps_compared": steps,
        "rule": "twice the largest logit difference between the canonical run and llama.cpp's "
                "other configurations, over each position's top-10 ids (prompt_top and steps, "
                "steps compared until a configuration takes the other side of a near-tie) and "
                "all of logits0; at least %g (the floor applies when the configurations agree "
                "to within %g)" % (FLOOR, FLOOR / 2),
    }
    with open(canon + ".json", "w") as f:
        json.dump(d, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print("%s: spread %s -> abs_logit %s" % (canon, {k: round(x, 5) for k, x in res.items()},
                                           d["tolerance"]["abs_logit"]))


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""`quarrel run --json` output against a llama.cpp reference (llamaref.py's JSON format).

usage: compare_run_json.py RUN.jsonl REF.json CASE TOLERANCE_JSON NAME

Each generated step's top-10 logits must be within TOLERANCE_JSON's tolerance.abs_logit of the
reference's for the reference's top-10 ids while the generated ids still agree, and the ids
must equal the reference's greedy ids up to its first near-tie (top-2 gap within the
tolerance). Exit status 1 on a difference. Standard library only (Debian's python3).
"""
import json, sys
got = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
ref = json.load(open(sys.argv[2]))["cases"][int(sys.argv[3])]
tol = json.load(open(sys.argv[4]))["tolerance"]["abs_logit"]
name = sys.argv[5]
steps, ids = ref["steps"], ref["greedy_ids"]
# the greedy ids must agree before the reference's first near-tie; after it either is right
free = next((k for k, s in enumerate(steps[:len(ids)]) if s["gap12"] <= tol), len(ids))
errors, worst, compared = [], 0.0, 0
for k, o in enumerate(got):
    if k >= len(ids):
        errors.append("step %d: llama.cpp stopped after %d tokens" % (k, len(ids)))
        break
    # step k's logits are llama.cpp's only while the tokens before it are the same
    if any(g["id"] != r for g, r in zip(got[:k], ids[:k])):
        break
    q, r = dict((t, l) for t, l in o["top"]), dict((t, l) for t, l in steps[k]["top"])
    q10, r10 = min(q.values()), min(r.values())
    for t, l in r.items():
        if t in q:
            worst = max(worst, abs(q[t] - l))
            if abs(q[t] - l) > tol:
                errors.append("step %d: token %d logit %.4f, llama.cpp %.4f" % (k, t, q[t], l))
        elif l > q10 + tol:  # below quarrel's 10th, so at least l - q10 away
            errors.append("step %d: llama.cpp's top-10 token %d (%.4f) not in quarrel's top 10"
                          " (10th %.4f)" % (k, t, l, q10))
    for t, l in q.items():
        if t not in r and l > r10 + tol:
            errors.append("step %d: quarrel's top-10 token %d (%.4f) not in llama.cpp's top 10"
                          " (10th %.4f)" % (k, t, l, r10))
    if k < free and o["id"] != ids[k]:
        errors.append("step %d: generated %d, llama.cpp %d (gap %.4f)"
                      % (k, o["id"], ids[k], steps[k]["gap12"]))
    compared += 1
if len(got) < min(free + 1, len(ids)):
    errors.append("only %d tokens generated, llama.cpp %d" % (len(got), len(ids)))
print("# %s: %d steps compared, ids checked through step %d, largest top-10 difference %.4f"
      " (tolerance %.4f)" % (name, compared, min(free, len(got)) - 1, worst, tol))
for e in errors[:10]:
    print("  " + e)
sys.exit(1 if errors else 0)

#!/usr/bin/env bash
# A/B: two quarrel builds on the same models, interleaved rounds (order alternating), medians
# of each build's mean tok/s per test. Used to check that a change does not slow what exists.
# usage: bench/arch/ab.sh OLD_QUARREL NEW_QUARREL ROUNDS MODEL... (env: T=1,2 P=128 N=64 R=3)
set -euo pipefail
old=$1 new=$2 rounds=$3; shift 3
T=${T:-1,2} P=${P:-128} N=${N:-64} R=${R:-3}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
for m in "$@"; do
    for ((r = 0; r < rounds; r++)); do
        if ((r % 2)); then order="new old"; else order="old new"; fi
        for w in $order; do
            bin=$old; [ "$w" = new ] && bin=$new
            "$bin" bench -m "$m" -p "$P" -n "$N" -t "$T" -r "$R" --bw 30 -o json 2>/dev/null \
                > "$tmp/$(basename "$m").$w.$r.json"
        done
    done
done
/usr/bin/python3 - "$tmp" <<'PY'
import glob, json, os, statistics, sys
res = {}
for f in glob.glob(os.path.join(sys.argv[1], "*.json")):
    model, who, _, _ = os.path.basename(f).rsplit(".", 3)
    for r in json.load(open(f))["results"]:
        res.setdefault((model, r["threads"], r["test"]), {}).setdefault(who, []).append(r["avg_ts"])
print("| model | threads | test | old tok/s | new tok/s | new / old | rounds (min..max new/old) |")
print("|---|---:|---|---:|---:|---:|---|")
for (model, t, test), v in sorted(res.items()):
    o, n = statistics.median(v["old"]), statistics.median(v["new"])
    ratios = [b / a for a, b in zip(v["old"], v["new"])]
    print("| %s | %d | %s | %.1f | %.1f | %.3f | %.3f..%.3f |" % (model, t, test, o, n, n / o, min(ratios), max(ratios)))
PY

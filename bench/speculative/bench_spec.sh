#!/usr/bin/env bash
# Speculative decoding's speed: `quarrel run` greedy with and without speculation, interleaved
# (plain, spec, plain, spec, ...) so a change of machine load hits both alike; per prompt the
# median of each side's "generation: N tokens, X tok/s" (tokens printed over wall time, drafting
# included), the speed-up and the speculation counts of the last round.
#
# usage: bench_spec.sh QUARREL TARGET ROUNDS N_GEN THREADS PROMPTS_FILE -- SPEC_FLAGS...
#   PROMPTS_FILE: one prompt per line ("\n" in a line stands for a newline)
set -euo pipefail
Q=$1 T=$2 R=$3 N=$4 TH=$5 P=$6
shift 6
[ "${1:-}" = "--" ] && shift
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
tps() { sed -n 's/.*generation: [0-9]* tokens, \([0-9.]*\) tok\/s.*/\1/p' "$1"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
echo "| prompt | without (tok/s) | with (tok/s) | speed-up | drafted | accepted | acceptance | tokens per target pass |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
while IFS= read -r line; do
    [ -z "$line" ] && continue
    prompt=$(printf '%b' "$line")
    : > "$tmp/a"; : > "$tmp/b"
    for r in $(seq "$R"); do
        "$Q" run -m "$T" -p "$prompt" -n "$N" --temp 0 -t "$TH" > /dev/null 2> "$tmp/e0"
        tps "$tmp/e0" >> "$tmp/a"
        "$Q" run -m "$T" -p "$prompt" -n "$N" --temp 0 -t "$TH" "$@" > /dev/null 2> "$tmp/e1"
        tps "$tmp/e1" >> "$tmp/b"
    done
    a=$(median < "$tmp/a"); b=$(median < "$tmp/b")
    read -r dr ac pa tpp < <(sed -n 's/^speculation: \([0-9]*\) drafted, \([0-9]*\) accepted .* \([0-9]*\) target passes, \([0-9.]*\) tokens per pass/\1 \2 \3 \4/p' "$tmp/e1")
    # the prompt through the environment: awk -v would expand its backslashes
    SHORT=$(printf '%s' "$line" | cut -c1-40) awk -v a="$a" -v b="$b" -v dr="$dr" -v ac="$ac" \
        -v tpp="$tpp" 'BEGIN {
        printf "| %s | %.1f | %.1f | %.2fx | %d | %d | %.2f | %.2f |\n", ENVIRON["SHORT"], a, b,
            b / a, dr, ac, dr ? ac / dr : 0, tpp }'
done < "$P"

#!/usr/bin/env bash
# Perplexity throughput, Quarrel beside llama.cpp (the peer's llamaref_ppl.py, which drives
# libllama with llama-perplexity's method), same model, text, ctx, batch and threads,
# interleaved rounds, median. Tokens/s = chunks x ctx / wall seconds of the whole process
# (load, tokenize, evaluate, score) for both, so neither side's start-up is hidden.
# usage: bench/eval/bench_ppl.sh QUARREL MODEL.gguf CTX CHUNKS THREADS [ROUNDS]
set -euo pipefail
Q=$1 M=$2 C=$3 N=$4 T=$5 R=${6:-3}
S=${QR_SHARED_DIR:-/work/shared}
TEXT=$S/reference/text/gpl-3.txt
now() { date +%s.%N; }
q=() p=()
for r in $(seq "$R"); do
    t0=$(now); "$Q" perplexity -m "$M" -f "$TEXT" -c "$C" -b 512 --chunks "$N" -t "$T" > /tmp/bench_ppl_q.$$ 2>/dev/null; t1=$(now)
    q+=("$(echo "$t1 - $t0" | bc -l)")
    t0=$(now); /usr/bin/python3 "$S/peer/llamaref_ppl.py" "$M" "$TEXT" --ctx "$C" --chunks "$N" --batch 512 \
        --threads "$T" --out /tmp/bench_ppl_p.$$.json > /tmp/bench_ppl_p.$$ 2>&1; t1=$(now)
    p+=("$(echo "$t1 - $t0" | bc -l)")
done
med() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
mq=$(med "${q[@]}") mp=$(med "${p[@]}")
tok=$((C * N))
printf '%s ctx %d x %d chunks, %d threads: quarrel %.1f tok/s (%.2f s), llama.cpp %.1f tok/s (%.2f s), ratio %.2f\n' \
    "$(basename "$M")" "$C" "$N" "$T" "$(echo "$tok / $mq" | bc -l)" "$mq" "$(echo "$tok / $mp" | bc -l)" "$mp" \
    "$(echo "$mp / $mq" | bc -l)"
echo "  quarrel:   $(cat /tmp/bench_ppl_q.$$)"
echo "  llama.cpp: $(grep 'Final estimate' /tmp/bench_ppl_p.$$)"
rm -f /tmp/bench_ppl_q.$$ /tmp/bench_ppl_p.$$ /tmp/bench_ppl_p.$$.json

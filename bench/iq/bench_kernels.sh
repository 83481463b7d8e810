#!/bin/sh
# bench_kernels.sh - bench_gemm (bench/kernels/bench_gemm.c) for the 12 IQ / ternary / mxfp4
# weight types: 1536 x 576 weights (smol135's ffn_down), 1, 8 and 64 tokens, the avx512 and
# avx2 sets, and the scalar reference at 1 token; REPS interleaved repetitions of each (each
# itself the best of 15 passes), all printed, the table built from the best.
# usage: bench/iq/bench_kernels.sh [BUILD_DIR=build] [REPS=2]   (from the repository root)
set -e
B=${1:-build}
REPS=${2:-2}
BIN=/tmp/bench_gemm_iq.$$
cc -std=c11 -O2 -D_GNU_SOURCE -Iinclude -Isrc bench/kernels/bench_gemm.c "$B/libqr_kernels.a" \
    "$B/libqr_tensor.a" "$B/libqr_util.a" -lm -lpthread -o "$BIN"
TYPES="iq4_nl iq4_xs iq3_s iq3_xxs iq2_xxs iq2_xs iq2_s iq1_s iq1_m tq2_0 tq1_0 mxfp4"
echo "| type | tokens | avx512 | avx2 | scalar |"
echo "|---|---:|---:|---:|---:|"
for t in $TYPES; do
    for nt in 1 8 64; do
        mb=256
        [ "$nt" -gt 1 ] && mb=8
        a=""; b=""; s=""
        for r in $(seq "$REPS"); do
            a="$a $(QR_KERNELS=avx512 "$BIN" $t 1536 576 $nt $mb | tee -a /tmp/bench_kernels_raw.txt)"
            b="$b $(QR_KERNELS=avx2 "$BIN" $t 1536 576 $nt $mb | tee -a /tmp/bench_kernels_raw.txt)"
            if [ "$nt" -eq 1 ]; then
                s="$s $(QR_KERNELS=scalar "$BIN" $t 1536 576 1 8 | tee -a /tmp/bench_kernels_raw.txt)"
            fi
        done
        # the best GB/s (1 token) or GMAC/s (more) of the repetitions
        best() { echo "$1" | grep -o "[0-9.]* $2" | sort -n | tail -1; }
        unit="GB/s"; [ "$nt" -gt 1 ] && unit="GMAC/s"
        sc="-"; [ "$nt" -eq 1 ] && sc="$(best "$s" GMAC/s)"
        echo "| $t | $nt | $(best "$a" "$unit") | $(best "$b" "$unit") | $sc |"
    done
done
rm -f "$BIN"

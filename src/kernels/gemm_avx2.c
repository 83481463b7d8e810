/* gemm_avx2.c - the x86 kernels (gemm_x86.h) for AVX2 + FMA + F16C. */
#define QR_X86_FILL qr_kernels_fill_avx2
#define QR_X86_NAME "avx2"
#include "kernels/gemm_x86.h"

/* gemm_avx512.c - the x86 kernels (gemm_x86.h) with AVX512-VNNI on 256-bit vectors: integer
 * dot products become single vpdpbusd / vpdpwssd instructions. */
#define QR_X86_FILL qr_kernels_fill_avx512
#define QR_X86_NAME "avx512"
#include "kernels/gemm_x86.h"

/* Test builds only (setup.py: HBNN_SIMDE_AVX512=1; `make test-avx512-emulated`): the AVX-512 backend
 * of kernels_avx512.h, integer-scale kernels included, compiled against SIMDe's portable intrinsics
 * (simde_x86.h) with no target attribute, so this file holds no AVX-512 instruction and its backend
 * runs on any x86-64 CPU. xhbnn.c then offers it as "avx512" whatever the CPU, and the kernel tests,
 * which run every available backend against the NumPy reference, check it on a machine without
 * AVX-512. Correct results, not speed: emulated timings mean nothing. */
#define HBNN_SIMDE_X86 1

#include "xhbnn.h"
#include "kernels_portable.h"
#include "kernels_avx2.h"
#include "kernels_avx512.h"

const hbnn_backend hbnn_avx512_simde_backend = {"avx512", HBNN_AVX512_FUNCTIONS};

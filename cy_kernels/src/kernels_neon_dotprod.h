/* Integer-scale int8 GEMM with the Armv8.2 dot product (FEAT_DotProd: SDOT), aarch64 only.
 *
 * Cores with it: Cortex-A76 (Pi 5), A78AE (Jetson Orin), Neoverse-N1 and later; not A53 / A72
 * (Pi 3 / Pi 4). The library is built for plain armv8-a, so these functions alone are compiled for
 * armv8.2-a+dotprod (a target attribute) and run only when the kernel reports the extension
 * (getauxval(AT_HWCAP) & HWCAP_ASIMDDP, see xhbnn.c); everything else keeps running the SMULL /
 * SMLAL / SADALP kernel of kernels_neon.h.
 *
 * One SDOT adds four products of signed bytes into each int32 lane: 16 products per instruction,
 * against three instructions for the same 16 with SMULL + SMLAL + SADALP. Exact: the operands are
 * the same bytes (|level * sign| <= 127) and every partial sum is a sum over a subset of the row,
 * inside the int32 bound of docs/DESIGN.md section 9.
 * Tile: 4 patches x 4 filters, 16 accumulators, 8 loads and 16 SDOT per 16 bytes of K; the four
 * lanes of each accumulator are folded once per output (ADDP), outside the K loop. */
#ifndef XHBNN_KERNELS_NEON_DOTPROD_H
#define XHBNN_KERNELS_NEON_DOTPROD_H

#if defined(__aarch64__)
#include <arm_neon.h>
#include "xhbnn.h"

#define HBNN_DOTPROD_FN static __attribute__((target("arch=armv8.2-a+dotprod")))
#define HBNN_DOTPROD_INLINE static inline __attribute__((always_inline, target("arch=armv8.2-a+dotprod")))
#define HBNN_DOT_MR 4
#define HBNN_DOT_NR 4

HBNN_DOTPROD_INLINE void hbnn_dot_int8_tile(const hbnn_int8_args *g, const int MR, const int NR, int64_t i, int64_t j)
{
    int32x4_t acc[HBNN_DOT_MR][HBNN_DOT_NR];
    const int8_t *a[HBNN_DOT_MR], *w[HBNN_DOT_NR];
    for (int r = 0; r < MR; r++) {
        a[r] = g->a + (i + r) * g->kpad;
        for (int c = 0; c < NR; c++) acc[r][c] = vdupq_n_s32(0);
    }
    for (int c = 0; c < NR; c++) w[c] = g->w + (j + c) * g->kpad;
    for (int64_t k = 0; k < g->kpad; k += 16) {
        int8x16_t va[HBNN_DOT_MR], vw[HBNN_DOT_NR];
        for (int r = 0; r < MR; r++) va[r] = vld1q_s8(a[r] + k);
        for (int c = 0; c < NR; c++) vw[c] = vld1q_s8(w[c] + k);
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++) acc[r][c] = vdotq_s32(acc[r][c], va[r], vw[c]);
    }
    for (int r = 0; r < MR; r++) {
        if (NR == 4) {
            hbnn_neon_int_store4(&g->ep, g->col_scale, j, g->out + (i + r) * g->ldo + j, acc[r][0], acc[r][1],
                                 acc[r][2], acc[r][3]);
            continue;
        }
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_int_output(&g->ep, g->col_scale, j + c,
                                                               vaddvq_s32(acc[r][c]));
    }
}

#define HBNN_DOT_ROWS(NRc)                                                                   \
    do {                                                                                     \
        int64_t i = i0;                                                                      \
        for (; i + 3 < i1; i += 4) hbnn_dot_int8_tile(g, 4, NRc, i, j);                      \
        switch (i1 - i) {                                                                    \
        case 3: hbnn_dot_int8_tile(g, 3, NRc, i, j); break;                                  \
        case 2: hbnn_dot_int8_tile(g, 2, NRc, i, j); break;                                  \
        case 1: hbnn_dot_int8_tile(g, 1, NRc, i, j); break;                                  \
        default: break;                                                                      \
        }                                                                                    \
    } while (0)

HBNN_DOTPROD_FN void hbnn_int8_gemm_neon_dotprod(const hbnn_int8_args *g, int64_t i0, int64_t i1, int64_t j0,
                                                 int64_t j1)
{
    for (int64_t j = j0; j < j1; j += HBNN_DOT_NR) {
        switch (j1 - j < HBNN_DOT_NR ? j1 - j : HBNN_DOT_NR) {
        case 4: HBNN_DOT_ROWS(4); break;
        case 3: HBNN_DOT_ROWS(3); break;
        case 2: HBNN_DOT_ROWS(2); break;
        default: HBNN_DOT_ROWS(1); break;
        }
    }
}

#undef HBNN_DOT_ROWS
#define HBNN_HAVE_NEON_DOTPROD 1
#endif /* __aarch64__ */

#endif

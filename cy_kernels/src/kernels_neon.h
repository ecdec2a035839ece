/* NEON backend for aarch64 (Raspberry Pi OS 64-bit, Jetson) and armv7 with NEON (Raspberry Pi 2/3/4 on
 * a 32-bit OS, built with -mfpu=neon-vfpv4). NEON is baseline on both build targets, so there is no
 * run-time check: xhbnn.c selects this backend whenever the compiler defines __ARM_NEON.
 * Included once, by xhbnn.c, after kernels_portable.h (which handles block widths below 8 bits and
 * segment layouts the vector loops do not cover). Same results as the AVX2 backend up to float
 * summation order; packed bits and scales are exact. */
#ifndef XHBNN_KERNELS_NEON_H
#define XHBNN_KERNELS_NEON_H

#if !defined(__ARM_NEON) && !defined(__ARM_NEON__)
#error "kernels_neon.h needs NEON (aarch64, or armv7 with -mfpu=neon*)"
#endif

#include <arm_neon.h>
#include "xhbnn.h"

#define HBNN_NEON_INLINE static inline __attribute__((always_inline))

/* acc + a * b: fused where the FPU has it (aarch64, VFPv4); the summation order differs from the
 * reference's float64 anyway, and the tests bound the error by the terms' magnitude. */
HBNN_NEON_INLINE float32x4_t hbnn_neon_fma(float32x4_t acc, float32x4_t a, float32x4_t b)
{
#if defined(__aarch64__) || defined(__ARM_FEATURE_FMA)
    return vfmaq_f32(acc, a, b);
#else
    return vmlaq_f32(acc, a, b);
#endif
}

/* The across-vector adds (vaddvq_*) exist on aarch64 only; armv7 folds with pairwise adds. */
HBNN_NEON_INLINE float hbnn_neon_hsum(float32x4_t v)
{
#if defined(__aarch64__)
    return vaddvq_f32(v);
#else
    float32x2_t s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    return vget_lane_f32(vpadd_f32(s, s), 0);
#endif
}

HBNN_NEON_INLINE uint8_t hbnn_neon_hsum_u8(uint8x8_t v)
{
#if defined(__aarch64__)
    return vaddv_u8(v);
#else
    v = vpadd_u8(v, v);
    v = vpadd_u8(v, v);
    v = vpadd_u8(v, v);
    return vget_lane_u8(v, 0);
#endif
}

/* ---- xor GEMM: XOR + popcount over packed rows ------------------------------------------------- */

/* acc += (sa * sb) * (len - 2 * pop), 4 blocks at a time (pop is exact in float: <= 64). */
HBNN_NEON_INLINE float32x4_t hbnn_neon_accum(float32x4_t acc, uint32x4_t pop, const float *len, const float *sa,
                                             const float *sb)
{
    const float32x4_t p = vcvtq_f32_u32(pop);
    const float32x4_t d = vsubq_f32(vld1q_f32(len), vaddq_f32(p, p));
    return hbnn_neon_fma(acc, vmulq_f32(vld1q_f32(sa), vld1q_f32(sb)), d);
}

/* Byte counts of one 128-bit half (2 words) summed per L-bit block (L in {8, 16, 32}: 128 / L blocks);
 * the pointers are at the half's first block. */
HBNN_NEON_INLINE float32x4_t hbnn_neon_half(float32x4_t acc, const int L, uint8x16_t cnt8, const float *len,
                                            const float *sa, const float *sb)
{
    if (L == 32) {
        const uint32x4_t c32 = vpaddlq_u16(vpaddlq_u8(cnt8));
        return hbnn_neon_accum(acc, c32, len, sa, sb);
    }
    if (L == 16) {
        const uint16x8_t c16 = vpaddlq_u8(cnt8);
        acc = hbnn_neon_accum(acc, vmovl_u16(vget_low_u16(c16)), len, sa, sb);
        return hbnn_neon_accum(acc, vmovl_u16(vget_high_u16(c16)), len + 4, sa + 4, sb + 4);
    }
    /* L == 8: 16 byte counts */
    const uint16x8_t lo = vmovl_u8(vget_low_u8(cnt8)), hi = vmovl_u8(vget_high_u8(cnt8));
    acc = hbnn_neon_accum(acc, vmovl_u16(vget_low_u16(lo)), len, sa, sb);
    acc = hbnn_neon_accum(acc, vmovl_u16(vget_high_u16(lo)), len + 4, sa + 4, sb + 4);
    acc = hbnn_neon_accum(acc, vmovl_u16(vget_low_u16(hi)), len + 8, sa + 8, sb + 8);
    return hbnn_neon_accum(acc, vmovl_u16(vget_high_u16(hi)), len + 12, sa + 12, sb + 12);
}

/* One 256-bit chunk (4 words) of one (a, b) row pair, L in {8, 16, 32, 64}; pointers at its first block. */
HBNN_NEON_INLINE float32x4_t hbnn_neon_chunk(float32x4_t acc, const int L, uint64x2_t x0, uint64x2_t x1,
                                             const float *len, const float *sa, const float *sb)
{
    const uint8x16_t c0 = vcntq_u8(vreinterpretq_u8_u64(x0));
    const uint8x16_t c1 = vcntq_u8(vreinterpretq_u8_u64(x1));
    if (L == 64) {
        /* per-word counts, narrowed from 64-bit lanes into one vector of 4 blocks */
        const uint64x2_t p0 = vpaddlq_u32(vpaddlq_u16(vpaddlq_u8(c0)));
        const uint64x2_t p1 = vpaddlq_u32(vpaddlq_u16(vpaddlq_u8(c1)));
        return hbnn_neon_accum(acc, vcombine_u32(vmovn_u64(p0), vmovn_u64(p1)), len, sa, sb);
    }
    const int half = 128 / L;  /* blocks per 128 bits */
    acc = hbnn_neon_half(acc, L, c0, len, sa, sb);
    return hbnn_neon_half(acc, L, c1, len + half, sa + half, sb + half);
}

/* Register tile of MR rows of A x NR rows of B (MR, NR <= 2), all K. kwords is a multiple of 4. */
HBNN_NEON_INLINE void hbnn_neon_xor_tile(const hbnn_xor_args *g, const int L, const int MR, const int NR,
                                         int64_t i, int64_t j)
{
    const int bpc = 256 / L;  /* blocks per 256-bit chunk */
    const float32x4_t zero = vdupq_n_f32(0.0f);
    float32x4_t acc[2][2] = {{zero, zero}, {zero, zero}};
    const uint64_t *a[2] = {NULL, NULL}, *b[2] = {NULL, NULL};
    const float *as[2] = {NULL, NULL}, *bs[2] = {NULL, NULL};
    for (int r = 0; r < MR; r++) {
        a[r] = g->a + (i + r) * g->kwords;
        as[r] = g->as + (i + r) * g->nblk;
    }
    for (int c = 0; c < NR; c++) {
        b[c] = g->b + (j + c) * g->kwords;
        bs[c] = g->bs + (j + c) * g->nblk;
    }
    const int64_t chunks = g->kwords / 4;
    for (int64_t k = 0; k < chunks; k++) {
        uint64x2_t va[2][2], vb[2][2];
        for (int r = 0; r < MR; r++) {
            va[r][0] = vld1q_u64(a[r] + 4 * k);
            va[r][1] = vld1q_u64(a[r] + 4 * k + 2);
        }
        for (int c = 0; c < NR; c++) {
            vb[c][0] = vld1q_u64(b[c] + 4 * k);
            vb[c][1] = vld1q_u64(b[c] + 4 * k + 2);
        }
        const int64_t blk = k * bpc;
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++)
                acc[r][c] = hbnn_neon_chunk(acc[r][c], L, veorq_u64(va[r][0], vb[c][0]),
                                            veorq_u64(va[r][1], vb[c][1]), g->len + blk, as[r] + blk, bs[c] + blk);
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, hbnn_neon_hsum(acc[r][c]));
}

#define HBNN_NEON_XOR_LOOP(Lc)                                                               \
    for (int64_t j = j0; j < j1; j += 2) {                                                   \
        const int nr = j + 1 < j1 ? 2 : 1;                                                   \
        int64_t i = i0;                                                                      \
        if (nr == 2) {                                                                       \
            for (; i + 1 < i1; i += 2) hbnn_neon_xor_tile(g, Lc, 2, 2, i, j);                \
            if (i < i1) hbnn_neon_xor_tile(g, Lc, 1, 2, i, j);                               \
        } else {                                                                             \
            for (; i + 1 < i1; i += 2) hbnn_neon_xor_tile(g, Lc, 2, 1, i, j);                \
            if (i < i1) hbnn_neon_xor_tile(g, Lc, 1, 1, i, j);                               \
        }                                                                                    \
    }

static void hbnn_xor_gemm_neon(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    if (g->kwords % 4 != 0) {  /* the interface pads rows to HBNN_ROW_WORDS; stay safe if it ever changes */
        hbnn_xor_gemm_portable(g, i0, i1, j0, j1);
        return;
    }
    switch (g->L) {
    case 64: HBNN_NEON_XOR_LOOP(64) break;
    case 32: HBNN_NEON_XOR_LOOP(32) break;
    case 16: HBNN_NEON_XOR_LOOP(16) break;
    case 8: HBNN_NEON_XOR_LOOP(8) break;
    default: hbnn_xor_gemm_portable(g, i0, i1, j0, j1); break;  /* blocks below a byte */
    }
}

/* ---- sign GEMM: float rows against packed +-1 rows -------------------------------------------- */
/* Lanes run over filters, as in the AVX2 backend: for each element k, one float of the activation row is
 * broadcast, its sign bit flipped (XOR) where a filter's bit is 1, and added to 16 filters' segment sums
 * (4 vectors); one multiply-add per segment applies the 16 segment scales. The panel (scratch) holds the
 * sign masks transposed to [k][16] and the scales to [segment][16] (zero for filters past the end). Any
 * segment length works, so there is no separate path for short segments. */

#define HBNN_NEON_NF 16
/* Rows per register tile: 2 x 4 running sums + 2 x 4 accumulators fit aarch64's 32 vector registers;
 * armv7 has 16, so one row at a time there. */
#if defined(__aarch64__)
#define HBNN_NEON_SIGN_MR 2
#else
#define HBNN_NEON_SIGN_MR 1
#endif

static void hbnn_neon_sign_panel(const hbnn_sign_args *g, int64_t j, int64_t nf, float *panel)
{
    float *sc = panel + g->k * HBNN_NEON_NF;
    const uint32x4_t signbit = vdupq_n_u32(0x80000000u);
    for (int64_t w = 0; w < g->nwords; w++) {
        /* word w of the 16 filters, split in 32-bit halves, one filter per lane */
        uint32_t half[2][HBNN_NEON_NF];
        for (int64_t f = 0; f < HBNN_NEON_NF; f++) {
            const uint64_t word = f < nf ? g->bits[(j + f) * g->nwords + w] : 0;
            half[0][f] = (uint32_t)word;
            half[1][f] = (uint32_t)(word >> 32);
        }
        for (int h = 0; h < 2; h++) {
            uint32x4_t v[4];
            for (int q = 0; q < 4; q++) v[q] = vld1q_u32(half[h] + 4 * q);
            for (int b = 0; b < 32; b++) {
                const int64_t k = w * 64 + h * 32 + b;
                if (k >= g->k) break;
                /* bit b moved to the sign position of each lane */
                const int32x4_t cnt = vdupq_n_s32(31 - b);
                for (int q = 0; q < 4; q++)
                    vst1q_u32((uint32_t *)(panel + k * HBNN_NEON_NF + 4 * q), vandq_u32(vshlq_u32(v[q], cnt), signbit));
            }
        }
    }
    for (int64_t s = 0; s < g->nseg; s++)
        for (int64_t f = 0; f < HBNN_NEON_NF; f++)
            sc[s * HBNN_NEON_NF + f] = f < nf ? g->scales[(j + f) * g->nseg + s] : 0.0f;
}

/* Store MR rows x 16 lane accumulators through the epilogue (nf real filters). */
HBNN_NEON_INLINE void hbnn_neon_store_rows(const hbnn_epilogue *ep, float *out0, int64_t ldo, const int MR,
                                           float32x4_t acc[][4], int64_t j, int64_t nf)
{
    for (int r = 0; r < MR; r++) {
        float tmp[HBNN_NEON_NF];
        for (int q = 0; q < 4; q++) vst1q_f32(tmp + 4 * q, acc[r][q]);
        float *out = out0 + r * ldo;
        for (int64_t c = 0; c < nf; c++) out[c] = hbnn_apply_epilogue(ep, j + c, tmp[c]);
    }
}

/* MR rows x 16 filters, one segment at a time. */
HBNN_NEON_INLINE void hbnn_neon_sign_rows(const hbnn_sign_args *g, const float *panel, const int MR, int64_t i,
                                          int64_t j, int64_t nf)
{
    const uint32_t *masks = (const uint32_t *)panel;
    const float *sc = panel + g->k * HBNN_NEON_NF;
    const float *f[HBNN_NEON_SIGN_MR];
    float32x4_t acc[HBNN_NEON_SIGN_MR][4];
    for (int r = 0; r < MR; r++) {
        f[r] = g->f + (i + r) * g->kpad;
        for (int q = 0; q < 4; q++) acc[r][q] = vdupq_n_f32(0.0f);
    }
    for (int64_t s = 0; s < g->nseg; s++) {
        const int64_t k0 = s * g->seg, k1 = k0 + g->seg < g->k ? k0 + g->seg : g->k;
        float32x4_t sacc[HBNN_NEON_SIGN_MR][4];
        for (int r = 0; r < MR; r++) {
            const uint32x4_t v = vreinterpretq_u32_f32(vdupq_n_f32(f[r][k0]));
            for (int q = 0; q < 4; q++)
                sacc[r][q] = vreinterpretq_f32_u32(veorq_u32(v, vld1q_u32(masks + k0 * HBNN_NEON_NF + 4 * q)));
        }
        for (int64_t k = k0 + 1; k < k1; k++) {
            /* flipping the sign bit is the subtract: adds only inside a segment */
            uint32x4_t m[4];
            for (int q = 0; q < 4; q++) m[q] = vld1q_u32(masks + k * HBNN_NEON_NF + 4 * q);
            for (int r = 0; r < MR; r++) {
                const uint32x4_t v = vreinterpretq_u32_f32(vdupq_n_f32(f[r][k]));
                for (int q = 0; q < 4; q++)
                    sacc[r][q] = vaddq_f32(sacc[r][q], vreinterpretq_f32_u32(veorq_u32(v, m[q])));
            }
        }
        for (int q = 0; q < 4; q++) {
            const float32x4_t scale = vld1q_f32(sc + s * HBNN_NEON_NF + 4 * q);
            for (int r = 0; r < MR; r++) acc[r][q] = hbnn_neon_fma(acc[r][q], scale, sacc[r][q]);
        }
    }
    hbnn_neon_store_rows(&g->ep, g->out + i * g->ldo + j, g->ldo, MR, acc, j, nf);
}

static void hbnn_sign_gemm_neon(const hbnn_sign_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                float *panel)
{
    if (panel == NULL) {
        hbnn_sign_gemm_portable(g, i0, i1, j0, j1, NULL);
        return;
    }
    for (int64_t j = j0; j < j1; j += HBNN_NEON_NF) {
        const int64_t nf = j + HBNN_NEON_NF < j1 ? HBNN_NEON_NF : j1 - j;
        hbnn_neon_sign_panel(g, j, nf, panel);
        int64_t i = i0;
#if HBNN_NEON_SIGN_MR == 2
        for (; i + 1 < i1; i += 2) hbnn_neon_sign_rows(g, panel, 2, i, j, nf);
#endif
        for (; i < i1; i++) hbnn_neon_sign_rows(g, panel, 1, i, j, nf);
    }
}

/* ---- float GEMM (full-precision layers): same lane layout, multiply-add per element ------------- */

#define HBNN_NEON_HAS_DENSE 1

HBNN_NEON_INLINE void hbnn_neon_dense_rows(const hbnn_dense_args *g, const float *w, const int MR, int64_t i,
                                           int64_t j, int64_t nf)
{
    const float *f[HBNN_NEON_SIGN_MR];
    float32x4_t acc[HBNN_NEON_SIGN_MR][4];
    for (int r = 0; r < MR; r++) {
        f[r] = g->f + (i + r) * g->k;
        for (int q = 0; q < 4; q++) acc[r][q] = vdupq_n_f32(0.0f);
    }
    for (int64_t k = 0; k < g->k; k++) {
        float32x4_t wv[4];
        for (int q = 0; q < 4; q++) wv[q] = vld1q_f32(w + k * HBNN_PANEL + 4 * q);
        for (int r = 0; r < MR; r++) {
            const float32x4_t v = vdupq_n_f32(f[r][k]);
            for (int q = 0; q < 4; q++) acc[r][q] = hbnn_neon_fma(acc[r][q], v, wv[q]);
        }
    }
    hbnn_neon_store_rows(&g->ep, g->out + i * g->ldo + j, g->ldo, MR, acc, j, nf);
}

static void hbnn_dense_gemm_neon(const hbnn_dense_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
#if HBNN_PANEL != HBNN_NEON_NF
#error "hbnn_dense_gemm_neon assumes panels of 16 filters"
#endif
    for (int64_t j = j0; j < j1; j += HBNN_PANEL) {
        const int64_t nf = j + HBNN_PANEL < j1 ? HBNN_PANEL : j1 - j;
        const float *w = g->wpanel + (j / HBNN_PANEL) * g->k * HBNN_PANEL;
        int64_t i = i0;
#if HBNN_NEON_SIGN_MR == 2
        for (; i + 1 < i1; i += 2) hbnn_neon_dense_rows(g, w, 2, i, j, nf);
#endif
        for (; i < i1; i++) hbnn_neon_dense_rows(g, w, 1, i, j, nf);
    }
}

/* ---- fused binarize + pack --------------------------------------------------------------------- */

/* Sign bits of 8 floats (bit t set iff v[t] < 0; NaN and -0.0 are not), as one byte. */
HBNN_NEON_INLINE uint64_t hbnn_neon_sign_byte(float32x4_t v0, float32x4_t v1)
{
    static const uint8_t weights[8] = {1, 2, 4, 8, 16, 32, 64, 128};
    const float32x4_t zero = vdupq_n_f32(0.0f);
    const uint16x8_t m16 = vcombine_u16(vmovn_u32(vcltq_f32(v0, zero)), vmovn_u32(vcltq_f32(v1, zero)));
    return hbnn_neon_hsum_u8(vand_u8(vmovn_u16(m16), vld1_u8(weights)));
}

static void hbnn_pack_rows_neon(const float *x, int64_t rows, int64_t n, int64_t xstride,
                                const float *in_scale, const float *in_bias, int64_t seg,
                                uint64_t *bits, int64_t bstride, float *scales, int64_t sstride, int L)
{
    /* The vector loop needs whole 8-element groups inside a segment (so a byte never straddles words). */
    if (seg % 8 != 0 && seg < n) {
        hbnn_pack_rows_portable(x, rows, n, xstride, in_scale, in_bias, seg, bits, bstride, scales, sstride, L);
        return;
    }
    const int64_t nw = (n + 63) / 64;
    const int64_t nseg = (n + seg - 1) / seg;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * xstride;
        uint64_t *brow = bits + r * bstride;
        float *srow = scales + r * sstride;
        memset(brow, 0, (size_t)nw * sizeof(uint64_t));
        for (int64_t s = 0; s < nseg; s++) {
            const int64_t start = s * seg;
            const int64_t end = start + seg < n ? start + seg : n;
            double sum = 0.0;
#if defined(__aarch64__)
            float64x2_t sum0 = vdupq_n_f64(0.0), sum1 = vdupq_n_f64(0.0);
#endif
            int64_t j = start;
            for (; j + 8 <= end; j += 8) {
                float32x4_t v0 = vld1q_f32(row + j), v1 = vld1q_f32(row + j + 4);
                /* separate multiply and add, as numpy's x * s + b (no FMA contraction under -std=c99) */
                if (in_scale) {
                    v0 = vmulq_f32(v0, vld1q_f32(in_scale + j));
                    v1 = vmulq_f32(v1, vld1q_f32(in_scale + j + 4));
                }
                if (in_bias) {
                    v0 = vaddq_f32(v0, vld1q_f32(in_bias + j));
                    v1 = vaddq_f32(v1, vld1q_f32(in_bias + j + 4));
                }
                brow[j >> 6] |= hbnn_neon_sign_byte(v0, v1) << (j & 63);
                const float32x4_t a0 = vabsq_f32(v0), a1 = vabsq_f32(v1);
#if defined(__aarch64__)
                sum0 = vaddq_f64(sum0, vcvt_f64_f32(vget_low_f32(a0)));
                sum1 = vaddq_f64(sum1, vcvt_high_f64_f32(a0));
                sum0 = vaddq_f64(sum0, vcvt_f64_f32(vget_low_f32(a1)));
                sum1 = vaddq_f64(sum1, vcvt_high_f64_f32(a1));
#else
                /* armv7 NEON has no float64 lanes: VFP double adds, in element order */
                float tmp[8];
                vst1q_f32(tmp, a0);
                vst1q_f32(tmp + 4, a1);
                for (int t = 0; t < 8; t++) sum += (double)tmp[t];
#endif
            }
#if defined(__aarch64__)
            const float64x2_t both = vaddq_f64(sum0, sum1);
            sum = vgetq_lane_f64(both, 0) + vgetq_lane_f64(both, 1);
#endif
            sum = hbnn_pack_scalar(row, in_scale, in_bias, j, end, brow, sum);
            hbnn_store_scale(srow, s, start, end, L, (float)(sum / (double)(end - start)));
        }
        hbnn_zero_tail_blocks(srow, n, L);
    }
}

#endif

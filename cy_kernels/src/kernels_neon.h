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
#include <stdlib.h>
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
/* Two loops (docs/DESIGN.md section 5):
 *  - runs (L = 64, hbnn_xor_args.run): the words of a run share one scale pair, so each (row, filter)
 *    pair adds its byte counts as integers (EOR, CNT, UADALP: three operations per 128 bits) and the
 *    float work happens once per run, four pairs at a time;
 *  - blocks (L in {8, 16, 32}): one scale product and one multiply-add per block, as the contract
 *    needs. When every block holds L elements or none (the usual case) q = L/2 - pop is formed on the
 *    narrow integer lanes and the tile doubles its sums at the end (exact, see kernels_avx512.h).
 * Register tiles: aarch64 has 32 q registers, armv7 16. Rows or filters past the end of a tile reuse
 * the last real one and are not stored, so every tile runs the same code. */

#if defined(__aarch64__)
#define HBNN_NEON_RUN_MR 4   /* runs: 4 x 4 pairs, 16 integer accumulators */
#define HBNN_NEON_RUN_NR 4
#define HBNN_NEON_BLK_MR 2   /* blocks: 2 x 4 pairs, 8 float accumulators */
#define HBNN_NEON_BLK_NR 4
#else
#define HBNN_NEON_RUN_MR 2   /* runs: 2 x 2 pairs */
#define HBNN_NEON_RUN_NR 2
#define HBNN_NEON_BLK_MR 2   /* blocks: 2 x 2 pairs */
#define HBNN_NEON_BLK_NR 2
#endif
/* A run's count per pair sums in 16-bit lanes: at most 64 * run < 65536 bits per run. */
#define HBNN_NEON_RUN_MAX 1023

/* [sum of v0, sum of v1, sum of v2, sum of v3] for four vectors of 16-bit counts (each sum < 65536). */
HBNN_NEON_INLINE uint32x4_t hbnn_neon_sum4_u16(uint16x8_t v0, uint16x8_t v1, uint16x8_t v2, uint16x8_t v3)
{
#if defined(__aarch64__)
    return vpaddlq_u16(vpaddq_u16(vpaddq_u16(v0, v1), vpaddq_u16(v2, v3)));
#else
    const uint16x4_t s0 = vadd_u16(vget_low_u16(v0), vget_high_u16(v0));
    const uint16x4_t s1 = vadd_u16(vget_low_u16(v1), vget_high_u16(v1));
    const uint16x4_t s2 = vadd_u16(vget_low_u16(v2), vget_high_u16(v2));
    const uint16x4_t s3 = vadd_u16(vget_low_u16(v3), vget_high_u16(v3));
    return vpaddlq_u16(vcombine_u16(vpadd_u16(s0, s1), vpadd_u16(s2, s3)));
#endif
}

/* One (row, filter) pair's count vector for 128 bits: started (first chunk of a run) or added to. */
#define HBNN_NEON_CNT(x) vcntq_u8(vreinterpretq_u8_u64(x))

/* Runs: MR rows x NR filters (mr, nr of them real) at (i, j). Float sums of four pairs share a
 * vector: with NR = 4, fac[r] holds row r's four filters; with 2 x 2, fac[0] holds pairs (0,0), (0,1),
 * (1,0), (1,1). */
HBNN_NEON_INLINE void hbnn_neon_runs_tile(const hbnn_xor_args *g, int64_t i, int64_t j, int mr, int nr)
{
    enum { MR = HBNN_NEON_RUN_MR, NR = HBNN_NEON_RUN_NR, NG = MR * NR / 4 };
    const int64_t R = g->run, kw = g->kwords, nb = g->nblk;
    const uint64_t *a[MR], *b[NR];
    const float *as[MR], *bs[NR];
    for (int r = 0; r < MR; r++) {
        const int64_t row = i + (r < mr ? r : mr - 1);
        a[r] = g->a + row * kw;
        as[r] = g->as + row * nb;
    }
    for (int c = 0; c < NR; c++) {
        const int64_t col = j + (c < nr ? c : nr - 1);
        b[c] = g->b + col * kw;
        bs[c] = g->bs + col * nb;
    }
    float32x4_t fac[NG];
    for (int q = 0; q < NG; q++) fac[q] = vdupq_n_f32(0.0f);
    const float32x4_t minus2 = vdupq_n_f32(-2.0f);
    for (int64_t run = 0; run < g->nrun; run++) {
        const int64_t w0 = run * R, w1 = w0 + R;
        uint16x8_t cnt[MR][NR];
        int64_t w = w0;
        {
            /* the first 128 bits start the counts (an odd run's single word: upper half zero) */
            uint64x2_t va[MR], vb[NR];
            if (R >= 2) {
                for (int r = 0; r < MR; r++) va[r] = vld1q_u64(a[r] + w);
                for (int c = 0; c < NR; c++) vb[c] = vld1q_u64(b[c] + w);
                w += 2;
            } else {
                for (int r = 0; r < MR; r++) va[r] = vcombine_u64(vld1_u64(a[r] + w), vdup_n_u64(0));
                for (int c = 0; c < NR; c++) vb[c] = vcombine_u64(vld1_u64(b[c] + w), vdup_n_u64(0));
                w += 1;
            }
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++) cnt[r][c] = vpaddlq_u8(HBNN_NEON_CNT(veorq_u64(va[r], vb[c])));
        }
        for (; w + 2 <= w1; w += 2) {
            uint64x2_t va[MR], vb[NR];
            for (int r = 0; r < MR; r++) va[r] = vld1q_u64(a[r] + w);
            for (int c = 0; c < NR; c++) vb[c] = vld1q_u64(b[c] + w);
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++) cnt[r][c] = vpadalq_u8(cnt[r][c], HBNN_NEON_CNT(veorq_u64(va[r], vb[c])));
        }
        if (w < w1) {
            uint64x2_t va[MR], vb[NR];
            for (int r = 0; r < MR; r++) va[r] = vcombine_u64(vld1_u64(a[r] + w), vdup_n_u64(0));
            for (int c = 0; c < NR; c++) vb[c] = vcombine_u64(vld1_u64(b[c] + w), vdup_n_u64(0));
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++) cnt[r][c] = vpadalq_u8(cnt[r][c], HBNN_NEON_CNT(veorq_u64(va[r], vb[c])));
        }
        /* once per run: d = len - 2 * pop for four pairs, times their two scales */
        const float32x4_t len = vdupq_n_f32(g->run_len[run]);
#if HBNN_NEON_RUN_NR == 4
        /* group q = row q against the 4 filters */
        float32x4_t sbv = vld1q_dup_f32(bs[0] + w0);
        sbv = vld1q_lane_f32(bs[1] + w0, sbv, 1);
        sbv = vld1q_lane_f32(bs[2] + w0, sbv, 2);
        sbv = vld1q_lane_f32(bs[3] + w0, sbv, 3);
        for (int q = 0; q < NG; q++) {
            const float32x4_t pop = vcvtq_f32_u32(hbnn_neon_sum4_u16(cnt[q][0], cnt[q][1], cnt[q][2], cnt[q][3]));
            const float32x4_t d = hbnn_neon_fma(len, pop, minus2);
            fac[q] = hbnn_neon_fma(fac[q], vmulq_n_f32(sbv, as[q][w0]), d);
        }
#else
        /* one group: rows 0, 0, 1, 1 against filters 0, 1, 0, 1 */
        const float32x4_t sav = vcombine_f32(vld1_dup_f32(as[0] + w0), vld1_dup_f32(as[1] + w0));
        const float32x2_t sb2 = vld1_lane_f32(bs[1] + w0, vld1_dup_f32(bs[0] + w0), 1);
        const float32x4_t pop = vcvtq_f32_u32(hbnn_neon_sum4_u16(cnt[0][0], cnt[0][1], cnt[1][0], cnt[1][1]));
        const float32x4_t d = hbnn_neon_fma(len, pop, minus2);
        fac[0] = hbnn_neon_fma(fac[0], vmulq_f32(sav, vcombine_f32(sb2, sb2)), d);
#endif
    }
    for (int q = 0; q < NG; q++) {
        float s[4];
        vst1q_f32(s, fac[q]);
        for (int p = 0; p < 4; p++) {
            const int r = 4 * q / NR + p / NR, c = p % NR;
            if (r < mr && c < nr) g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, s[p]);
        }
    }
}

/* Per-word counts of four (a ^ b) byte-count vectors, as 16-bit lanes
 * [v0 w0, v0 w1, v1 w0, v1 w1, v2 w0, v2 w1, v3 w0, v3 w1]: byte-wise pairwise adds, then one widening. */
HBNN_NEON_INLINE uint16x8_t hbnn_neon_word_counts4(uint8x16_t v0, uint8x16_t v1, uint8x16_t v2, uint8x16_t v3)
{
#if defined(__aarch64__)
    return vpaddlq_u8(vpaddq_u8(vpaddq_u8(v0, v1), vpaddq_u8(v2, v3)));
#else
    const uint8x8_t d0 = vpadd_u8(vget_low_u8(v0), vget_high_u8(v0)), d1 = vpadd_u8(vget_low_u8(v1), vget_high_u8(v1));
    const uint8x8_t d2 = vpadd_u8(vget_low_u8(v2), vget_high_u8(v2)), d3 = vpadd_u8(vget_low_u8(v3), vget_high_u8(v3));
    return vpaddlq_u8(vcombine_u8(vpadd_u8(d0, d1), vpadd_u8(d2, d3)));
#endif
}

/* Runs of one word (beta = 64, or beta = inf with C <= 64) whose words all hold 64 elements or none:
 * each 128-bit chunk is two runs. Per row of the tile the four filters' counts fold into per-word
 * counts (hbnn_neon_word_counts4), q = 32 - pop is taken while widening to 32 bits (exact, as for
 * uniform blocks: the sums are doubled at the end), and the float work is two multiplies and two
 * multiply-adds per row and chunk (8 pairs' words). */
#if defined(__aarch64__)
#define HBNN_NEON_RUN1_MR 4
#else
#define HBNN_NEON_RUN1_MR 1
#endif
HBNN_NEON_INLINE void hbnn_neon_runs1_tile(const hbnn_xor_args *g, int64_t i, int64_t j, int mr, int nr)
{
    enum { MR = HBNN_NEON_RUN1_MR, NR = 4 };
    const int64_t kw = g->kwords, nb = g->nblk, words = g->nrun * g->run;  /* the runs' words */
    const uint64_t *a[MR], *b[NR];
    const float *as[MR], *bs[NR];
    float32x4_t lo[MR], hi[MR];  /* row r: lo = filters 0, 1 (even, odd words), hi = filters 2, 3 */
    for (int r = 0; r < MR; r++) {
        const int64_t row = i + (r < mr ? r : mr - 1);
        a[r] = g->a + row * kw;
        as[r] = g->as + row * nb;
        lo[r] = hi[r] = vdupq_n_f32(0.0f);
    }
    for (int c = 0; c < NR; c++) {
        const int64_t col = j + (c < nr ? c : nr - 1);
        b[c] = g->b + col * kw;
        bs[c] = g->bs + col * nb;
    }
    const int16x8_t half = vdupq_n_s16(32);
    for (int64_t w = 0; w < words; w += 2) {  /* a last odd word pairs with a padding word: zero bits and scales */
        uint64x2_t vb[NR];
        for (int c = 0; c < NR; c++) vb[c] = vld1q_u64(b[c] + w);
        const float32x4_t sb01 = vcombine_f32(vld1_f32(bs[0] + w), vld1_f32(bs[1] + w));
        const float32x4_t sb23 = vcombine_f32(vld1_f32(bs[2] + w), vld1_f32(bs[3] + w));
        for (int r = 0; r < MR; r++) {
            const uint64x2_t va = vld1q_u64(a[r] + w);
            uint8x16_t c8[NR];
            for (int c = 0; c < NR; c++) c8[c] = HBNN_NEON_CNT(veorq_u64(va, vb[c]));
            const int16x8_t pop = vreinterpretq_s16_u16(hbnn_neon_word_counts4(c8[0], c8[1], c8[2], c8[3]));
            const float32x4_t q01 = vcvtq_f32_s32(vsubl_s16(vget_low_s16(half), vget_low_s16(pop)));
#if defined(__aarch64__)
            const float32x4_t q23 = vcvtq_f32_s32(vsubl_high_s16(half, pop));
#else
            const float32x4_t q23 = vcvtq_f32_s32(vsubl_s16(vget_high_s16(half), vget_high_s16(pop)));
#endif
            const float32x2_t sa = vld1_f32(as[r] + w);
            const float32x4_t sa2 = vcombine_f32(sa, sa);
            lo[r] = hbnn_neon_fma(lo[r], vmulq_f32(sa2, sb01), q01);
            hi[r] = hbnn_neon_fma(hi[r], vmulq_f32(sa2, sb23), q23);
        }
    }
    for (int r = 0; r < MR; r++) {
        const float32x2_t f01 = vpadd_f32(vget_low_f32(lo[r]), vget_high_f32(lo[r]));
        const float32x2_t f23 = vpadd_f32(vget_low_f32(hi[r]), vget_high_f32(hi[r]));
        float32x4_t v = vcombine_f32(f01, f23);
        v = vaddq_f32(v, v);
        float s[4];
        vst1q_f32(s, v);
        for (int c = 0; c < NR; c++)
            if (r < mr && c < nr) g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, s[c]);
    }
}

#if defined(__aarch64__)
/* Short runs (2 to HBNN_NEON_SHORT_RUN words: beta = inf on convs of 128-896 channels): byte counts
 * add up as bytes (at most 8 per chunk per byte), and one tree of byte-wise pairwise adds (ADDP) folds a
 * row's four filters before widening: 5 operations per 4 pairs instead of 8 (UADDLP per pair + the
 * 16-bit tree). After the tree a byte holds 4 bytes of each of up to 7 chunks: 4 * 8 * 7 = 224 < 256. */
#define HBNN_NEON_SHORT_RUN 14
HBNN_NEON_INLINE void hbnn_neon_short_runs_tile(const hbnn_xor_args *g, int64_t i, int64_t j, int mr, int nr)
{
    enum { MR = HBNN_NEON_RUN_MR, NR = 4 };
    const int64_t R = g->run, kw = g->kwords, nb = g->nblk;
    const uint64_t *a[MR], *b[NR];
    const float *as[MR], *bs[NR];
    for (int r = 0; r < MR; r++) {
        const int64_t row = i + (r < mr ? r : mr - 1);
        a[r] = g->a + row * kw;
        as[r] = g->as + row * nb;
    }
    for (int c = 0; c < NR; c++) {
        const int64_t col = j + (c < nr ? c : nr - 1);
        b[c] = g->b + col * kw;
        bs[c] = g->bs + col * nb;
    }
    float32x4_t fac[MR];
    for (int r = 0; r < MR; r++) fac[r] = vdupq_n_f32(0.0f);
    const float32x4_t minus2 = vdupq_n_f32(-2.0f);
    for (int64_t run = 0; run < g->nrun; run++) {
        const int64_t w0 = run * R, w1 = w0 + R;
        uint8x16_t cnt[MR][NR];
        {
            uint64x2_t va[MR], vb[NR];
            for (int r = 0; r < MR; r++) va[r] = vld1q_u64(a[r] + w0);
            for (int c = 0; c < NR; c++) vb[c] = vld1q_u64(b[c] + w0);
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++) cnt[r][c] = HBNN_NEON_CNT(veorq_u64(va[r], vb[c]));
        }
        int64_t w = w0 + 2;
        for (; w + 2 <= w1; w += 2) {
            uint64x2_t va[MR], vb[NR];
            for (int r = 0; r < MR; r++) va[r] = vld1q_u64(a[r] + w);
            for (int c = 0; c < NR; c++) vb[c] = vld1q_u64(b[c] + w);
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++) cnt[r][c] = vaddq_u8(cnt[r][c], HBNN_NEON_CNT(veorq_u64(va[r], vb[c])));
        }
        if (w < w1) {  /* an odd run's last word: upper half zero */
            uint64x2_t va[MR], vb[NR];
            for (int r = 0; r < MR; r++) va[r] = vcombine_u64(vld1_u64(a[r] + w), vdup_n_u64(0));
            for (int c = 0; c < NR; c++) vb[c] = vcombine_u64(vld1_u64(b[c] + w), vdup_n_u64(0));
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++) cnt[r][c] = vaddq_u8(cnt[r][c], HBNN_NEON_CNT(veorq_u64(va[r], vb[c])));
        }
        const float32x4_t len = vdupq_n_f32(g->run_len[run]);
        float32x4_t sbv = vld1q_dup_f32(bs[0] + w0);
        sbv = vld1q_lane_f32(bs[1] + w0, sbv, 1);
        sbv = vld1q_lane_f32(bs[2] + w0, sbv, 2);
        sbv = vld1q_lane_f32(bs[3] + w0, sbv, 3);
        for (int r = 0; r < MR; r++) {
            const uint8x16_t t = vpaddq_u8(vpaddq_u8(cnt[r][0], cnt[r][1]), vpaddq_u8(cnt[r][2], cnt[r][3]));
            const float32x4_t pop = vcvtq_f32_u32(vpaddlq_u16(vpaddlq_u8(t)));
            const float32x4_t d = vfmaq_f32(len, pop, minus2);
            fac[r] = vfmaq_f32(fac[r], vmulq_n_f32(sbv, as[r][w0]), d);
        }
    }
    for (int r = 0; r < MR; r++) {
        float s[4];
        vst1q_f32(s, fac[r]);
        for (int c = 0; c < NR; c++)
            if (r < mr && c < nr) g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, s[c]);
    }
}
#endif

/* Block values of one 128-bit XOR (L in {8, 16, 32}) added to acc: U = 1: q = L/2 - pop (integer),
 * acc += sa * sb * q; U = 0: acc += sa * sb * (len - 2 * pop). Pointers at the chunk's first block. */
HBNN_NEON_INLINE float32x4_t hbnn_neon_blk4(float32x4_t acc, const int U, float32x4_t v, const float *len,
                                            const float *sa, const float *sb)
{
    const float32x4_t sab = vmulq_f32(vld1q_f32(sa), vld1q_f32(sb));
    if (!U) v = hbnn_neon_fma(vld1q_f32(len), v, vdupq_n_f32(-2.0f));
    return hbnn_neon_fma(acc, sab, v);
}

HBNN_NEON_INLINE float32x4_t hbnn_neon_blocks(float32x4_t acc, const int L, const int U, uint64x2_t x,
                                              const float *len, const float *sa, const float *sb)
{
    const uint8x16_t c8 = HBNN_NEON_CNT(x);
    if (L == 32) {
        const uint32x4_t c = vpaddlq_u16(vpaddlq_u8(c8));
        const float32x4_t v = U ? vcvtq_f32_s32(vsubq_s32(vdupq_n_s32(16), vreinterpretq_s32_u32(c))) : vcvtq_f32_u32(c);
        return hbnn_neon_blk4(acc, U, v, len, sa, sb);
    }
    if (L == 16) {
        const uint16x8_t c = vpaddlq_u8(c8);
        float32x4_t lo, hi;
        if (U) {
            /* q = 8 - pop, subtracted while widening (SSUBL): one operation per 4 blocks */
            const int16x8_t p = vreinterpretq_s16_u16(c);
            lo = vcvtq_f32_s32(vsubl_s16(vdup_n_s16(8), vget_low_s16(p)));
#if defined(__aarch64__)
            hi = vcvtq_f32_s32(vsubl_high_s16(vdupq_n_s16(8), p));
#else
            hi = vcvtq_f32_s32(vsubl_s16(vdup_n_s16(8), vget_high_s16(p)));
#endif
        } else {
            lo = vcvtq_f32_u32(vmovl_u16(vget_low_u16(c)));
            hi = vcvtq_f32_u32(vmovl_u16(vget_high_u16(c)));
        }
        acc = hbnn_neon_blk4(acc, U, lo, len, sa, sb);
        return hbnn_neon_blk4(acc, U, hi, len + 4, sa + 4, sb + 4);
    }
    /* L == 8: 16 byte counts */
    int16x8_t h[2];
    if (U) {
        const int8x16_t q = vsubq_s8(vdupq_n_s8(4), vreinterpretq_s8_u8(c8));
        h[0] = vmovl_s8(vget_low_s8(q));
        h[1] = vmovl_s8(vget_high_s8(q));
    } else {
        h[0] = vreinterpretq_s16_u16(vmovl_u8(vget_low_u8(c8)));
        h[1] = vreinterpretq_s16_u16(vmovl_u8(vget_high_u8(c8)));
    }
    for (int t = 0; t < 2; t++) {
        acc = hbnn_neon_blk4(acc, U, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h[t]))), len + 8 * t, sa + 8 * t, sb + 8 * t);
        acc = hbnn_neon_blk4(acc, U, vcvtq_f32_s32(vmovl_s16(vget_high_s16(h[t]))), len + 8 * t + 4, sa + 8 * t + 4,
                             sb + 8 * t + 4);
    }
    return acc;
}

/* Blocks: MR rows x NR filters (mr, nr real) at (i, j), all K in 128-bit chunks. */
/* The blocks tile names every accumulator: as an array (acc[r][c]) GCC 12 keeps it in memory and
 * stores it back in every chunk. HBNN_NEON_BLK_PAIRS(X) calls X(r, c) for each pair of the tile. */
#if defined(__aarch64__)
#define HBNN_NEON_BLK_PAIRS(X) X(0, 0) X(0, 1) X(0, 2) X(0, 3) X(1, 0) X(1, 1) X(1, 2) X(1, 3)
#else
#define HBNN_NEON_BLK_PAIRS(X) X(0, 0) X(0, 1) X(1, 0) X(1, 1)
#endif

/* Blocks: MR rows x NR filters (mr, nr real) at (i, j), all K in 128-bit chunks. */
HBNN_NEON_INLINE void hbnn_neon_blocks_tile(const hbnn_xor_args *g, const int L, const int U, int64_t i,
                                            int64_t j, int mr, int nr)
{
    enum { MR = HBNN_NEON_BLK_MR, NR = HBNN_NEON_BLK_NR };
    const int bpc = 128 / L;  /* blocks per 128-bit chunk */
    const int64_t kw = g->kwords, nb = g->nblk;
    const uint64_t *a[MR], *b[NR];
    const float *as[MR], *bs[NR];
    for (int r = 0; r < MR; r++) {
        const int64_t row = i + (r < mr ? r : mr - 1);
        a[r] = g->a + row * kw;
        as[r] = g->as + row * nb;
    }
    for (int c = 0; c < NR; c++) {
        const int64_t col = j + (c < nr ? c : nr - 1);
        b[c] = g->b + col * kw;
        bs[c] = g->bs + col * nb;
    }
#define HBNN_NEON_ZERO(r, c) float32x4_t acc##r##c = vdupq_n_f32(0.0f);
    HBNN_NEON_BLK_PAIRS(HBNN_NEON_ZERO)
#undef HBNN_NEON_ZERO
    for (int64_t w = 0, blk = 0; w < kw; w += 2, blk += bpc) {
        uint64x2_t va[MR], vb[NR];
        for (int r = 0; r < MR; r++) va[r] = vld1q_u64(a[r] + w);
        for (int c = 0; c < NR; c++) vb[c] = vld1q_u64(b[c] + w);
#define HBNN_NEON_STEP(r, c) \
        acc##r##c = hbnn_neon_blocks(acc##r##c, L, U, veorq_u64(va[r], vb[c]), g->len + blk, as[r] + blk, bs[c] + blk);
        HBNN_NEON_BLK_PAIRS(HBNN_NEON_STEP)
#undef HBNN_NEON_STEP
    }
#define HBNN_NEON_STORE(r, c)                                                                         \
    if (r < mr && c < nr) {                                                                           \
        const float v = hbnn_neon_hsum(acc##r##c);                                                    \
        g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, U ? v + v : v);       \
    }
    HBNN_NEON_BLK_PAIRS(HBNN_NEON_STORE)
#undef HBNN_NEON_STORE
}

/* Whether every block holds L real elements or none (true unless a pixel's C is not a multiple of L). */
static int hbnn_neon_uniform_blocks(const hbnn_xor_args *g)
{
    for (int64_t b = 0; b < g->nblk; b++)
        if (g->len[b] != 0.0f && g->len[b] != (float)g->L) return 0;
    return 1;
}

/* One out-of-line function per loop variant, each with its own register allocation. */
#define HBNN_NEON_TILES(MR, NR, CALL)                                                        \
    for (int64_t j = j0; j < j1; j += NR) {                                                  \
        const int nr = j + NR <= j1 ? NR : (int)(j1 - j);                                    \
        for (int64_t i = i0; i < i1; i += MR) {                                              \
            const int mr = i + MR <= i1 ? MR : (int)(i1 - i);                                \
            CALL;                                                                            \
        }                                                                                    \
    }

__attribute__((noinline)) static void hbnn_neon_xor_runs(const hbnn_xor_args *g, int64_t i0, int64_t i1,
                                                          int64_t j0, int64_t j1)
{
    HBNN_NEON_TILES(HBNN_NEON_RUN_MR, HBNN_NEON_RUN_NR, hbnn_neon_runs_tile(g, i, j, mr, nr))
}

#if defined(__aarch64__)
__attribute__((noinline)) static void hbnn_neon_xor_short_runs(const hbnn_xor_args *g, int64_t i0, int64_t i1,
                                                                int64_t j0, int64_t j1)
{
    HBNN_NEON_TILES(HBNN_NEON_RUN_MR, 4, hbnn_neon_short_runs_tile(g, i, j, mr, nr))
}
#endif

__attribute__((noinline)) static void hbnn_neon_xor_runs1(const hbnn_xor_args *g, int64_t i0, int64_t i1,
                                                           int64_t j0, int64_t j1)
{
    HBNN_NEON_TILES(HBNN_NEON_RUN1_MR, 4, hbnn_neon_runs1_tile(g, i, j, mr, nr))
}

#define HBNN_NEON_XOR_BLK_FN(Lc, U)                                                          \
    __attribute__((noinline)) static void hbnn_neon_xor_##Lc##_##U(                          \
        const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)              \
    {                                                                                        \
        HBNN_NEON_TILES(HBNN_NEON_BLK_MR, HBNN_NEON_BLK_NR,                                  \
                        hbnn_neon_blocks_tile(g, Lc, U, i, j, mr, nr))                       \
    }
HBNN_NEON_XOR_BLK_FN(32, 1)
HBNN_NEON_XOR_BLK_FN(32, 0)
HBNN_NEON_XOR_BLK_FN(16, 1)
HBNN_NEON_XOR_BLK_FN(16, 0)
HBNN_NEON_XOR_BLK_FN(8, 1)
HBNN_NEON_XOR_BLK_FN(8, 0)

static void hbnn_xor_gemm_neon(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    if (g->kwords % 2 != 0) {  /* the interface pads rows to HBNN_ROW_WORDS; stay safe if it ever changes */
        hbnn_xor_gemm_portable(g, i0, i1, j0, j1);
        return;
    }
    const int uniform = hbnn_neon_uniform_blocks(g);
    if (g->L == 64 && g->run < 1) {
        /* a caller that describes no runs: every word is its own run */
        hbnn_xor_args h = *g;
        h.run = 1;
        h.nrun = g->kwords;
        h.run_len = g->len;
        hbnn_xor_gemm_neon(&h, i0, i1, j0, j1);
        return;
    }
    if (g->L == 64) {
        /* scales are stored per word, so the per-word loop is right for any run; armv7 (no ADDP on
         * q registers) keeps it for runs of 2 words, where it measured faster than the runs loop */
#if defined(__aarch64__)
        if (g->run == 1 && uniform) {
#else
        if (g->run <= 2 && uniform) {
#endif
            hbnn_neon_xor_runs1(g, i0, i1, j0, j1);
            return;
        }
#if defined(__aarch64__)
        if (g->run >= 2 && g->run <= HBNN_NEON_SHORT_RUN) {
            hbnn_neon_xor_short_runs(g, i0, i1, j0, j1);
            return;
        }
#endif
        if (g->run >= 1 && g->run <= HBNN_NEON_RUN_MAX) hbnn_neon_xor_runs(g, i0, i1, j0, j1);
        else hbnn_xor_gemm_portable(g, i0, i1, j0, j1);
        return;
    }
    switch (g->L * 2 + uniform) {
    case 65: hbnn_neon_xor_32_1(g, i0, i1, j0, j1); break;
    case 64: hbnn_neon_xor_32_0(g, i0, i1, j0, j1); break;
    case 33: hbnn_neon_xor_16_1(g, i0, i1, j0, j1); break;
    case 32: hbnn_neon_xor_16_0(g, i0, i1, j0, j1); break;
    case 17: hbnn_neon_xor_8_1(g, i0, i1, j0, j1); break;
    case 16: hbnn_neon_xor_8_0(g, i0, i1, j0, j1); break;
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

/* Store one row's 16 lane accumulators through the epilogue (nf real filters). By value: an array
 * passed by address made GCC 12 keep every accumulator in memory through the whole segment loop. */
HBNN_NEON_INLINE void hbnn_neon_store_row(const hbnn_epilogue *ep, float *out, float32x4_t a0, float32x4_t a1,
                                          float32x4_t a2, float32x4_t a3, int64_t j, int64_t nf)
{
    float tmp[HBNN_NEON_NF];
    vst1q_f32(tmp, a0);
    vst1q_f32(tmp + 4, a1);
    vst1q_f32(tmp + 8, a2);
    vst1q_f32(tmp + 12, a3);
    for (int64_t c = 0; c < nf; c++) out[c] = hbnn_apply_epilogue(ep, j + c, tmp[c]);
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
    for (int r = 0; r < HBNN_NEON_SIGN_MR; r++)
        if (r < MR)
            hbnn_neon_store_row(&g->ep, g->out + (i + r) * g->ldo + j, acc[r][0], acc[r][1], acc[r][2], acc[r][3], j, nf);
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
    for (int r = 0; r < HBNN_NEON_SIGN_MR; r++)
        if (r < MR)
            hbnn_neon_store_row(&g->ep, g->out + (i + r) * g->ldo + j, acc[r][0], acc[r][1], acc[r][2], acc[r][3], j, nf);
}

#if defined(__aarch64__)
/* 16 outputs of one row with the epilogue, four lanes at a time: the same IEEE operations in the same
 * order as hbnn_apply_epilogue (aarch64 NEON floats are IEEE), so the same bits. */
HBNN_NEON_INLINE void hbnn_neon_store16(const hbnn_epilogue *ep, float *out, const float32x4_t *acc, int64_t j)
{
    for (int q = 0; q < 4; q++) {
        float32x4_t y = acc[q];
        if (ep->scale) y = vmulq_f32(y, vld1q_f32(ep->scale + j + 4 * q));
        if (ep->bias) y = vaddq_f32(y, vld1q_f32(ep->bias + j + 4 * q));
        if (ep->relu) y = vbslq_f32(vcltq_f32(y, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), y);  /* NaN stays NaN */
        vst1q_f32(out + 4 * q, y);
    }
}

/* 4 rows x 16 filters: per 4 elements of K, 16 weight loads serve 64 FMAs by element (FMLA .s[lane]);
 * every accumulator still adds its products in K order, so the sums are those of the 2-row kernel. */
HBNN_NEON_INLINE void hbnn_neon_dense_rows4(const hbnn_dense_args *g, const float *w, int64_t i, int64_t j, int64_t nf)
{
    const float *f[4];
    float32x4_t acc[4][4];
    for (int r = 0; r < 4; r++) {
        f[r] = g->f + (i + r) * g->k;
        for (int q = 0; q < 4; q++) acc[r][q] = vdupq_n_f32(0.0f);
    }
    int64_t k = 0;
    for (; k + 4 <= g->k; k += 4) {
        float32x4_t fv[4];
        for (int r = 0; r < 4; r++) fv[r] = vld1q_f32(f[r] + k);
#define HBNN_NEON_DENSE_LANE(t)                                                              \
        {                                                                                    \
            float32x4_t wv[4];                                                               \
            for (int q = 0; q < 4; q++) wv[q] = vld1q_f32(w + (k + t) * HBNN_PANEL + 4 * q);  \
            for (int r = 0; r < 4; r++)                                                      \
                for (int q = 0; q < 4; q++) acc[r][q] = vfmaq_laneq_f32(acc[r][q], wv[q], fv[r], t); \
        }
        HBNN_NEON_DENSE_LANE(0)
        HBNN_NEON_DENSE_LANE(1)
        HBNN_NEON_DENSE_LANE(2)
        HBNN_NEON_DENSE_LANE(3)
#undef HBNN_NEON_DENSE_LANE
    }
    for (; k < g->k; k++) {
        float32x4_t wv[4];
        for (int q = 0; q < 4; q++) wv[q] = vld1q_f32(w + k * HBNN_PANEL + 4 * q);
        for (int r = 0; r < 4; r++) {
            const float32x4_t v = vdupq_n_f32(f[r][k]);
            for (int q = 0; q < 4; q++) acc[r][q] = vfmaq_f32(acc[r][q], v, wv[q]);
        }
    }
    for (int r = 0; r < 4; r++) {
        float *out = g->out + (i + r) * g->ldo + j;
        if (nf == HBNN_PANEL) hbnn_neon_store16(&g->ep, out, acc[r], j);
        else hbnn_neon_store_row(&g->ep, out, acc[r][0], acc[r][1], acc[r][2], acc[r][3], j, nf);
    }
}
#endif

static void hbnn_dense_gemm_neon(const hbnn_dense_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
#if HBNN_PANEL != HBNN_NEON_NF
#error "hbnn_dense_gemm_neon assumes panels of 16 filters"
#endif
    for (int64_t j = j0; j < j1; j += HBNN_PANEL) {
        const int64_t nf = j + HBNN_PANEL < j1 ? HBNN_PANEL : j1 - j;
        const float *w = g->wpanel + (j / HBNN_PANEL) * g->k * HBNN_PANEL;
        int64_t i = i0;
#if defined(__aarch64__)
        for (; i + 3 < i1; i += 4) hbnn_neon_dense_rows4(g, w, i, j, nf);
#endif
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
    const double inv_seg = (seg & (seg - 1)) == 0 ? 1.0 / (double)seg : 0.0;   /* exact for a power of two */
    const int lg = L > 0 ? __builtin_ctz((unsigned)L) : 0;
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
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
                /* j is a multiple of 8: its byte of the zeroed row, written once (no load / OR / store) */
                ((uint8_t *)brow)[j >> 3] = (uint8_t)hbnn_neon_sign_byte(v0, v1);
#else
                brow[j >> 6] |= hbnn_neon_sign_byte(v0, v1) << (j & 63);
#endif
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
            /* a power-of-two length divides as a multiply by its exact inverse (the same rounding;
             * a float64 division costs 32 cycles on the A72) */
            const double mean = end - start == seg && inv_seg > 0.0 ? sum * inv_seg : sum / (double)(end - start);
            if (L == 0) {
                srow[s] = (float)mean;
            } else {   /* hbnn_store_scale with shifts: L is a power of two (a division costs 35 cycles) */
                for (int64_t b = start >> lg; b <= (end - 1) >> lg; b++) srow[b] = (float)mean;
            }
        }
        hbnn_zero_tail_blocks(srow, n, L);
    }
}

/* ---- integer scales (docs/DESIGN.md, section 9) ------------------------------------------------ */
/* int-xor, block levels every 16 bits (L = 16) or 8 (L = 8). One step covers 16 blocks of a
 * (patch, filter) pair (256 bits at L = 16, 128 at L = 8):
 *   EOR, CNT per 128 bits; at L = 16 one ADDP folds two CNT vectors into the 16 block counts (bytes);
 *   e = len - 2 * pop per block in bytes (ADD, SUB: |e| <= 16, exact as int8);
 *   t = e * qa by SMULL / SMULL2 of signed bytes (|t| <= 16 * 127: int16);
 *   acc += t * qb by SMLAL / SMLAL2 (x 2) into int32 lanes, qb the filter's levels (int16).
 * Per 128 bits and pair at L = 16: 2 + 1.5 + 1 + 2 = 6.5 operations (9.5 of them on the 256 bits), only
 * 3 of them multiplies (the multiply pipe bounds the A72 and the N1), against 4 multiply-pipe cycles
 * of the MLS form (t = qa * len - pop * 2qa on int16 lanes, MLS costs 2) it replaced. No float work
 * until the output.
 * int8 (short blocks): SMULL + SMLAL of signed bytes (two products <= 2 * 127 * 127 fit int16),
 * SADALP into int32: three operations per 16 products; on cores with the dot product the SDOT kernel
 * of kernels_neon_dotprod.h replaces it (one SDOT per 16 products, chosen at run time).
 * Tiles: 2 patches x 4 filters on aarch64, 2 x 2 on armv7 (int-xor); 2 x 4 / 2 x 2 (int8). */

HBNN_NEON_INLINE int32_t hbnn_neon_hsum_s32(int32x4_t v)
{
#if defined(__aarch64__)
    return vaddvq_s32(v);
#else
    int32x2_t s = vadd_s32(vget_low_s32(v), vget_high_s32(v));
    return vget_lane_s32(vpadd_s32(s, s), 0);
#endif
}

#if defined(__aarch64__)
/* Four outputs of one patch, filters j..j+3, from their int32 lane sums: the lanes folded by ADDP,
 * then float32(acc) * col_scale, * scale, + bias, ReLU as hbnn_int_output does one at a time (the
 * same IEEE operations in the same order, so the same bits; aarch64 NEON floats are IEEE, armv7's
 * flush denormals, which is why armv7 keeps the scalar epilogue). */
HBNN_NEON_INLINE void hbnn_neon_int_store4(const hbnn_epilogue *ep, const float *col_scale, int64_t j, float *out,
                                           int32x4_t a0, int32x4_t a1, int32x4_t a2, int32x4_t a3)
{
    const int32x4_t s = vpaddq_s32(vpaddq_s32(a0, a1), vpaddq_s32(a2, a3));
    float32x4_t y = vmulq_f32(vcvtq_f32_s32(s), vld1q_f32(col_scale + j));
    if (ep->scale) y = vmulq_f32(y, vld1q_f32(ep->scale + j));
    if (ep->bias) y = vaddq_f32(y, vld1q_f32(ep->bias + j));
    if (ep->relu) y = vbslq_f32(vcltq_f32(y, vdupq_n_f32(0.0f)), vdupq_n_f32(0.0f), y);  /* NaN stays NaN */
    vst1q_f32(out, y);
}

#define HBNN_NEON_XINT_MR 2   /* 2 patches x 4 filters: 8 accumulators (3 x 4 spills with gcc 12) */
#define HBNN_NEON_XINT_NR 4
#else
#define HBNN_NEON_XINT_MR 2   /* 16 q registers on armv7 */
#define HBNN_NEON_XINT_NR 2
#endif
#define HBNN_NEON_XINT_STACK 8192   /* level bytes kept on the stack up to this many */

/* The activations' block levels as signed bytes (0..127), once per call rather than per tile (each
 * row meets j1 - j0 filters), and the block lengths as bytes (0..16). */
static void hbnn_neon_int_bytes(const hbnn_xor_args *g, int64_t i0, int64_t i1, int8_t *qa8, uint8_t *len8)
{
    for (int64_t b = 0; b < g->nblk; b += 16) {   /* nblk: a multiple of 16 at L <= 16 */
        const int16x8_t l0 = vld1q_s16(g->qlen + b), l1 = vld1q_s16(g->qlen + b + 8);
        vst1q_u8(len8 + b, vcombine_u8(vmovn_u16(vreinterpretq_u16_s16(l0)), vmovn_u16(vreinterpretq_u16_s16(l1))));
    }
    for (int64_t i = i0; i < i1; i++) {
        const int16_t *aq = g->aq + i * g->nblk;
        int8_t *q = qa8 + (i - i0) * g->nblk;
        for (int64_t b = 0; b < g->nblk; b += 16)
            vst1q_s8(q + b, vcombine_s8(vmovn_s16(vld1q_s16(aq + b)), vmovn_s16(vld1q_s16(aq + b + 8))));
    }
}

/* The 16 block counts (bytes) of one step of a pair: L = 16: 256 bits (two 128-bit words pairs), L = 8: 128. */
HBNN_NEON_INLINE uint8x16_t hbnn_neon_int_pops(const int L, const uint64_t *a, const uint64_t *b)
{
    const uint8x16_t c0 = vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(a), vld1q_u64(b))));
    if (L == 8) return c0;
    const uint8x16_t c1 = vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(a + 2), vld1q_u64(b + 2))));
#if defined(__aarch64__)
    return vpaddq_u8(c0, c1);
#else
    return vcombine_u8(vpadd_u8(vget_low_u8(c0), vget_high_u8(c0)), vpadd_u8(vget_low_u8(c1), vget_high_u8(c1)));
#endif
}

/* One tile: MR patches (level bytes qa8, rows nblk apart) x NR filters. */
HBNN_NEON_INLINE void hbnn_neon_xor_int_tile(const hbnn_xor_args *g, const int L, const int MR, const int NR,
                                             int64_t i, int64_t j, const int8_t *qa8, const uint8_t *len8,
                                             int64_t live)
{
    int32x4_t acc[HBNN_NEON_XINT_MR][HBNN_NEON_XINT_NR];
    const uint64_t *a[HBNN_NEON_XINT_MR], *b[HBNN_NEON_XINT_NR];
    const int16_t *bq[HBNN_NEON_XINT_NR];
    for (int r = 0; r < MR; r++) {
        a[r] = g->a + (i + r) * g->kwords;
        for (int c = 0; c < NR; c++) acc[r][c] = vdupq_n_s32(0);
    }
    for (int c = 0; c < NR; c++) {
        b[c] = g->b + (j + c) * g->kwords;
        bq[c] = g->bq + (j + c) * g->nblk;
    }
    const int64_t wstep = L == 16 ? 4 : 2;            /* words per step of 16 blocks */
    const int64_t steps = live / wstep;                /* words past `live` hold only padding: they add 0 */
    for (int64_t k = 0; k < steps; k++) {
        const int64_t blk = 16 * k, w = wstep * k;
        const uint8x16_t len = vld1q_u8(len8 + blk);
        int8x16_t qa[HBNN_NEON_XINT_MR];
        for (int r = 0; r < MR; r++) qa[r] = vld1q_s8(qa8 + r * g->nblk + blk);
        for (int c = 0; c < NR; c++) {
            const int16x8_t qb0 = vld1q_s16(bq[c] + blk), qb1 = vld1q_s16(bq[c] + blk + 8);
            for (int r = 0; r < MR; r++) {
                const uint8x16_t pop = hbnn_neon_int_pops(L, a[r] + w, b[c] + w);
                const int8x16_t e = vreinterpretq_s8_u8(vsubq_u8(len, vaddq_u8(pop, pop)));
                const int16x8_t t0 = vmull_s8(vget_low_s8(e), vget_low_s8(qa[r]));
#if defined(__aarch64__)
                const int16x8_t t1 = vmull_high_s8(e, qa[r]);
#else
                const int16x8_t t1 = vmull_s8(vget_high_s8(e), vget_high_s8(qa[r]));
#endif
                int32x4_t s = vmlal_s16(acc[r][c], vget_low_s16(t0), vget_low_s16(qb0));
                s = vmlal_s16(s, vget_high_s16(t0), vget_high_s16(qb0));
                s = vmlal_s16(s, vget_low_s16(t1), vget_low_s16(qb1));
                acc[r][c] = vmlal_s16(s, vget_high_s16(t1), vget_high_s16(qb1));
            }
        }
    }
    if (L == 16 && live % 4 == 2) {   /* a last half step: 128 bits, 8 blocks (e.g. conv rows of 18 words) */
        const int64_t blk = 16 * steps, w = 4 * steps;
        const uint8x8_t len = vld1_u8(len8 + blk);
        for (int c = 0; c < NR; c++) {
            const int16x8_t qb0 = vld1q_s16(bq[c] + blk);
            for (int r = 0; r < MR; r++) {
                const uint8x16_t c0 = vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(a[r] + w), vld1q_u64(b[c] + w))));
                const uint8x8_t pop = vpadd_u8(vget_low_u8(c0), vget_high_u8(c0));
                const int8x8_t e = vreinterpret_s8_u8(vsub_u8(len, vadd_u8(pop, pop)));
                const int16x8_t t0 = vmull_s8(e, vld1_s8(qa8 + r * g->nblk + blk));
                const int32x4_t s = vmlal_s16(acc[r][c], vget_low_s16(t0), vget_low_s16(qb0));
                acc[r][c] = vmlal_s16(s, vget_high_s16(t0), vget_high_s16(qb0));
            }
        }
    }
#if defined(__aarch64__)
    if (NR == 4) {
        for (int r = 0; r < MR; r++)
            hbnn_neon_int_store4(&g->ep, g->col_scale, j, g->out + (i + r) * g->ldo + j, acc[r][0], acc[r][1],
                                 acc[r][2], acc[r][3]);
        return;
    }
#endif
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_int_output(&g->ep, g->col_scale, j + c,
                                                               hbnn_neon_hsum_s32(acc[r][c]));
}

#define HBNN_NEON_XINT_ROWS(Lc, NRc)                                                          \
    do {                                                                                      \
        int64_t i = i0;                                                                       \
        for (; i + HBNN_NEON_XINT_MR <= i1; i += HBNN_NEON_XINT_MR)                             \
            hbnn_neon_xor_int_tile(g, Lc, HBNN_NEON_XINT_MR, NRc, i, j, qa8 + (i - i0) * nb, len8, live); \
        if (i1 - i == 2) hbnn_neon_xor_int_tile(g, Lc, 2, NRc, i, j, qa8 + (i - i0) * nb, len8, live); \
        else if (i1 - i == 1) hbnn_neon_xor_int_tile(g, Lc, 1, NRc, i, j, qa8 + (i - i0) * nb, len8, live); \
    } while (0)

#if HBNN_NEON_XINT_NR == 4
#define HBNN_NEON_XOR_INT_LOOP(Lc)                                                           \
    for (int64_t j = j0; j < j1; j += 4) {                                                   \
        switch (j1 - j < 4 ? j1 - j : 4) {                                                   \
        case 4: HBNN_NEON_XINT_ROWS(Lc, 4); break;                                           \
        case 3: HBNN_NEON_XINT_ROWS(Lc, 3); break;                                           \
        case 2: HBNN_NEON_XINT_ROWS(Lc, 2); break;                                           \
        default: HBNN_NEON_XINT_ROWS(Lc, 1); break;                                          \
        }                                                                                    \
    }
#else
#define HBNN_NEON_XOR_INT_LOOP(Lc)                                                           \
    for (int64_t j = j0; j < j1; j += 2) {                                                   \
        if (j + 1 < j1) HBNN_NEON_XINT_ROWS(Lc, 2);                                          \
        else HBNN_NEON_XINT_ROWS(Lc, 1);                                                     \
    }
#endif

static void hbnn_xor_int_gemm_neon(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    if (g->L != 16 && g->L != 8) {
        hbnn_xor_int_gemm_portable(g, i0, i1, j0, j1);
        return;
    }
    const int64_t nb = g->nblk, bytes = (i1 - i0 + 1) * nb;
    uint8_t stack[HBNN_NEON_XINT_STACK];
    uint8_t *heap = bytes > HBNN_NEON_XINT_STACK ? (uint8_t *)malloc((size_t)bytes) : NULL;
    if (bytes > HBNN_NEON_XINT_STACK && !heap) {   /* out of memory: the portable loop needs none */
        hbnn_xor_int_gemm_portable(g, i0, i1, j0, j1);
        return;
    }
    uint8_t *len8 = heap ? heap : stack;
    int8_t *qa8 = (int8_t *)(len8 + nb);
    hbnn_neon_int_bytes(g, i0, i1, qa8, len8);
    /* live words: up to the last 128 bits holding a real element (len > 0); past them both sides are
     * zero bits at level 0 (row padding to HBNN_ROW_WORDS), which add exactly 0 */
    const int64_t per_word = 64 / g->L;
    int64_t last = nb - 1;
    while (last >= 0 && len8[last] == 0) last--;
    const int64_t live = ((last + 1 + 2 * per_word - 1) / (2 * per_word)) * 2;
    if (g->L == 16) {
        HBNN_NEON_XOR_INT_LOOP(16)
    } else {
        HBNN_NEON_XOR_INT_LOOP(8)
    }
    free(heap);
}

#if defined(__aarch64__)
#define HBNN_NEON_INT8_NR 4
#else
#define HBNN_NEON_INT8_NR 2
#endif

HBNN_NEON_INLINE void hbnn_neon_int8_tile(const hbnn_int8_args *g, const int MR, const int NR, int64_t i, int64_t j)
{
    int32x4_t acc[2][HBNN_NEON_INT8_NR];
    const int8_t *a[2], *w[HBNN_NEON_INT8_NR];
    for (int r = 0; r < MR; r++) {
        a[r] = g->a + (i + r) * g->kpad;
        for (int c = 0; c < NR; c++) acc[r][c] = vdupq_n_s32(0);
    }
    for (int c = 0; c < NR; c++) w[c] = g->w + (j + c) * g->kpad;
    for (int64_t k = 0; k < g->kpad; k += 16) {
        int8x16_t va[2];
        for (int r = 0; r < MR; r++) va[r] = vld1q_s8(a[r] + k);
        for (int c = 0; c < NR; c++) {
            const int8x16_t vw = vld1q_s8(w[c] + k);
            for (int r = 0; r < MR; r++) {
                int16x8_t p = vmull_s8(vget_low_s8(va[r]), vget_low_s8(vw));
                p = vmlal_s8(p, vget_high_s8(va[r]), vget_high_s8(vw));
                acc[r][c] = vpadalq_s16(acc[r][c], p);
            }
        }
    }
#if HBNN_NEON_INT8_NR == 4
    if (NR == 4) {
        for (int r = 0; r < MR; r++)
            hbnn_neon_int_store4(&g->ep, g->col_scale, j, g->out + (i + r) * g->ldo + j, acc[r][0], acc[r][1],
                                 acc[r][2], acc[r][3]);
        return;
    }
#endif
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_int_output(&g->ep, g->col_scale, j + c,
                                                               hbnn_neon_hsum_s32(acc[r][c]));
}

#define HBNN_NEON_INT8_ROWS(NRc)                                                             \
    do {                                                                                     \
        int64_t i = i0;                                                                      \
        for (; i + 1 < i1; i += 2) hbnn_neon_int8_tile(g, 2, NRc, i, j);                     \
        if (i < i1) hbnn_neon_int8_tile(g, 1, NRc, i, j);                                    \
    } while (0)

static void hbnn_int8_gemm_neon(const hbnn_int8_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t j = j0; j < j1; j += HBNN_NEON_INT8_NR) {
        switch (j1 - j < HBNN_NEON_INT8_NR ? j1 - j : HBNN_NEON_INT8_NR) {
#if HBNN_NEON_INT8_NR == 4
        case 4: HBNN_NEON_INT8_ROWS(4); break;
        case 3: HBNN_NEON_INT8_ROWS(3); break;
#endif
        case 2: HBNN_NEON_INT8_ROWS(2); break;
        default: HBNN_NEON_INT8_ROWS(1); break;
        }
    }
}

#define HBNN_NEON_XOR_INT_GEMM hbnn_xor_int_gemm_neon
#define HBNN_NEON_INT8_GEMM hbnn_int8_gemm_neon

#endif

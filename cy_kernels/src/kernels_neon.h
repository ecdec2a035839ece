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

/* Panel of one packed row: a float sign mask (0x80000000 where the bit is 1) per element. */
HBNN_NEON_INLINE void hbnn_neon_sign_masks(const uint64_t *bits, int64_t kpad, float *panel)
{
    static const uint32_t sel_lo[4] = {1, 2, 4, 8}, sel_hi[4] = {16, 32, 64, 128};
    const uint32x4_t lo = vld1q_u32(sel_lo), hi = vld1q_u32(sel_hi);
    const uint32x4_t signbit = vdupq_n_u32(0x80000000u);
    for (int64_t k = 0; k < kpad; k += 8) {
        const uint32x4_t byte = vdupq_n_u32((uint32_t)((bits[k >> 6] >> (k & 63)) & 0xff));
        vst1q_u32((uint32_t *)(panel + k), vandq_u32(vtstq_u32(byte, lo), signbit));
        vst1q_u32((uint32_t *)(panel + k + 4), vandq_u32(vtstq_u32(byte, hi), signbit));
    }
}

/* Panel of one packed row dequantized: +-scale per element (segments shorter than a vector). */
static inline void hbnn_neon_sign_dequant(const hbnn_sign_args *g, int64_t j, float *panel)
{
    const uint64_t *bits = g->bits + j * g->nwords;
    const float *sc = g->scales + j * g->nseg;
    for (int64_t k = 0; k < g->kpad; k++) {
        if (k >= g->k) {
            panel[k] = 0.0f;
            continue;
        }
        const float s = sc[k / g->seg];
        panel[k] = ((bits[k >> 6] >> (k & 63)) & 1) ? -s : s;
    }
}

/* MR float rows x NR panels; segments are whole vectors (seg % 4 == 0) or one segment per row. */
HBNN_NEON_INLINE void hbnn_neon_sign_tile(const hbnn_sign_args *g, const float *panel, const int MR,
                                          const int NR, int64_t i, int64_t j)
{
    const float32x4_t zero = vdupq_n_f32(0.0f);
    float32x4_t acc[2][2] = {{zero, zero}, {zero, zero}};
    const float *f[2] = {NULL, NULL};
    for (int r = 0; r < MR; r++) f[r] = g->f + (i + r) * g->kpad;
    const int64_t nvec = g->kpad / 4;
    const int64_t vps = g->nseg == 1 ? nvec : g->seg / 4;  /* vectors per segment */
    for (int64_t s = 0, v0 = 0; s < g->nseg; s++, v0 += vps) {
        const int64_t v1 = v0 + vps < nvec ? v0 + vps : nvec;
        float32x4_t sum[2][2] = {{zero, zero}, {zero, zero}};
        for (int64_t v = v0; v < v1; v++) {
            uint32x4_t vf[2], vm[2];
            for (int r = 0; r < MR; r++) vf[r] = vreinterpretq_u32_f32(vld1q_f32(f[r] + 4 * v));
            for (int c = 0; c < NR; c++) vm[c] = vld1q_u32((const uint32_t *)(panel + c * g->kpad + 4 * v));
            /* flipping the sign bit is the subtract: adds only inside a segment */
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++)
                    sum[r][c] = vaddq_f32(sum[r][c], vreinterpretq_f32_u32(veorq_u32(vf[r], vm[c])));
        }
        for (int c = 0; c < NR; c++) {
            const float32x4_t sc = vdupq_n_f32(g->scales[(j + c) * g->nseg + s]);
            for (int r = 0; r < MR; r++) acc[r][c] = hbnn_neon_fma(acc[r][c], sc, sum[r][c]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, hbnn_neon_hsum(acc[r][c]));
}

/* Dequantized panel: plain multiply-add per element (segments of 2, or not a multiple of 4). */
HBNN_NEON_INLINE void hbnn_neon_dequant_tile(const hbnn_sign_args *g, const float *panel, const int MR,
                                             const int NR, int64_t i, int64_t j)
{
    const float32x4_t zero = vdupq_n_f32(0.0f);
    float32x4_t acc[2][2] = {{zero, zero}, {zero, zero}};
    const float *f[2] = {NULL, NULL};
    for (int r = 0; r < MR; r++) f[r] = g->f + (i + r) * g->kpad;
    for (int64_t k = 0; k < g->kpad; k += 4) {
        float32x4_t vf[2], vw[2];
        for (int r = 0; r < MR; r++) vf[r] = vld1q_f32(f[r] + k);
        for (int c = 0; c < NR; c++) vw[c] = vld1q_f32(panel + c * g->kpad + k);
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++) acc[r][c] = hbnn_neon_fma(acc[r][c], vf[r], vw[c]);
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, hbnn_neon_hsum(acc[r][c]));
}

#define HBNN_NEON_SIGN_ROWS(TILE, NRc)                                               \
    do {                                                                             \
        int64_t i = i0;                                                              \
        for (; i + 1 < i1; i += 2) TILE(g, panel, 2, NRc, i, j);                     \
        if (i < i1) TILE(g, panel, 1, NRc, i, j);                                    \
    } while (0)

static void hbnn_sign_gemm_neon(const hbnn_sign_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                float *panel)
{
    if (panel == NULL || g->kpad % 8 != 0) {
        hbnn_sign_gemm_portable(g, i0, i1, j0, j1, NULL);
        return;
    }
    const int masks = g->nseg == 1 || g->seg % 4 == 0;
    for (int64_t j = j0; j < j1; j += 2) {
        const int nr = j + 1 < j1 ? 2 : 1;
        for (int c = 0; c < nr; c++) {
            if (masks)
                hbnn_neon_sign_masks(g->bits + (j + c) * g->nwords, g->kpad, panel + c * g->kpad);
            else
                hbnn_neon_sign_dequant(g, j + c, panel + c * g->kpad);
        }
        if (masks) {
            if (nr == 2) HBNN_NEON_SIGN_ROWS(hbnn_neon_sign_tile, 2);
            else HBNN_NEON_SIGN_ROWS(hbnn_neon_sign_tile, 1);
        } else {
            if (nr == 2) HBNN_NEON_SIGN_ROWS(hbnn_neon_dequant_tile, 2);
            else HBNN_NEON_SIGN_ROWS(hbnn_neon_dequant_tile, 1);
        }
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
            for (; j < end; j++) {
                const float v = hbnn_affine(row, in_scale, in_bias, j);
                sum += fabs((double)v);
                if (v < 0.0f) brow[j >> 6] |= UINT64_C(1) << (j & 63);
            }
            hbnn_store_scale(srow, s, start, end, L, (float)(sum / (double)(end - start)));
        }
        hbnn_zero_tail_blocks(srow, n, L);
    }
}

#endif

/* AVX2 + FMA + POPCNT backend for x86-64. Compiled into every x86-64 build with per-function target
 * attributes (no global -mavx2), and selected at run time only on CPUs that have these extensions.
 * Included once, by xhbnn.c, after kernels_portable.h (which handles block widths below 8). */
#ifndef XHBNN_KERNELS_AVX2_H
#define XHBNN_KERNELS_AVX2_H

#if !defined(__x86_64__) && !defined(_M_X64)
#error "kernels_avx2.h is for x86-64 only"
#endif

#include <immintrin.h>
#include "xhbnn.h"

#define HBNN_AVX2 __attribute__((target("avx2,fma,popcnt")))
#define HBNN_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,popcnt")))

/* Byte-wise popcount (Mula's nibble lookup). */
HBNN_AVX2_INLINE __m256i hbnn_avx2_popcnt8(__m256i x)
{
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i lo = _mm256_and_si256(x, low);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

HBNN_AVX2_INLINE float hbnn_avx2_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* acc += (sa * sb) * (len - 2 * pop), 8 blocks at a time. */
HBNN_AVX2_INLINE __m256 hbnn_avx2_accum(__m256 acc, __m256i pop32, const float *len, const float *sa,
                                        const float *sb)
{
    const __m256 d = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(pop32), _mm256_set1_ps(2.0f), _mm256_loadu_ps(len));
    return _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(sa), _mm256_loadu_ps(sb)), d, acc);
}

/* One 256-bit chunk (4 words) of one (a, b) row pair, for block width L in {8, 16, 32, 64}.
 * `blk` is the index of the chunk's first block. */
HBNN_AVX2_INLINE __m256 hbnn_avx2_chunk(__m256 acc, const int L, __m256i x, const float *len,
                                        const float *sa, const float *sb)
{
    const __m256i cnt8 = hbnn_avx2_popcnt8(x);
    if (L == 64) {
        /* per-word counts in 64-bit lanes, gathered into the low 4 int32 lanes */
        const __m256i s64 = _mm256_sad_epu8(cnt8, _mm256_setzero_si256());
        const __m256i s32 = _mm256_permutevar8x32_epi32(s64, _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6));
        const __m128 pop = _mm_cvtepi32_ps(_mm256_castsi256_si128(s32));
        const __m128 d = _mm_fnmadd_ps(pop, _mm_set1_ps(2.0f), _mm_loadu_ps(len));
        const __m128 p = _mm_mul_ps(_mm_mul_ps(_mm_loadu_ps(sa), _mm_loadu_ps(sb)), d);
        return _mm256_add_ps(acc, _mm256_castps128_ps256(p));
    }
    if (L == 32) {
        const __m256i c16 = _mm256_maddubs_epi16(cnt8, _mm256_set1_epi8(1));
        const __m256i c32 = _mm256_madd_epi16(c16, _mm256_set1_epi16(1));
        return hbnn_avx2_accum(acc, c32, len, sa, sb);
    }
    if (L == 16) {
        const __m256i c16 = _mm256_maddubs_epi16(cnt8, _mm256_set1_epi8(1));
        acc = hbnn_avx2_accum(acc, _mm256_cvtepi16_epi32(_mm256_castsi256_si128(c16)), len, sa, sb);
        return hbnn_avx2_accum(acc, _mm256_cvtepi16_epi32(_mm256_extracti128_si256(c16, 1)), len + 8, sa + 8,
                               sb + 8);
    }
    /* L == 8: 32 byte counts */
    const __m128i lo = _mm256_castsi256_si128(cnt8), hi = _mm256_extracti128_si256(cnt8, 1);
    acc = hbnn_avx2_accum(acc, _mm256_cvtepu8_epi32(lo), len, sa, sb);
    acc = hbnn_avx2_accum(acc, _mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8)), len + 8, sa + 8, sb + 8);
    acc = hbnn_avx2_accum(acc, _mm256_cvtepu8_epi32(hi), len + 16, sa + 16, sb + 16);
    return hbnn_avx2_accum(acc, _mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8)), len + 24, sa + 24, sb + 24);
}

/* Register tile of MR rows of A x NR rows of B (MR, NR <= 2), all K. */
HBNN_AVX2_INLINE void hbnn_avx2_xor_tile(const hbnn_xor_args *g, const int L, const int MR, const int NR,
                                         int64_t i, int64_t j)
{
    const int bpc = 256 / L;  /* blocks per 256-bit chunk */
    __m256 acc[2][2] = {{_mm256_setzero_ps(), _mm256_setzero_ps()}, {_mm256_setzero_ps(), _mm256_setzero_ps()}};
    const uint64_t *a[2], *b[2];
    const float *as[2], *bs[2];
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
        __m256i va[2], vb[2];
        for (int r = 0; r < MR; r++) va[r] = _mm256_loadu_si256((const __m256i *)(a[r] + 4 * k));
        for (int c = 0; c < NR; c++) vb[c] = _mm256_loadu_si256((const __m256i *)(b[c] + 4 * k));
        const int64_t blk = k * bpc;
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++)
                acc[r][c] = hbnn_avx2_chunk(acc[r][c], L, _mm256_xor_si256(va[r], vb[c]), g->len + blk,
                                            as[r] + blk, bs[c] + blk);
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, hbnn_avx2_hsum(acc[r][c]));
}

#define HBNN_AVX2_XOR_LOOP(Lc)                                                               \
    for (int64_t j = j0; j < j1; j += 2) {                                                   \
        const int nr = j + 1 < j1 ? 2 : 1;                                                   \
        int64_t i = i0;                                                                      \
        if (nr == 2) {                                                                       \
            for (; i + 1 < i1; i += 2) hbnn_avx2_xor_tile(g, Lc, 2, 2, i, j);                \
            if (i < i1) hbnn_avx2_xor_tile(g, Lc, 1, 2, i, j);                               \
        } else {                                                                             \
            for (; i + 1 < i1; i += 2) hbnn_avx2_xor_tile(g, Lc, 2, 1, i, j);                \
            if (i < i1) hbnn_avx2_xor_tile(g, Lc, 1, 1, i, j);                               \
        }                                                                                    \
    }

HBNN_AVX2 static void hbnn_xor_gemm_avx2(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    switch (g->L) {
    case 64: HBNN_AVX2_XOR_LOOP(64) break;
    case 32: HBNN_AVX2_XOR_LOOP(32) break;
    case 16: HBNN_AVX2_XOR_LOOP(16) break;
    case 8: HBNN_AVX2_XOR_LOOP(8) break;
    default: hbnn_xor_gemm_portable(g, i0, i1, j0, j1); break;  /* blocks below a byte */
    }
}

/* ---- sign GEMM: float rows against packed +-1 rows -------------------------------------------- */

/* Panel of one packed row: a float sign mask (0x80000000 where the bit is 1) per element. */
HBNN_AVX2_INLINE void hbnn_avx2_sign_masks(const uint64_t *bits, int64_t kpad, float *panel)
{
    const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    const __m256i signbit = _mm256_set1_epi32((int)0x80000000u);
    for (int64_t k = 0; k < kpad; k += 8) {
        const int byte = (int)((bits[k >> 6] >> (k & 63)) & 0xff);
        const __m256i m = _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), sel), sel);
        _mm256_store_si256((__m256i *)(panel + k), _mm256_and_si256(m, signbit));
    }
}

/* Panel of one packed row dequantized: +-scale per element (segments shorter than a vector). */
static inline void hbnn_sign_dequant(const hbnn_sign_args *g, int64_t j, float *panel)
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

/* MR float rows x NR panels; segments are whole vectors (seg % 8 == 0) or one segment per row. */
HBNN_AVX2_INLINE void hbnn_avx2_sign_tile(const hbnn_sign_args *g, const float *panel, const int MR,
                                          const int NR, int64_t i, int64_t j)
{
    const __m256 zero = _mm256_setzero_ps();
    __m256 acc[2][2] = {{zero, zero}, {zero, zero}};
    const float *f[2];
    for (int r = 0; r < MR; r++) f[r] = g->f + (i + r) * g->kpad;
    const int64_t nvec = g->kpad / 8;
    const int64_t vps = g->nseg == 1 ? nvec : g->seg / 8;  /* vectors per segment */
    for (int64_t s = 0, v0 = 0; s < g->nseg; s++, v0 += vps) {
        const int64_t v1 = v0 + vps < nvec ? v0 + vps : nvec;
        __m256 sacc[2][2] = {{zero, zero}, {zero, zero}};
        for (int64_t v = v0; v < v1; v++) {
            __m256 vf[2], vm[2];
            for (int r = 0; r < MR; r++) vf[r] = _mm256_loadu_ps(f[r] + 8 * v);
            for (int c = 0; c < NR; c++) vm[c] = _mm256_load_ps(panel + c * g->kpad + 8 * v);
            /* flipping the sign bit is the subtract: adds only inside a segment */
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++) sacc[r][c] = _mm256_add_ps(sacc[r][c], _mm256_xor_ps(vf[r], vm[c]));
        }
        for (int c = 0; c < NR; c++) {
            const __m256 sc = _mm256_set1_ps(g->scales[(j + c) * g->nseg + s]);
            for (int r = 0; r < MR; r++) acc[r][c] = _mm256_fmadd_ps(sc, sacc[r][c], acc[r][c]);
        }
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, hbnn_avx2_hsum(acc[r][c]));
}

/* Dequantized panel: plain FMA per element (segments of 2 or 4). */
HBNN_AVX2_INLINE void hbnn_avx2_dequant_tile(const hbnn_sign_args *g, const float *panel, const int MR,
                                             const int NR, int64_t i, int64_t j)
{
    const __m256 zero = _mm256_setzero_ps();
    __m256 acc[2][2] = {{zero, zero}, {zero, zero}};
    const float *f[2];
    for (int r = 0; r < MR; r++) f[r] = g->f + (i + r) * g->kpad;
    for (int64_t k = 0; k < g->kpad; k += 8) {
        __m256 vf[2], vw[2];
        for (int r = 0; r < MR; r++) vf[r] = _mm256_loadu_ps(f[r] + k);
        for (int c = 0; c < NR; c++) vw[c] = _mm256_load_ps(panel + c * g->kpad + k);
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++) acc[r][c] = _mm256_fmadd_ps(vf[r], vw[c], acc[r][c]);
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, hbnn_avx2_hsum(acc[r][c]));
}

#define HBNN_AVX2_SIGN_ROWS(TILE, NRc)                                               \
    do {                                                                             \
        int64_t i = i0;                                                              \
        for (; i + 1 < i1; i += 2) TILE(g, panel, 2, NRc, i, j);                     \
        if (i < i1) TILE(g, panel, 1, NRc, i, j);                                    \
    } while (0)

HBNN_AVX2 static void hbnn_sign_gemm_avx2(const hbnn_sign_args *g, int64_t i0, int64_t i1, int64_t j0,
                                          int64_t j1, float *panel)
{
    const int masks = g->nseg == 1 || g->seg % 8 == 0;
    for (int64_t j = j0; j < j1; j += 2) {
        const int nr = j + 1 < j1 ? 2 : 1;
        for (int c = 0; c < nr; c++) {
            if (masks)
                hbnn_avx2_sign_masks(g->bits + (j + c) * g->nwords, g->kpad, panel + c * g->kpad);
            else
                hbnn_sign_dequant(g, j + c, panel + c * g->kpad);
        }
        if (masks) {
            if (nr == 2) HBNN_AVX2_SIGN_ROWS(hbnn_avx2_sign_tile, 2);
            else HBNN_AVX2_SIGN_ROWS(hbnn_avx2_sign_tile, 1);
        } else {
            if (nr == 2) HBNN_AVX2_SIGN_ROWS(hbnn_avx2_dequant_tile, 2);
            else HBNN_AVX2_SIGN_ROWS(hbnn_avx2_dequant_tile, 1);
        }
    }
}

/* ---- fused binarize + pack --------------------------------------------------------------------- */

HBNN_AVX2 static void hbnn_pack_rows_avx2(const float *x, int64_t rows, int64_t n, int64_t xstride,
                                          const float *in_scale, const float *in_bias, int64_t seg,
                                          uint64_t *bits, int64_t bstride, float *scales, int64_t sstride, int L)
{
    /* The vector loop needs whole 8-element groups inside a segment. */
    if (seg % 8 != 0 && seg < n) {
        hbnn_pack_rows_portable(x, rows, n, xstride, in_scale, in_bias, seg, bits, bstride, scales, sstride, L);
        return;
    }
    const int64_t nw = (n + 63) / 64;
    const int64_t nseg = (n + seg - 1) / seg;
    const __m256 zero = _mm256_setzero_ps();
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * xstride;
        uint64_t *brow = bits + r * bstride;
        float *srow = scales + r * sstride;
        memset(brow, 0, (size_t)nw * sizeof(uint64_t));
        for (int64_t s = 0; s < nseg; s++) {
            const int64_t start = s * seg;
            const int64_t end = start + seg < n ? start + seg : n;
            __m256d sum0 = _mm256_setzero_pd(), sum1 = _mm256_setzero_pd();
            int64_t j = start;
            for (; j + 8 <= end; j += 8) {
                __m256 v = _mm256_loadu_ps(row + j);
                if (in_scale) v = _mm256_mul_ps(v, _mm256_loadu_ps(in_scale + j));
                if (in_bias) v = _mm256_add_ps(v, _mm256_loadu_ps(in_bias + j));
                /* ordered compare: NaN and -0.0 are not < 0, as in the reference */
                const uint64_t m = (uint64_t)_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_LT_OQ));
                brow[j >> 6] |= m << (j & 63);
                const __m256 a = _mm256_and_ps(v, absmask);
                sum0 = _mm256_add_pd(sum0, _mm256_cvtps_pd(_mm256_castps256_ps128(a)));
                sum1 = _mm256_add_pd(sum1, _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)));
            }
            double tmp[4];
            _mm256_storeu_pd(tmp, _mm256_add_pd(sum0, sum1));
            double sum = (tmp[0] + tmp[1]) + (tmp[2] + tmp[3]);
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

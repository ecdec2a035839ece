/* AVX-512 backend for x86-64 (Ice Lake / Zen 4 and later): the xor GEMM with the native popcount
 * instructions (VPOPCNTDQ for 64- and 32-bit blocks, BITALG for 16- and 8-bit blocks) on 512-bit
 * chunks. AVX2 has no vector popcount: its nibble-table popcount and the widening of byte counts were
 * most of its per-chunk work. The float side (one multiply of the two block scales and one FMA per
 * block) is what the exact contract requires and stays.
 * The sign GEMM, float GEMM and packers are the AVX2 ones (their work is float FMA, not bits).
 * Compiled with per-function target attributes like the AVX2 backend, selected at run time only on
 * CPUs with all of these extensions. Included once, by xhbnn.c, after kernels_avx2.h. */
#ifndef XHBNN_KERNELS_AVX512_H
#define XHBNN_KERNELS_AVX512_H

#include <immintrin.h>
#include "xhbnn.h"

#define HBNN_AVX512_TARGET "avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx512bitalg,avx2,fma,popcnt"
#define HBNN_AVX512 __attribute__((target(HBNN_AVX512_TARGET)))
#define HBNN_AVX512_INLINE static inline __attribute__((always_inline, target(HBNN_AVX512_TARGET)))

/* Two ways to add up sum_b sa[b] * sb[b] * (len[b] - 2 * pop[b]):
 *  - general (U = 0): d = len - 2 * pop in float, 16 blocks per vector;
 *  - uniform blocks (U = 1, every block holds L elements or none, the usual case): q = L/2 - pop is
 *    formed on the small integer lanes (before widening, 32-64 blocks per instruction) and the tile
 *    doubles its sums at the end. This saves one of the three FMA-unit operations per block (the FMA
 *    units are the bottleneck) and gives bit-identical results: every partial sum is exactly half of
 *    the general one (scaling by 2 is exact), and an empty block has scale 0 on both sides, so its
 *    q = L/2 adds exactly 0 as its d = 0 did.
 * `m` selects the blocks that exist (the others load as zero and add exactly 0). */
HBNN_AVX512_INLINE __m512 hbnn_avx512_accum(__m512 acc, const int U, __m512i cnt32, __mmask16 m, const float *len,
                                            const float *sa, const float *sb)
{
    const __m512 sab = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, sa), _mm512_maskz_loadu_ps(m, sb));
    if (U) return _mm512_fmadd_ps(sab, _mm512_cvtepi32_ps(cnt32), acc);
    const __m512 d = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(cnt32), _mm512_set1_ps(2.0f), _mm512_maskz_loadu_ps(m, len));
    return _mm512_fmadd_ps(sab, d, acc);
}

/* Mask of the first n of 16 lanes. */
HBNN_AVX512_INLINE __mmask16 hbnn_avx512_first(int n)
{
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

/* One 512-bit chunk of one (a, b) row pair, of which the first `nb` blocks exist (512 / L for a full
 * chunk, half that for the 256-bit tail chunk). L in {8, 16, 32, 64}. For L = 64 the 8 block results
 * are accumulated in lanes 0-7 (a full chunk pair is handled by hbnn_avx512_chunk_pair64). */
HBNN_AVX512_INLINE __m512 hbnn_avx512_chunk(__m512 acc, const int L, const int U, const int nb, __m512i x,
                                            const float *len, const float *sa, const float *sb)
{
    if (L == 64) {
        __m512i c = _mm512_castsi256_si512(_mm512_cvtepi64_epi32(_mm512_popcnt_epi64(x)));
        if (U) c = _mm512_sub_epi32(_mm512_set1_epi32(32), c);
        return hbnn_avx512_accum(acc, U, c, hbnn_avx512_first(nb), len, sa, sb);
    }
    if (L == 32) {
        __m512i c = _mm512_popcnt_epi32(x);
        if (U) c = _mm512_sub_epi32(_mm512_set1_epi32(16), c);
        return hbnn_avx512_accum(acc, U, c, hbnn_avx512_first(nb), len, sa, sb);
    }
    if (L == 16) {
        __m512i c = _mm512_popcnt_epi16(x);
        if (U) c = _mm512_sub_epi16(_mm512_set1_epi16(8), c);
        const __m256i lo = _mm512_castsi512_si256(c), hi = _mm512_extracti64x4_epi64(c, 1);
        acc = hbnn_avx512_accum(acc, U, U ? _mm512_cvtepi16_epi32(lo) : _mm512_cvtepu16_epi32(lo),
                                hbnn_avx512_first(nb), len, sa, sb);
        if (nb > 16)
            acc = hbnn_avx512_accum(acc, U, U ? _mm512_cvtepi16_epi32(hi) : _mm512_cvtepu16_epi32(hi),
                                    hbnn_avx512_first(nb - 16), len + 16, sa + 16, sb + 16);
        return acc;
    }
    /* L == 8: 64 byte counts, 16 at a time */
    __m512i c = _mm512_popcnt_epi8(x);
    if (U) c = _mm512_sub_epi8(_mm512_set1_epi8(4), c);
    for (int q = 0; q < 4 && q * 16 < nb; q++) {
        const __m128i part = _mm512_extracti32x4_epi32(c, 0);
        const __m128i sel = q == 0 ? part : q == 1 ? _mm512_extracti32x4_epi32(c, 1)
                                     : q == 2 ? _mm512_extracti32x4_epi32(c, 2) : _mm512_extracti32x4_epi32(c, 3);
        acc = hbnn_avx512_accum(acc, U, U ? _mm512_cvtepi8_epi32(sel) : _mm512_cvtepu8_epi32(sel),
                                hbnn_avx512_first(nb - 16 * q), len + 16 * q, sa + 16 * q, sb + 16 * q);
    }
    return acc;
}

/* L = 64, two full chunks (16 words): the 16 word counts in one int32 vector, so the conversion and
 * the float work run on full 16-lane vectors. */
HBNN_AVX512_INLINE __m512 hbnn_avx512_chunk_pair64(__m512 acc, const int U, __m512i x0, __m512i x1, const float *len,
                                                   const float *sa, const float *sb)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    __m512i c = _mm512_permutex2var_epi32(_mm512_popcnt_epi64(x0), even, _mm512_popcnt_epi64(x1));
    if (U) c = _mm512_sub_epi32(_mm512_set1_epi32(32), c);
    return hbnn_avx512_accum(acc, U, c, (__mmask16)0xffff, len, sa, sb);
}

/* The four sums of a[0..3] as one vector [sum a0, sum a1, sum a2, sum a3]. */
HBNN_AVX512_INLINE __m128 hbnn_avx512_hsum4(const __m512 *a)
{
    __m256 h[4];
    for (int c = 0; c < 4; c++)
        h[c] = _mm256_add_ps(_mm512_castps512_ps256(a[c]), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a[c]), 1)));
    /* per 128-bit lane: [a0 a1 a2 a3] partial sums; then the two lanes added */
    const __m256 q = _mm256_hadd_ps(_mm256_hadd_ps(h[0], h[1]), _mm256_hadd_ps(h[2], h[3]));
    return _mm_add_ps(_mm256_castps256_ps128(q), _mm256_extractf128_ps(q, 1));
}

/* Epilogue for 4 consecutive output columns j..j+3 (max with 0 first keeps NaN, as the scalar path). */
HBNN_AVX512_INLINE void hbnn_avx512_store4(const hbnn_epilogue *ep, int64_t j, __m128 acc, float *out)
{
    if (ep->scale) acc = _mm_mul_ps(acc, _mm_loadu_ps(ep->scale + j));
    if (ep->bias) acc = _mm_add_ps(acc, _mm_loadu_ps(ep->bias + j));
    if (ep->relu) acc = _mm_max_ps(_mm_setzero_ps(), acc);
    _mm_storeu_ps(out, acc);
}

/* Register tile of MR rows of A x NR rows of B (MR <= 2, NR <= 4), all K. Four columns share one
 * reduction of their accumulators and a vector epilogue; at K of a few hundred bits the per-output
 * reduction otherwise costs as much as the popcounts. */
HBNN_AVX512_INLINE void hbnn_avx512_xor_tile(const hbnn_xor_args *g, const int L, const int U, const int MR,
                                             const int NR, int64_t i, int64_t j)
{
    const int bpc = 512 / L;  /* blocks per 512-bit chunk */
    __m512 acc[2][4];
    const uint64_t *a[2], *b[4];
    const float *as[2], *bs[4];
    for (int r = 0; r < MR; r++) {
        a[r] = g->a + (i + r) * g->kwords;
        as[r] = g->as + (i + r) * g->nblk;
        for (int c = 0; c < NR; c++) acc[r][c] = _mm512_setzero_ps();
    }
    for (int c = 0; c < NR; c++) {
        b[c] = g->b + (j + c) * g->kwords;
        bs[c] = g->bs + (j + c) * g->nblk;
    }
    const int64_t chunks = g->kwords / 8;  /* full 512-bit chunks; rows are padded to 256 bits */
    int64_t k = 0;
    if (L == 64) {
        for (; k + 1 < chunks; k += 2) {
            __m512i va[2][2];
            for (int r = 0; r < MR; r++) {
                va[r][0] = _mm512_loadu_si512(a[r] + 8 * k);
                va[r][1] = _mm512_loadu_si512(a[r] + 8 * k + 8);
            }
            const int64_t blk = k * 8;
            for (int c = 0; c < NR; c++) {
                const __m512i vb0 = _mm512_loadu_si512(b[c] + 8 * k), vb1 = _mm512_loadu_si512(b[c] + 8 * k + 8);
                for (int r = 0; r < MR; r++)
                    acc[r][c] = hbnn_avx512_chunk_pair64(acc[r][c], U, _mm512_xor_si512(va[r][0], vb0),
                                                         _mm512_xor_si512(va[r][1], vb1), g->len + blk,
                                                         as[r] + blk, bs[c] + blk);
            }
        }
    }
    for (; k < chunks; k++) {
        __m512i va[2];
        for (int r = 0; r < MR; r++) va[r] = _mm512_loadu_si512(a[r] + 8 * k);
        const int64_t blk = k * bpc;
        for (int c = 0; c < NR; c++) {
            const __m512i vb = _mm512_loadu_si512(b[c] + 8 * k);
            for (int r = 0; r < MR; r++)
                acc[r][c] = hbnn_avx512_chunk(acc[r][c], L, U, bpc, _mm512_xor_si512(va[r], vb), g->len + blk,
                                              as[r] + blk, bs[c] + blk);
        }
    }
    if (g->kwords % 8) {
        /* the last 256 bits: the upper half of the chunk loads as zero (no bits, no blocks) */
        __m512i va[2];
        for (int r = 0; r < MR; r++) va[r] = _mm512_maskz_loadu_epi64(0x0f, a[r] + 8 * k);
        const int64_t blk = k * bpc;
        for (int c = 0; c < NR; c++) {
            const __m512i vb = _mm512_maskz_loadu_epi64(0x0f, b[c] + 8 * k);
            for (int r = 0; r < MR; r++)
                acc[r][c] = hbnn_avx512_chunk(acc[r][c], L, U, bpc / 2, _mm512_xor_si512(va[r], vb), g->len + blk,
                                              as[r] + blk, bs[c] + blk);
        }
    }
    if (U)
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++) acc[r][c] = _mm512_add_ps(acc[r][c], acc[r][c]);
    for (int r = 0; r < MR; r++) {
        float *out = g->out + (i + r) * g->ldo + j;
        if (NR == 4) {
            hbnn_avx512_store4(&g->ep, j, hbnn_avx512_hsum4(acc[r]), out);
            continue;
        }
        for (int c = 0; c < NR; c++) out[c] = hbnn_apply_epilogue(&g->ep, j + c, _mm512_reduce_add_ps(acc[r][c]));
    }
}

/* Columns in groups of NRMAX (4 or 2), the last few one at a time. */
#define HBNN_AVX512_XOR_LOOP(Lc, U, NRMAX)                                                   \
    for (int64_t j = j0; j < j1;) {                                                          \
        const int nr = j + NRMAX <= j1 ? NRMAX : 1;                                          \
        int64_t i = i0;                                                                      \
        if (nr == NRMAX) {                                                                   \
            for (; i + 1 < i1; i += 2) hbnn_avx512_xor_tile(g, Lc, U, 2, NRMAX, i, j);       \
            if (i < i1) hbnn_avx512_xor_tile(g, Lc, U, 1, NRMAX, i, j);                      \
        } else {                                                                             \
            for (; i + 1 < i1; i += 2) hbnn_avx512_xor_tile(g, Lc, U, 2, 1, i, j);           \
            if (i < i1) hbnn_avx512_xor_tile(g, Lc, U, 1, 1, i, j);                          \
        }                                                                                    \
        j += nr;                                                                             \
    }

/* Whether every block holds L real elements or none (true unless a pixel's C is not a multiple of L). */
static int hbnn_uniform_blocks(const hbnn_xor_args *g)
{
    for (int64_t b = 0; b < g->nblk; b++)
        if (g->len[b] != 0.0f && g->len[b] != (float)g->L) return 0;
    return 1;
}

HBNN_AVX512 static void hbnn_xor_gemm_avx512(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0,
                                             int64_t j1)
{
    const int uniform = hbnn_uniform_blocks(g);
    switch (g->L * 2 + uniform) {
    case 129: HBNN_AVX512_XOR_LOOP(64, 1, 4) break;
    case 128: HBNN_AVX512_XOR_LOOP(64, 0, 4) break;
    case 65: HBNN_AVX512_XOR_LOOP(32, 1, 4) break;
    case 64: HBNN_AVX512_XOR_LOOP(32, 0, 4) break;
    case 33: HBNN_AVX512_XOR_LOOP(16, 1, 4) break;
    case 32: HBNN_AVX512_XOR_LOOP(16, 0, 4) break;
    case 17: HBNN_AVX512_XOR_LOOP(8, 1, 2) break;  /* four byte-block columns spill registers: slower */
    case 16: HBNN_AVX512_XOR_LOOP(8, 0, 2) break;
    default: hbnn_xor_gemm_portable(g, i0, i1, j0, j1); break;  /* blocks below a byte */
    }
}

#endif

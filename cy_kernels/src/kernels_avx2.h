/* AVX2 + FMA + POPCNT backend for x86-64. Compiled into every x86-64 build with per-function target
 * attributes (no global -mavx2), and selected at run time only on CPUs that have these extensions.
 * Included once, by xhbnn.c, after kernels_portable.h (which handles block widths below 8). */
#ifndef XHBNN_KERNELS_AVX2_H
#define XHBNN_KERNELS_AVX2_H

#if !defined(__x86_64__) && !defined(_M_X64)
#error "kernels_avx2.h is for x86-64 only"
#endif

#include "xhbnn.h"

#ifdef HBNN_SIMDE_X86
/* The emulated AVX-512 test build (xhbnn_avx512_simde.c), which also uses this file's sign panel and
 * packer: SIMDe's portable intrinsics, no target attribute (see kernels_avx512.h). */
#include "simde_x86.h"
#define HBNN_AVX2
#define HBNN_AVX2_INLINE static inline __attribute__((always_inline))
#else
#include <immintrin.h>
#define HBNN_AVX2 __attribute__((target("avx2,fma,popcnt")))
#define HBNN_AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,popcnt")))
#endif

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

/* Epilogue for 8 consecutive output columns j..j+7, stored to out[0..7]. max(0, y) with 0 first:
 * vmaxps returns its second operand for NaN, so NaN stays NaN like the scalar path. */
HBNN_AVX2_INLINE void hbnn_avx2_store8(const hbnn_epilogue *ep, int64_t j, __m256 acc, float *out)
{
    if (ep->scale) acc = _mm256_mul_ps(acc, _mm256_loadu_ps(ep->scale + j));
    if (ep->bias) acc = _mm256_add_ps(acc, _mm256_loadu_ps(ep->bias + j));
    if (ep->relu) acc = _mm256_max_ps(_mm256_setzero_ps(), acc);
    _mm256_storeu_ps(out, acc);
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
    int64_t k = 0;
    if (L == 64) {
        /* two chunks at once: 8 word counts packed into one int32 vector -> one convert and
         * one multiply + FMA per 8 words instead of per 4 */
        const __m256i order = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
        for (; k + 1 < chunks; k += 2) {
            __m256i va[2][2], vb[2][2];
            for (int r = 0; r < MR; r++) {
                va[r][0] = _mm256_loadu_si256((const __m256i *)(a[r] + 4 * k));
                va[r][1] = _mm256_loadu_si256((const __m256i *)(a[r] + 4 * k + 4));
            }
            for (int c = 0; c < NR; c++) {
                vb[c][0] = _mm256_loadu_si256((const __m256i *)(b[c] + 4 * k));
                vb[c][1] = _mm256_loadu_si256((const __m256i *)(b[c] + 4 * k + 4));
            }
            const int64_t blk = k * 4;
            for (int r = 0; r < MR; r++)
                for (int c = 0; c < NR; c++) {
                    const __m256i s0 = _mm256_sad_epu8(hbnn_avx2_popcnt8(_mm256_xor_si256(va[r][0], vb[c][0])),
                                                       _mm256_setzero_si256());
                    const __m256i s1 = _mm256_sad_epu8(hbnn_avx2_popcnt8(_mm256_xor_si256(va[r][1], vb[c][1])),
                                                       _mm256_setzero_si256());
                    /* int32 lanes [w0 w4 w1 w5 w2 w6 w3 w7] -> [w0 .. w7] */
                    const __m256i p = _mm256_permutevar8x32_epi32(_mm256_or_si256(s0, _mm256_slli_epi64(s1, 32)), order);
                    acc[r][c] = hbnn_avx2_accum(acc[r][c], p, g->len + blk, as[r] + blk, bs[c] + blk);
                }
        }
    }
    for (; k < chunks; k++) {
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

/* ---- xor GEMM, L = 64 with runs (hbnn_xor_args.run): integer counts per run ------------------------
 * Runs of 2 words (beta = inf on a 128-channel conv: one pixel per 128-bit lane) and runs of a multiple
 * of 4 words from 8 on (512-channel convs, dense rows) share one scale pair per run, so the byte counts
 * of a run add up as integers and the float work is done once per run, for the 8 (row, filter) pairs
 * of a 2 x 4 tile in one vector. Per 256 bits and pair the loop is XOR and the nibble-table popcount;
 * per run, 8 pairs' byte counts are reduced together: VPMADDUBSW to 16-bit pair sums, VPACKUSWB of two
 * pairs into one vector, VPSADBW (one 64-bit sum per pair and 128-bit lane), then the lanes of four
 * such vectors are packed into [p0 p2 p1 p3 p4 p6 p5 p7] int32 lanes. The per-word path did a
 * convert, a multiply and an FMA per 8 words and pair. Float results differ from it only by the order
 * of the additions (one FMA per run instead of per word). */
#define HBNN_AVX2_RUN_CHUNKS 15  /* 16-bit sums of two byte counts stay <= 2 * 8 * 15 = 240 for VPACKUSWB */

/* Counts of 8 pairs from their byte counts c[0..7] (pairs: row r = p / 4, filter p % 4): one int32 per
 * pair and 128-bit lane; lo = lane 0 (words 0-1 of the chunk), hi = lane 1 (words 2-3), each in the
 * pair order [0 2 1 3 4 6 5 7]. */
HBNN_AVX2_INLINE void hbnn_avx2_reduce8(const __m256i c[8], __m256i *lo, __m256i *hi)
{
    const __m256i ones = _mm256_set1_epi8(1), zero = _mm256_setzero_si256();
    __m256i v[4];
    for (int q = 0; q < 4; q++) {
        const __m256i m0 = _mm256_maddubs_epi16(c[2 * q], ones), m1 = _mm256_maddubs_epi16(c[2 * q + 1], ones);
        v[q] = _mm256_sad_epu8(_mm256_packus_epi16(m0, m1), zero);  /* [p, p+1 | p, p+1] as int64 */
    }
    const __m256i x = _mm256_or_si256(v[0], _mm256_slli_epi64(v[1], 32));  /* [0 2 1 3 | 0 2 1 3] */
    const __m256i y = _mm256_or_si256(v[2], _mm256_slli_epi64(v[3], 32));  /* [4 6 5 7 | 4 6 5 7] */
    *lo = _mm256_permute2x128_si256(x, y, 0x20);
    *hi = _mm256_permute2x128_si256(x, y, 0x31);
}

/* acc += sab * (len - 2 * pop) for the 8 pairs of a tile at one run. */
HBNN_AVX2_INLINE __m256 hbnn_avx2_run_accum(__m256 acc, __m256i pop, float len, __m256 sab)
{
    const __m256 d = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(pop), _mm256_set1_ps(2.0f), _mm256_set1_ps(len));
    return _mm256_fmadd_ps(sab, d, acc);
}

/* The 8 pairs' scale products at word w, in the lane order of hbnn_avx2_reduce8. */
HBNN_AVX2_INLINE __m256 hbnn_avx2_run_scales(const float *const as[2], const float *const bs[4], int64_t w)
{
    const __m128 sb = _mm_setr_ps(bs[0][w], bs[2][w], bs[1][w], bs[3][w]);
    const __m256 b = _mm256_set_m128(sb, sb);
    const __m256 a = _mm256_set_m128(_mm_set1_ps(as[1][w]), _mm_set1_ps(as[0][w]));
    return _mm256_mul_ps(a, b);
}

/* One 2 x 4 tile at rows i, i+1 and filters j..j+3; rows past mr and filters past nr repeat the last
 * real one (every tile runs the same code) and are not stored. */
HBNN_AVX2_INLINE void hbnn_avx2_runs_tile(const hbnn_xor_args *g, int64_t i, int64_t j, int mr, int nr)
{
    const int64_t R = g->run, kw = g->kwords, nb = g->nblk;
    const uint64_t *a[2], *b[4];
    const float *as[2], *bs[4];
    for (int r = 0; r < 2; r++) {
        const int64_t ii = i + (r < mr ? r : mr - 1);
        a[r] = g->a + ii * kw;
        as[r] = g->as + ii * nb;
    }
    for (int c = 0; c < 4; c++) {
        const int64_t jj = j + (c < nr ? c : nr - 1);
        b[c] = g->b + jj * kw;
        bs[c] = g->bs + jj * nb;
    }
    __m256 acc = _mm256_setzero_ps();
    for (int64_t run = 0; run < g->nrun; run++) {
        const int64_t w0 = run * R, w1 = w0 + R;
        const __m256 sab = hbnn_avx2_run_scales(as, bs, w0);
        if (R == 2) {
            /* one chunk = this run (lane 0) and the next (lane 1) */
            __m256i c[8];
            const __m256i a0 = _mm256_loadu_si256((const __m256i *)(a[0] + w0));
            const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a[1] + w0));
            for (int q = 0; q < 4; q++) {
                const __m256i bq = _mm256_loadu_si256((const __m256i *)(b[q] + w0));
                c[q] = hbnn_avx2_popcnt8(_mm256_xor_si256(a0, bq));
                c[4 + q] = hbnn_avx2_popcnt8(_mm256_xor_si256(a1, bq));
            }
            __m256i lo, hi;
            hbnn_avx2_reduce8(c, &lo, &hi);
            acc = hbnn_avx2_run_accum(acc, lo, g->run_len[run], sab);
            if (run + 1 < g->nrun) {
                run++;
                acc = hbnn_avx2_run_accum(acc, hi, g->run_len[run], hbnn_avx2_run_scales(as, bs, w0 + 2));
            }
            continue;
        }
        float len = g->run_len[run];
        for (int64_t p0 = w0; p0 < w1; p0 += 4 * HBNN_AVX2_RUN_CHUNKS) {  /* pieces of <= 15 chunks */
            const int64_t p1 = p0 + 4 * HBNN_AVX2_RUN_CHUNKS < w1 ? p0 + 4 * HBNN_AVX2_RUN_CHUNKS : w1;
            __m256i c[8];
            for (int p = 0; p < 8; p++) c[p] = _mm256_setzero_si256();
            for (int64_t w = p0; w < p1; w += 4) {
                const __m256i a0 = _mm256_loadu_si256((const __m256i *)(a[0] + w));
                const __m256i a1 = _mm256_loadu_si256((const __m256i *)(a[1] + w));
                for (int q = 0; q < 4; q++) {
                    const __m256i bq = _mm256_loadu_si256((const __m256i *)(b[q] + w));
                    c[q] = _mm256_add_epi8(c[q], hbnn_avx2_popcnt8(_mm256_xor_si256(a0, bq)));
                    c[4 + q] = _mm256_add_epi8(c[4 + q], hbnn_avx2_popcnt8(_mm256_xor_si256(a1, bq)));
                }
            }
            __m256i lo, hi;
            hbnn_avx2_reduce8(c, &lo, &hi);
            acc = hbnn_avx2_run_accum(acc, _mm256_add_epi32(lo, hi), len, sab);
            len = 0.0f;  /* a long run's later pieces add only their counts */
        }
    }
    float sums[8];
    _mm256_storeu_ps(sums, acc);
    static const int lane[4] = {0, 2, 1, 3};  /* lane of filter c in a row's four */
    for (int r = 0; r < mr; r++)
        for (int c = 0; c < nr; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_apply_epilogue(&g->ep, j + c, sums[4 * r + lane[c]]);
}

/* Whether hbnn_avx2_runs_tile handles this plan's runs. Runs of 4 words stay on the per-word path:
 * there the per-run reduction costs as much as the per-word float work it replaces (measured on the
 * 256-channel convs, 2026-12-03: 8 % slower; runs of 2 words 7 % faster, of 8 words 18 %). */
static inline int hbnn_avx2_runs_apply(const hbnn_xor_args *g)
{
    return g->L == 64 && (g->run == 2 || (g->run >= 8 && g->run % 4 == 0));
}

HBNN_AVX2 static void hbnn_avx2_xor_runs(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t j = j0; j < j1; j += 4) {
        const int nr = j1 - j < 4 ? (int)(j1 - j) : 4;
        for (int64_t i = i0; i < i1; i += 2) hbnn_avx2_runs_tile(g, i, j, i1 - i < 2 ? 1 : 2, nr);
    }
}

HBNN_AVX2 static void hbnn_xor_gemm_avx2(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    if (hbnn_avx2_runs_apply(g)) {
        hbnn_avx2_xor_runs(g, i0, i1, j0, j1);
        return;
    }
    switch (g->L) {
    case 64: HBNN_AVX2_XOR_LOOP(64) break;
    case 32: HBNN_AVX2_XOR_LOOP(32) break;
    case 16: HBNN_AVX2_XOR_LOOP(16) break;
    case 8: HBNN_AVX2_XOR_LOOP(8) break;
    default: hbnn_xor_gemm_portable(g, i0, i1, j0, j1); break;  /* blocks below a byte */
    }
}

/* ---- sign GEMM: float rows against packed +-1 rows -------------------------------------------- */
/* Lanes run over filters: for each element k, one float of the activation row is broadcast and
 * added to 16 filters' segment sums with its sign set by the filters' bits; one FMA per segment applies
 * the 16 segment scales. The signed add is issued two ways to keep both of the CPU's FP port pairs busy:
 * filters 0-7 by XOR of the sign bit + add, filters 8-15 by an FMA with +-1.0. Multiplying by +-1.0
 * never rounds, so both are bit-identical to an add or a subtract (no scaling inside a segment).
 * The panel holds, for 16 filters, [k][0..7] sign masks, [k][8..15] +-1.0, and the scales [segment][16]
 * (zero for filters past the end). */

#define HBNN_SIGN_NF 16

HBNN_AVX2 static void hbnn_sign_panel_avx2(const hbnn_sign_args *g, int64_t j, int64_t nf, float *panel)
{
    float *sc = panel + g->k * HBNN_SIGN_NF;
    const __m256i signbit = _mm256_set1_epi32((int)0x80000000u);
    const __m256i one = _mm256_castps_si256(_mm256_set1_ps(1.0f));
    for (int64_t w = 0; w < g->nwords; w++) {
        /* word w of the 16 filters, split in 32-bit halves, one filter per lane */
        uint32_t half[2][HBNN_SIGN_NF];
        for (int64_t f = 0; f < HBNN_SIGN_NF; f++) {
            const uint64_t word = f < nf ? g->bits[(j + f) * g->nwords + w] : 0;
            half[0][f] = (uint32_t)word;
            half[1][f] = (uint32_t)(word >> 32);
        }
        for (int h = 0; h < 2; h++) {
            const __m256i lo = _mm256_loadu_si256((const __m256i *)half[h]);
            const __m256i hi = _mm256_loadu_si256((const __m256i *)(half[h] + 8));
            for (int b = 0; b < 32; b++) {
                const int64_t k = w * 64 + h * 32 + b;
                if (k >= g->k) break;
                /* bit b moved to the sign position of each lane */
                const __m128i cnt = _mm_cvtsi32_si128(31 - b);
                _mm256_store_si256((__m256i *)(panel + k * HBNN_SIGN_NF), _mm256_and_si256(_mm256_sll_epi32(lo, cnt), signbit));
                _mm256_store_si256((__m256i *)(panel + k * HBNN_SIGN_NF + 8),
                                   _mm256_or_si256(_mm256_and_si256(_mm256_sll_epi32(hi, cnt), signbit), one));
            }
        }
    }
    for (int64_t s = 0; s < g->nseg; s++)
        for (int64_t f = 0; f < HBNN_SIGN_NF; f++) sc[s * HBNN_SIGN_NF + f] = f < nf ? g->scales[(j + f) * g->nseg + s] : 0.0f;
}

/* MR rows x 16 filters, one segment at a time. */
HBNN_AVX2_INLINE void hbnn_avx2_sign_rows(const hbnn_sign_args *g, const float *panel, const int MR, int64_t i,
                                          int64_t j, int64_t nf)
{
    const float *masks = panel;
    const float *sc = panel + g->k * HBNN_SIGN_NF;
    const float *f[3];
    for (int r = 0; r < MR; r++) f[r] = g->f + (i + r) * g->kpad;
    __m256 acc[3][2];
    for (int r = 0; r < MR; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
    for (int64_t s = 0; s < g->nseg; s++) {
        const int64_t k0 = s * g->seg, k1 = k0 + g->seg < g->k ? k0 + g->seg : g->k;
        __m256 sacc[3][2];
        {
            const __m256 m0 = _mm256_load_ps(masks + k0 * HBNN_SIGN_NF), m1 = _mm256_load_ps(masks + k0 * HBNN_SIGN_NF + 8);
            _Pragma("GCC unroll 3") for (int r = 0; r < MR; r++) {
                const __m256 v = _mm256_broadcast_ss(f[r] + k0);
                sacc[r][0] = _mm256_xor_ps(v, m0);
                sacc[r][1] = _mm256_mul_ps(v, m1);
            }
        }
        for (int64_t k = k0 + 1; k < k1; k++) {
            /* flipping the sign bit is the subtract: adds only inside a segment */
            const __m256 m0 = _mm256_load_ps(masks + k * HBNN_SIGN_NF), m1 = _mm256_load_ps(masks + k * HBNN_SIGN_NF + 8);
            _Pragma("GCC unroll 3") for (int r = 0; r < MR; r++) {
                const __m256 v = _mm256_broadcast_ss(f[r] + k);
                sacc[r][0] = _mm256_add_ps(sacc[r][0], _mm256_xor_ps(v, m0));
                sacc[r][1] = _mm256_fmadd_ps(v, m1, sacc[r][1]);
            }
        }
        const __m256 s0 = _mm256_load_ps(sc + s * HBNN_SIGN_NF), s1 = _mm256_load_ps(sc + s * HBNN_SIGN_NF + 8);
        _Pragma("GCC unroll 3") for (int r = 0; r < MR; r++) {
            acc[r][0] = _mm256_fmadd_ps(s0, sacc[r][0], acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(s1, sacc[r][1], acc[r][1]);
        }
    }
    for (int r = 0; r < MR; r++) {
        float *out = g->out + (i + r) * g->ldo + j;
        if (nf == HBNN_SIGN_NF) {
            hbnn_avx2_store8(&g->ep, j, acc[r][0], out);
            hbnn_avx2_store8(&g->ep, j + 8, acc[r][1], out + 8);
            continue;
        }
        float tmp[HBNN_SIGN_NF];
        _mm256_storeu_ps(tmp, acc[r][0]);
        _mm256_storeu_ps(tmp + 8, acc[r][1]);
        for (int64_t c = 0; c < nf; c++) out[c] = hbnn_apply_epilogue(&g->ep, j + c, tmp[c]);
    }
}

HBNN_AVX2 static void hbnn_sign_gemm_avx2(const hbnn_sign_args *g, int64_t i0, int64_t i1, int64_t j0,
                                          int64_t j1, float *scratch)
{
    float *panel;
    for (int64_t j = j0; j < j1; j += HBNN_SIGN_NF) {
        const int64_t nf = j + HBNN_SIGN_NF < j1 ? HBNN_SIGN_NF : j1 - j;
        if (g->panels) {
            panel = (float *)g->panels + (j / HBNN_SIGN_NF) * HBNN_SIGN_NF * (g->kpad + g->nseg);
        } else {
            panel = scratch;
            hbnn_sign_panel_avx2(g, j, nf, panel);
        }
        int64_t i = i0;
        for (; i + 2 < i1; i += 3) hbnn_avx2_sign_rows(g, panel, 3, i, j, nf);
        if (i1 - i == 2) hbnn_avx2_sign_rows(g, panel, 2, i, j, nf);
        else if (i1 - i == 1) hbnn_avx2_sign_rows(g, panel, 1, i, j, nf);
    }
}

/* ---- float GEMM (full-precision layers): same lane layout as the sign GEMM, FMA per element ---- */

HBNN_AVX2_INLINE void hbnn_avx2_dense_rows(const hbnn_dense_args *g, const float *w, const int MR, int64_t i,
                                           int64_t j, int64_t nf)
{
    /* Named accumulators, not an array: GCC kept an acc[3][2] array on the stack (a store per FMA). */
    const int64_t k1 = g->k;
    const float *f0 = g->f + i * k1, *f1 = MR > 1 ? f0 + k1 : f0, *f2 = MR > 2 ? f0 + 2 * k1 : f0;
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a10 = a00, a11 = a00, a20 = a00, a21 = a00;
    for (int64_t k = 0; k < k1; k++) {
        const __m256 w0 = _mm256_loadu_ps(w + k * HBNN_PANEL), w1 = _mm256_loadu_ps(w + k * HBNN_PANEL + 8);
        const __m256 v0 = _mm256_broadcast_ss(f0 + k);
        a00 = _mm256_fmadd_ps(v0, w0, a00);
        a01 = _mm256_fmadd_ps(v0, w1, a01);
        if (MR > 1) {
            const __m256 v1 = _mm256_broadcast_ss(f1 + k);
            a10 = _mm256_fmadd_ps(v1, w0, a10);
            a11 = _mm256_fmadd_ps(v1, w1, a11);
        }
        if (MR > 2) {
            const __m256 v2 = _mm256_broadcast_ss(f2 + k);
            a20 = _mm256_fmadd_ps(v2, w0, a20);
            a21 = _mm256_fmadd_ps(v2, w1, a21);
        }
    }
    const __m256 acc[3][2] = {{a00, a01}, {a10, a11}, {a20, a21}};
    for (int r = 0; r < MR; r++) {
        float *out = g->out + (i + r) * g->ldo + j;
        if (nf == HBNN_PANEL) {
            hbnn_avx2_store8(&g->ep, j, acc[r][0], out);
            hbnn_avx2_store8(&g->ep, j + 8, acc[r][1], out + 8);
            continue;
        }
        float tmp[HBNN_PANEL];
        _mm256_storeu_ps(tmp, acc[r][0]);
        _mm256_storeu_ps(tmp + 8, acc[r][1]);
        for (int64_t c = 0; c < nf; c++) out[c] = hbnn_apply_epilogue(&g->ep, j + c, tmp[c]);
    }
}

HBNN_AVX2 static void hbnn_dense_gemm_avx2(const hbnn_dense_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t j = j0; j < j1; j += HBNN_PANEL) {
        const int64_t nf = j + HBNN_PANEL < j1 ? HBNN_PANEL : j1 - j;
        const float *w = g->wpanel + (j / HBNN_PANEL) * g->k * HBNN_PANEL;
        int64_t i = i0;
        for (; i + 2 < i1; i += 3) hbnn_avx2_dense_rows(g, w, 3, i, j, nf);
        if (i1 - i == 2) hbnn_avx2_dense_rows(g, w, 2, i, j, nf);
        else if (i1 - i == 1) hbnn_avx2_dense_rows(g, w, 1, i, j, nf);
    }
}

/* ---- integer scales (docs/DESIGN.md, section 9) ------------------------------------------------ */
/* Block levels every 16 bits (L = 16) or 8 bits (L = 8), int16. Per 256-bit chunk of a (patch, filter)
 * pair: XOR, nibble-table byte counts, block counts (vpmaddubsw with ones for L = 16, widened bytes for
 * L = 8), t = qa * len - (2 * qa) * pop by vpmullw (|t| <= 127 * 16), then vpmaddwd with the filter's
 * levels into int32 lanes: no float work until the one multiply per output. The patch side's qa * len
 * and 2 * qa are formed once per chunk and row and shared by the tile's filters. */

HBNN_AVX2_INLINE int32_t hbnn_avx2_hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
    return _mm_cvtsi128_si32(s);
}

/* Register tile of MR patches x NR filters (MR, NR <= 2), all K, block levels every L bits (8 or 16). */
HBNN_AVX2_INLINE void hbnn_avx2_xor_int_tile(const hbnn_xor_args *g, const int L, const int MR, const int NR,
                                             int64_t i, int64_t j)
{
    const __m256i ones8 = _mm256_set1_epi8(1);
    __m256i acc[2][2] = {{_mm256_setzero_si256(), _mm256_setzero_si256()},
                         {_mm256_setzero_si256(), _mm256_setzero_si256()}};
    const uint64_t *a[2], *b[2];
    const int16_t *aq[2], *bq[2];
    for (int r = 0; r < MR; r++) {
        a[r] = g->a + (i + r) * g->kwords;
        aq[r] = g->aq + (i + r) * g->nblk;
    }
    for (int c = 0; c < NR; c++) {
        b[c] = g->b + (j + c) * g->kwords;
        bq[c] = g->bq + (j + c) * g->nblk;
    }
    const int64_t chunks = g->kwords / 4;
    const int halves = L == 8 ? 2 : 1;   /* 16-lane int16 vectors of levels per chunk */
    for (int64_t k = 0; k < chunks; k++) {
        const int64_t blk = k * 16 * halves;
        __m256i va[2], vb[2], ql[2][2], q2[2][2], qb[2][2];
        for (int h = 0; h < halves; h++) {
            const __m256i len = _mm256_loadu_si256((const __m256i *)(g->qlen + blk + 16 * h));
            for (int r = 0; r < MR; r++) {
                const __m256i q = _mm256_loadu_si256((const __m256i *)(aq[r] + blk + 16 * h));
                ql[r][h] = _mm256_mullo_epi16(q, len);
                q2[r][h] = _mm256_add_epi16(q, q);
            }
            for (int c = 0; c < NR; c++) qb[c][h] = _mm256_loadu_si256((const __m256i *)(bq[c] + blk + 16 * h));
        }
        for (int r = 0; r < MR; r++) va[r] = _mm256_loadu_si256((const __m256i *)(a[r] + 4 * k));
        for (int c = 0; c < NR; c++) vb[c] = _mm256_loadu_si256((const __m256i *)(b[c] + 4 * k));
        for (int r = 0; r < MR; r++)
            for (int c = 0; c < NR; c++) {
                const __m256i cnt8 = hbnn_avx2_popcnt8(_mm256_xor_si256(va[r], vb[c]));
                __m256i pop[2];
                if (L == 16) {
                    pop[0] = _mm256_maddubs_epi16(cnt8, ones8);
                } else {
                    pop[0] = _mm256_cvtepu8_epi16(_mm256_castsi256_si128(cnt8));
                    pop[1] = _mm256_cvtepu8_epi16(_mm256_extracti128_si256(cnt8, 1));
                }
                for (int h = 0; h < halves; h++) {
                    const __m256i t = _mm256_sub_epi16(ql[r][h], _mm256_mullo_epi16(pop[h], q2[r][h]));
                    acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(t, qb[c][h]));
                }
            }
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_int_output(&g->ep, g->col_scale, j + c,
                                                               hbnn_avx2_hsum_epi32(acc[r][c]));
}

#define HBNN_AVX2_XOR_INT_LOOP(Lc)                                                           \
    for (int64_t j = j0; j < j1; j += 2) {                                                   \
        const int nr = j + 1 < j1 ? 2 : 1;                                                   \
        int64_t i = i0;                                                                      \
        if (nr == 2) {                                                                       \
            for (; i + 1 < i1; i += 2) hbnn_avx2_xor_int_tile(g, Lc, 2, 2, i, j);            \
            if (i < i1) hbnn_avx2_xor_int_tile(g, Lc, 1, 2, i, j);                           \
        } else {                                                                             \
            for (; i + 1 < i1; i += 2) hbnn_avx2_xor_int_tile(g, Lc, 2, 1, i, j);            \
            if (i < i1) hbnn_avx2_xor_int_tile(g, Lc, 1, 1, i, j);                           \
        }                                                                                    \
    }

HBNN_AVX2 static void hbnn_xor_int_gemm_avx2(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0,
                                             int64_t j1)
{
    switch (g->L) {
    case 16: HBNN_AVX2_XOR_INT_LOOP(16) break;
    case 8: HBNN_AVX2_XOR_INT_LOOP(8) break;
    default: hbnn_xor_int_gemm_portable(g, i0, i1, j0, j1); break;
    }
}

/* int8 GEMM (short blocks): a * w = |a| * (w with a's sign) as vpmaddubsw(|a|, vpsignb(w, a)), pairs
 * at most 2 * 127 * 127 (no saturation), then vpmaddwd with ones into int32: 32 products per three
 * instructions per (patch, filter) pair. Tile: MR patches x NR filters (MR <= 2, NR <= 4). */
HBNN_AVX2_INLINE void hbnn_avx2_int8_tile(const hbnn_int8_args *g, const int MR, const int NR, int64_t i,
                                          int64_t j)
{
    const __m256i ones16 = _mm256_set1_epi16(1);
    __m256i acc[2][4];
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++) acc[r][c] = _mm256_setzero_si256();
    const int8_t *a[2], *w[4];
    for (int r = 0; r < MR; r++) a[r] = g->a + (i + r) * g->kpad;
    for (int c = 0; c < NR; c++) w[c] = g->w + (j + c) * g->kpad;
    for (int64_t k = 0; k < g->kpad; k += 32) {
        __m256i va[2], aa[2];
        for (int r = 0; r < MR; r++) {
            va[r] = _mm256_loadu_si256((const __m256i *)(a[r] + k));
            aa[r] = _mm256_abs_epi8(va[r]);
        }
        for (int c = 0; c < NR; c++) {
            const __m256i vw = _mm256_loadu_si256((const __m256i *)(w[c] + k));
            for (int r = 0; r < MR; r++) {
                const __m256i p16 = _mm256_maddubs_epi16(aa[r], _mm256_sign_epi8(vw, va[r]));
                acc[r][c] = _mm256_add_epi32(acc[r][c], _mm256_madd_epi16(p16, ones16));
            }
        }
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_int_output(&g->ep, g->col_scale, j + c,
                                                               hbnn_avx2_hsum_epi32(acc[r][c]));
}

#define HBNN_AVX2_INT8_ROWS(NRc)                                                             \
    do {                                                                                     \
        int64_t i = i0;                                                                      \
        for (; i + 1 < i1; i += 2) hbnn_avx2_int8_tile(g, 2, NRc, i, j);                     \
        if (i < i1) hbnn_avx2_int8_tile(g, 1, NRc, i, j);                                    \
    } while (0)

HBNN_AVX2 static void hbnn_int8_gemm_avx2(const hbnn_int8_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t j = j0; j < j1; j += 4) {
        switch (j1 - j < 4 ? j1 - j : 4) {
        case 4: HBNN_AVX2_INT8_ROWS(4); break;
        case 3: HBNN_AVX2_INT8_ROWS(3); break;
        case 2: HBNN_AVX2_INT8_ROWS(2); break;
        default: HBNN_AVX2_INT8_ROWS(1); break;
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
            sum = hbnn_pack_scalar(row, in_scale, in_bias, j, end, brow, sum);
            hbnn_store_scale(srow, s, start, end, L, (float)(sum / (double)(end - start)));
        }
        hbnn_zero_tail_blocks(srow, n, L);
    }
}

#endif

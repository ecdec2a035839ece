/* AVX-512 backend for x86-64 (Ice Lake / Zen 4 and later): the xor GEMM with the native popcount
 * instructions (VPOPCNTDQ for 64- and 32-bit blocks, BITALG for 16- and 8-bit blocks) on 512-bit
 * chunks. AVX2 has no vector popcount: its nibble-table popcount and the widening of byte counts were
 * most of its per-chunk work. The float side (one multiply of the two block scales and one FMA per
 * block) is what the exact contract requires and stays.
 * The sign and float GEMMs put 16 filters in one zmm and run 4-8 rows (or 2-4 interleaved runs of k
 * for 1-2 rows) at once: the AVX2 loops, 3 rows x 2 halves, are bound by the 3-4 cycle add/FMA
 * latency, not by throughput. The sign GEMM reads its filter signs as 16-bit masks (see
 * hbnn_sign_panel_avx512). The packers are AVX2's.
 * The integer-scale GEMMs (docs/DESIGN.md, section 9) use VPOPCNTW/B and the VNNI dot products.
 * Compiled with per-function target attributes like the AVX2 backend, selected at run time only on
 * CPUs with all of these extensions. Included once, by xhbnn.c, after kernels_avx2.h; or, in the
 * emulated test build (setup.py: HBNN_SIMDE_AVX512=1), by xhbnn_avx512_simde.c against SIMDe. */
#ifndef XHBNN_KERNELS_AVX512_H
#define XHBNN_KERNELS_AVX512_H

#if !defined(__x86_64__) && !defined(_M_X64)
#error "kernels_avx512.h is for x86-64 only"
#endif

#include "xhbnn.h"

#ifdef HBNN_SIMDE_X86
/* The emulated test build (xhbnn_avx512_simde.c): SIMDe's portable intrinsics and no target
 * attribute, so that GCC emits no AVX-512 instruction (it would, for SIMDe's plain C loops, inside a
 * function compiled for an AVX-512 target) and the code runs on any x86-64 CPU. */
#include "simde_x86.h"
#define HBNN_AVX512
#define HBNN_AVX512_INLINE static inline __attribute__((always_inline))
#else
#include <immintrin.h>
/* VNNI is required (hbnn_cpu_has_avx512): every CPU with VPOPCNTDQ + BITALG has it (Ice Lake, Tiger
 * Lake, Rocket Lake, Sapphire Rapids and later, Zen 4 and later), so the integer-scale kernels use
 * vpdpwssd / vpdpbusd without a second, VNNI-less variant. */
#define HBNN_AVX512_TARGET \
    "avx512f,avx512bw,avx512vl,avx512dq,avx512vpopcntdq,avx512bitalg,avx512vnni,avx2,fma,popcnt"
#define HBNN_AVX512 __attribute__((target(HBNN_AVX512_TARGET)))
#define HBNN_AVX512_INLINE static inline __attribute__((always_inline, target(HBNN_AVX512_TARGET)))
#endif

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
    /* uniform blocks summed q = L/2 - pop: double the reduced sums (exact) */
    for (int r = 0; r < MR; r++) {
        float *out = g->out + (i + r) * g->ldo + j;
        if (NR == 4) {
            __m128 v = hbnn_avx512_hsum4(acc[r]);
            if (U) v = _mm_add_ps(v, v);
            hbnn_avx512_store4(&g->ep, j, v, out);
            continue;
        }
        for (int c = 0; c < NR; c++) {
            const float v = _mm512_reduce_add_ps(acc[r][c]);
            out[c] = hbnn_apply_epilogue(&g->ep, j + c, U ? v + v : v);
        }
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

/* One out-of-line function per (L, uniform): each gets its own register allocation (see the sign GEMM). */
#define HBNN_AVX512_XOR_FN(Lc, U, NRMAX)                                                     \
    HBNN_AVX512 __attribute__((noinline)) static void hbnn_avx512_xor_##Lc##_##U(            \
        const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)              \
    {                                                                                        \
        HBNN_AVX512_XOR_LOOP(Lc, U, NRMAX)                                                   \
    }
HBNN_AVX512_XOR_FN(64, 1, 4)
HBNN_AVX512_XOR_FN(64, 0, 4)
HBNN_AVX512_XOR_FN(32, 1, 4)
HBNN_AVX512_XOR_FN(32, 0, 4)
HBNN_AVX512_XOR_FN(16, 1, 4)
HBNN_AVX512_XOR_FN(16, 0, 4)
HBNN_AVX512_XOR_FN(8, 1, 2)  /* four byte-block columns spill registers: slower */
HBNN_AVX512_XOR_FN(8, 0, 2)

HBNN_AVX512 static void hbnn_xor_gemm_avx512(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0,
                                             int64_t j1)
{
    const int uniform = hbnn_uniform_blocks(g);
    switch (g->L * 2 + uniform) {
    case 129: hbnn_avx512_xor_64_1(g, i0, i1, j0, j1); break;
    case 128: hbnn_avx512_xor_64_0(g, i0, i1, j0, j1); break;
    case 65: hbnn_avx512_xor_32_1(g, i0, i1, j0, j1); break;
    case 64: hbnn_avx512_xor_32_0(g, i0, i1, j0, j1); break;
    case 33: hbnn_avx512_xor_16_1(g, i0, i1, j0, j1); break;
    case 32: hbnn_avx512_xor_16_0(g, i0, i1, j0, j1); break;
    case 17: hbnn_avx512_xor_8_1(g, i0, i1, j0, j1); break;
    case 16: hbnn_avx512_xor_8_0(g, i0, i1, j0, j1); break;
    default: hbnn_xor_gemm_portable(g, i0, i1, j0, j1); break;  /* blocks below a byte */
    }
}


/* ---- sign GEMM (float rows against packed +-1 rows) and float GEMM, 16 filters per zmm ---------- */

/* Epilogue for the 16 columns j..j+15 of one output row; only the first nf exist. */
HBNN_AVX512_INLINE void hbnn_avx512_store16(const hbnn_epilogue *ep, int64_t j, int64_t nf, __m512 acc, float *out)
{
    const __mmask16 m = hbnn_avx512_first((int)nf);
    if (ep->scale) acc = _mm512_mul_ps(acc, _mm512_maskz_loadu_ps(m, ep->scale + j));
    if (ep->bias) acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps(m, ep->bias + j));
    if (ep->relu) acc = _mm512_max_ps(_mm512_setzero_ps(), acc);  /* 0 first: NaN stays NaN */
    _mm512_mask_storeu_ps(out, m, acc);
}

/* Sign panel for 16 filters, bit form: the scales [segment][16 filters] (zero past nf), then one
 * 16-bit mask per element k (bit f set when filter j + f is negative at k). 2 bytes per k instead of
 * AVX2's 64-byte float rows: a batch-1 dense layer with prebuilt panels streams 32x less memory
 * (fc1 of LeNet: 50 KB instead of 1.6 MB, more than the L2 cache). Fits in hbnn_sign_panel_floats. */
/* Prebuilt panels take the bit form only for calls of few rows (memory-bound); many rows read the
 * float form faster (see hbnn_avx512_sign_rows). */
#define HBNN_AVX512_BIT_PANEL_MAX_ROWS 8

HBNN_AVX512 static void hbnn_sign_panel_avx512(const hbnn_sign_args *g, int64_t j, int64_t nf, float *panel)
{
    if (g->m > HBNN_AVX512_BIT_PANEL_MAX_ROWS) {
        hbnn_sign_panel_avx2(g, j, nf, panel);
        return;
    }
    uint16_t *masks = (uint16_t *)(panel + g->nseg * HBNN_SIGN_NF);
    for (int64_t s = 0; s < g->nseg; s++)
        for (int64_t f = 0; f < HBNN_SIGN_NF; f++) panel[s * HBNN_SIGN_NF + f] = f < nf ? g->scales[(j + f) * g->nseg + s] : 0.0f;
    const __m512i one = _mm512_set1_epi64(1);
    for (int64_t w = 0; w < g->nwords; w++) {
        /* word w of the 16 filters (missing filters: 0 = positive, their scale is 0) */
        uint64_t word[HBNN_SIGN_NF];
        for (int64_t f = 0; f < HBNN_SIGN_NF; f++) word[f] = f < nf ? g->bits[(j + f) * g->nwords + w] : 0;
        const __m512i lo = _mm512_loadu_si512(word), hi = _mm512_loadu_si512(word + 8);
        const int64_t kmax = g->k - w * 64 < 64 ? g->k - w * 64 : 64;
        for (int64_t b = 0; b < kmax; b++) {
            const __m512i bit = _mm512_slli_epi64(one, (unsigned)b);
            masks[w * 64 + b] = (uint16_t)(_mm512_test_epi64_mask(lo, bit) | (_mm512_test_epi64_mask(hi, bit) << 8));
        }
    }
}

/* MR rows x 16 filters, KU interleaved runs of k per row (MR * KU independent sums hide the latency).
 * BITS: the panel is hbnn_sign_panel_avx512's (prebuilt, few rows per call: memory-bound); else AVX2's
 * float panel (built per tile, many rows: the 16-bit masks measured 20 % slower there, 37 vs 46 G MAC/s,
 * a mask-register load + blend per element against a load + AND + OR).
 * Inside a segment each signed add is an FMA with +-1.0 (exact: no rounding but the add's). AVX2 sends
 * half of them through XOR of the sign bit + add to use the add ports too; on Zen 4 with zmm that
 * measured slower (28 G MAC/s all XOR+add, 40 mixed, 47 all FMA at 128->128 @32, beta (16,2)).
 * One FMA per segment applies the 16 filter scales. */
HBNN_AVX512_INLINE __m512 hbnn_avx512_pm1(const int BITS, const float *panel, const uint16_t *masks, int64_t k)
{
    if (BITS) return _mm512_mask_blend_ps((__mmask16)masks[k], _mm512_set1_ps(1.0f), _mm512_set1_ps(-1.0f));
    /* AVX2 panel row: sign masks for filters 0-7, +-1.0 for 8-15; (row AND signbit) OR 1.0 = 16 x +-1.0 */
    const __m512 signbit = _mm512_castsi512_ps(_mm512_set1_epi32((int)0x80000000u));
    return _mm512_or_ps(_mm512_and_ps(_mm512_loadu_ps(panel + k * HBNN_SIGN_NF), signbit), _mm512_set1_ps(1.0f));
}

HBNN_AVX512_INLINE void hbnn_avx512_sign_rows(const hbnn_sign_args *g, const float *panel, const int BITS,
                                              const int MR, const int KU, int64_t i, int64_t j, int64_t nf)
{
    const float *sc = BITS ? panel : panel + g->k * HBNN_SIGN_NF;
    const uint16_t *masks = (const uint16_t *)(panel + g->nseg * HBNN_SIGN_NF);
    const float *f[8];
    /* one scaled sum per (row, run of k): a segment ends with KU independent FMAs, not a reduction
     * chain (with one row and 16-element segments that chain stalled the loop ~40 % of the time) */
    __m512 acc[8][4], sacc[8][4];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        f[r] = g->f + (i + r) * g->kpad;
        _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) acc[r][u] = _mm512_setzero_ps();
    }
    for (int64_t s = 0; s < g->nseg; s++) {
        const int64_t k0 = s * g->seg, k1 = k0 + g->seg < g->k ? k0 + g->seg : g->k;
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
            _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) sacc[r][u] = _mm512_setzero_ps();
        int64_t k = k0;
        for (; k + KU <= k1; k += KU) {
            _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) {
                const __m512 pm1 = hbnn_avx512_pm1(BITS, panel, masks, k + u);
                _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                    sacc[r][u] = _mm512_fmadd_ps(_mm512_set1_ps(f[r][k + u]), pm1, sacc[r][u]);
            }
        }
        for (; k < k1; k++) {
            const __m512 pm1 = hbnn_avx512_pm1(BITS, panel, masks, k);
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                sacc[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(f[r][k]), pm1, sacc[r][0]);
        }
        const __m512 scale = _mm512_loadu_ps(sc + s * HBNN_SIGN_NF);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
            _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) acc[r][u] = _mm512_fmadd_ps(scale, sacc[r][u], acc[r][u]);
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        __m512 t = acc[r][0];
        _Pragma("GCC unroll 4") for (int u = 1; u < KU; u++) t = _mm512_add_ps(t, acc[r][u]);
        hbnn_avx512_store16(&g->ep, j, nf, t, g->out + (i + r) * g->ldo + j);
    }
}

/* The same for a panel's first 8 filters only, on 256-bit vectors: a layer's last panel often holds few
 * filters (LeNet's conv2: 50 = 3 x 16 + 2), and half-width vectors cost half on Zen 4. */
HBNN_AVX512_INLINE void hbnn_avx512_sign_rows8(const hbnn_sign_args *g, const float *panel, const int BITS,
                                               const int MR, const int KU, int64_t i, int64_t j, int64_t nf)
{
    const float *sc = BITS ? panel : panel + g->k * HBNN_SIGN_NF;
    const uint16_t *masks = (const uint16_t *)(panel + g->nseg * HBNN_SIGN_NF);
    const __m256 one = _mm256_set1_ps(1.0f), mone = _mm256_set1_ps(-1.0f);
    const __m256 signbit = _mm256_castsi256_ps(_mm256_set1_epi32((int)0x80000000u));
    const float *f[8];
    __m256 acc[8][4], sacc[8][4];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        f[r] = g->f + (i + r) * g->kpad;
        _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) acc[r][u] = _mm256_setzero_ps();
    }
    for (int64_t s = 0; s < g->nseg; s++) {
        const int64_t k0 = s * g->seg, k1 = k0 + g->seg < g->k ? k0 + g->seg : g->k;
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
            _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) sacc[r][u] = _mm256_setzero_ps();
        int64_t k = k0;
        for (; k < k1; k += KU) {
            _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) {
                if (k + u >= k1) break;
                /* filters 0-7 of the AVX2 float panel are sign masks: OR 1.0 gives +-1.0 */
                const __m256 pm1 = BITS ? _mm256_mask_blend_ps((__mmask8)masks[k + u], one, mone)
                                        : _mm256_or_ps(_mm256_and_ps(_mm256_loadu_ps(panel + (k + u) * HBNN_SIGN_NF), signbit), one);
                _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                    sacc[r][u] = _mm256_fmadd_ps(_mm256_set1_ps(f[r][k + u]), pm1, sacc[r][u]);
            }
        }
        const __m256 scale = _mm256_loadu_ps(sc + s * HBNN_SIGN_NF);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
            _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) acc[r][u] = _mm256_fmadd_ps(scale, sacc[r][u], acc[r][u]);
    }
    const __mmask8 m = (__mmask8)((1u << nf) - 1);
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        __m256 t = acc[r][0];
        _Pragma("GCC unroll 4") for (int u = 1; u < KU; u++) t = _mm256_add_ps(t, acc[r][u]);
        const hbnn_epilogue *ep = &g->ep;
        if (ep->scale) t = _mm256_mul_ps(t, _mm256_maskz_loadu_ps(m, ep->scale + j));
        if (ep->bias) t = _mm256_add_ps(t, _mm256_maskz_loadu_ps(m, ep->bias + j));
        if (ep->relu) t = _mm256_max_ps(_mm256_setzero_ps(), t);  /* 0 first: NaN stays NaN */
        _mm256_mask_storeu_ps(g->out + (i + r) * g->ldo + j, m, t);
    }
}

/* Rows [i0, i1) against the panel: 8 at a time, then 4, 2, 1 (with 2 or 4 runs of k for 4 or fewer). */
/* One out-of-line function per (BITS, width, MR, KU): inlined into one big function, GCC ran out of
 * general registers in some copies and kept the 8 row pointers in vector registers (a move per FMA:
 * 34 instead of 50 G MAC/s). */
#define HBNN_AVX512_SIGN_ROWS_FN(NAME, ROWS, BITS, MR, KU)                                   \
    HBNN_AVX512 __attribute__((noinline)) static void NAME(const hbnn_sign_args *g, const float *panel, \
                                                           int64_t i, int64_t j, int64_t nf) \
    {                                                                                        \
        ROWS(g, panel, BITS, MR, KU, i, j, nf);                                              \
    }
#define HBNN_AVX512_SIGN_ROWS_FNS(BITS)                                                      \
    HBNN_AVX512_SIGN_ROWS_FN(hbnn_avx512_sign16_##BITS##_8, hbnn_avx512_sign_rows, BITS, 8, 1)   \
    HBNN_AVX512_SIGN_ROWS_FN(hbnn_avx512_sign16_##BITS##_4, hbnn_avx512_sign_rows, BITS, 4, 2)   \
    HBNN_AVX512_SIGN_ROWS_FN(hbnn_avx512_sign16_##BITS##_2, hbnn_avx512_sign_rows, BITS, 2, 4)   \
    HBNN_AVX512_SIGN_ROWS_FN(hbnn_avx512_sign16_##BITS##_1, hbnn_avx512_sign_rows, BITS, 1, 4)   \
    HBNN_AVX512_SIGN_ROWS_FN(hbnn_avx512_sign8_##BITS##_8, hbnn_avx512_sign_rows8, BITS, 8, 1)   \
    HBNN_AVX512_SIGN_ROWS_FN(hbnn_avx512_sign8_##BITS##_4, hbnn_avx512_sign_rows8, BITS, 4, 2)   \
    HBNN_AVX512_SIGN_ROWS_FN(hbnn_avx512_sign8_##BITS##_1, hbnn_avx512_sign_rows8, BITS, 1, 4)
HBNN_AVX512_SIGN_ROWS_FNS(0)
HBNN_AVX512_SIGN_ROWS_FNS(1)

/* Rows [i0, i1) against one panel: 8 at a time, then 4, 2, 1 (2-4 runs of k when 4 rows or fewer). */
#define HBNN_AVX512_SIGN_ROWS_ALL(g, panel, BITS, i0, i1, j, nf)                             \
    {                                                                                        \
        int64_t i = i0;                                                                      \
        if (nf <= 8) {                                                                       \
            for (; i + 8 <= i1; i += 8) hbnn_avx512_sign8_##BITS##_8(g, panel, i, j, nf);    \
            if (i + 4 <= i1) {                                                               \
                hbnn_avx512_sign8_##BITS##_4(g, panel, i, j, nf);                            \
                i += 4;                                                                      \
            }                                                                                \
            for (; i < i1; i++) hbnn_avx512_sign8_##BITS##_1(g, panel, i, j, nf);            \
        } else {                                                                             \
            for (; i + 8 <= i1; i += 8) hbnn_avx512_sign16_##BITS##_8(g, panel, i, j, nf);   \
            if (i + 4 <= i1) {                                                               \
                hbnn_avx512_sign16_##BITS##_4(g, panel, i, j, nf);                           \
                i += 4;                                                                      \
            }                                                                                \
            if (i + 2 <= i1) {                                                               \
                hbnn_avx512_sign16_##BITS##_2(g, panel, i, j, nf);                           \
                i += 2;                                                                      \
            }                                                                                \
            if (i < i1) hbnn_avx512_sign16_##BITS##_1(g, panel, i, j, nf);                   \
        }                                                                                    \
    }

HBNN_AVX512 static void hbnn_sign_gemm_avx512(const hbnn_sign_args *g, int64_t i0, int64_t i1, int64_t j0,
                                              int64_t j1, float *scratch)
{
    for (int64_t j = j0; j < j1; j += HBNN_SIGN_NF) {
        const int64_t nf = j + HBNN_SIGN_NF < j1 ? HBNN_SIGN_NF : j1 - j;
        const float *prebuilt = g->panels ? g->panels + (j / HBNN_SIGN_NF) * HBNN_SIGN_NF * (g->kpad + g->nseg) : NULL;
        if (prebuilt && g->m <= HBNN_AVX512_BIT_PANEL_MAX_ROWS)
            HBNN_AVX512_SIGN_ROWS_ALL(g, prebuilt, 1, i0, i1, j, nf)
        else if (prebuilt)
            HBNN_AVX512_SIGN_ROWS_ALL(g, prebuilt, 0, i0, i1, j, nf)
        else {
            hbnn_sign_panel_avx2(g, j, nf, scratch);
            HBNN_AVX512_SIGN_ROWS_ALL(g, scratch, 0, i0, i1, j, nf)
        }
    }
}

/* Float GEMM: MR rows x 16 filters (one zmm per row), KU interleaved runs of k. */
HBNN_AVX512_INLINE void hbnn_avx512_dense_rows(const hbnn_dense_args *g, const float *w, const int MR, const int KU,
                                               int64_t i, int64_t j, int64_t nf)
{
    const float *f[8];
    __m512 acc[8][4];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        f[r] = g->f + (i + r) * g->k;
        _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) acc[r][u] = _mm512_setzero_ps();
    }
    int64_t k = 0;
    for (; k + KU <= g->k; k += KU) {
        _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) {
            const __m512 wk = _mm512_loadu_ps(w + (k + u) * HBNN_PANEL);
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                acc[r][u] = _mm512_fmadd_ps(_mm512_set1_ps(f[r][k + u]), wk, acc[r][u]);
        }
    }
    for (; k < g->k; k++) {
        const __m512 wk = _mm512_loadu_ps(w + k * HBNN_PANEL);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
            acc[r][0] = _mm512_fmadd_ps(_mm512_set1_ps(f[r][k]), wk, acc[r][0]);
    }
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        __m512 t = acc[r][0];
        _Pragma("GCC unroll 4") for (int u = 1; u < KU; u++) t = _mm512_add_ps(t, acc[r][u]);
        hbnn_avx512_store16(&g->ep, j, nf, t, g->out + (i + r) * g->ldo + j);
    }
}

/* The same for a panel's first 8 filters on 256-bit vectors (a layer's last panel, e.g. LeNet's conv1:
 * 20 = 16 + 4 filters). */
HBNN_AVX512_INLINE void hbnn_avx512_dense_rows8(const hbnn_dense_args *g, const float *w, const int MR, const int KU,
                                                int64_t i, int64_t j, int64_t nf)
{
    const float *f[8];
    __m256 acc[8][4];
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        f[r] = g->f + (i + r) * g->k;
        _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) acc[r][u] = _mm256_setzero_ps();
    }
    int64_t k = 0;
    for (; k + KU <= g->k; k += KU) {
        _Pragma("GCC unroll 4") for (int u = 0; u < KU; u++) {
            const __m256 wk = _mm256_loadu_ps(w + (k + u) * HBNN_PANEL);
            _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
                acc[r][u] = _mm256_fmadd_ps(_mm256_set1_ps(f[r][k + u]), wk, acc[r][u]);
        }
    }
    for (; k < g->k; k++) {
        const __m256 wk = _mm256_loadu_ps(w + k * HBNN_PANEL);
        _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++)
            acc[r][0] = _mm256_fmadd_ps(_mm256_set1_ps(f[r][k]), wk, acc[r][0]);
    }
    const __mmask8 m = (__mmask8)((1u << nf) - 1);
    const hbnn_epilogue *ep = &g->ep;
    _Pragma("GCC unroll 8") for (int r = 0; r < MR; r++) {
        __m256 t = acc[r][0];
        _Pragma("GCC unroll 4") for (int u = 1; u < KU; u++) t = _mm256_add_ps(t, acc[r][u]);
        if (ep->scale) t = _mm256_mul_ps(t, _mm256_maskz_loadu_ps(m, ep->scale + j));
        if (ep->bias) t = _mm256_add_ps(t, _mm256_maskz_loadu_ps(m, ep->bias + j));
        if (ep->relu) t = _mm256_max_ps(_mm256_setzero_ps(), t);  /* 0 first: NaN stays NaN */
        _mm256_mask_storeu_ps(g->out + (i + r) * g->ldo + j, m, t);
    }
}

#define HBNN_AVX512_DENSE_FN(MR, KU)                                                         \
    HBNN_AVX512 __attribute__((noinline)) static void hbnn_avx512_dense_##MR(                \
        const hbnn_dense_args *g, const float *w, int64_t i, int64_t j, int64_t nf)          \
    {                                                                                        \
        if (nf <= 8) hbnn_avx512_dense_rows8(g, w, MR, KU, i, j, nf);                        \
        else hbnn_avx512_dense_rows(g, w, MR, KU, i, j, nf);                                 \
    }
HBNN_AVX512_DENSE_FN(8, 1)
HBNN_AVX512_DENSE_FN(4, 2)
HBNN_AVX512_DENSE_FN(2, 4)
HBNN_AVX512_DENSE_FN(1, 4)

HBNN_AVX512 static void hbnn_dense_gemm_avx512(const hbnn_dense_args *g, int64_t i0, int64_t i1, int64_t j0,
                                               int64_t j1)
{
    for (int64_t j = j0; j < j1; j += HBNN_PANEL) {
        const int64_t nf = j + HBNN_PANEL < j1 ? HBNN_PANEL : j1 - j;
        const float *w = g->wpanel + (j / HBNN_PANEL) * g->k * HBNN_PANEL;
        int64_t i = i0;
        for (; i + 8 <= i1; i += 8) hbnn_avx512_dense_8(g, w, i, j, nf);
        if (i + 4 <= i1) {
            hbnn_avx512_dense_4(g, w, i, j, nf);
            i += 4;
        }
        if (i + 2 <= i1) {
            hbnn_avx512_dense_2(g, w, i, j, nf);
            i += 2;
        }
        if (i < i1) hbnn_avx512_dense_1(g, w, i, j, nf);
    }
}

/* ---- integer scales (docs/DESIGN.md, section 9) ------------------------------------------------ */
/* int-xor: block levels every 16 bits (L = 16) or 8 bits (L = 8), int16. Per 512-bit chunk of a
 * (patch, filter) pair: vpxorq, the block counts by vpopcntw (L = 16) or vpopcntb widened to words
 * (L = 8), t = qa * len - (2 * qa) * pop by vpmullw (|t| <= 127 * 16: int16), then vpdpwssd of t with
 * the filter's levels into int32 lanes (pairs at most 2 * 2032 * 127, no saturation in the
 * non-saturating form): no float work until the one multiply per output. qa * len and 2 * qa are
 * formed once per chunk and patch and shared by the tile's filters. Rows are padded to 256 bits, so
 * the last chunk may be half: its upper words and levels load as zero (masked loads, which never
 * touch the masked-off memory) and add exactly 0. */

/* Lane masks of the level vectors (32 int16 each) of one chunk: levels [32 h, 32 h + 32) of it. */
HBNN_AVX512_INLINE __mmask32 hbnn_avx512_level_mask(const int L, int half_chunk, int h)
{
    if (!half_chunk) return (__mmask32)0xffffffffu;
    if (L == 16) return (__mmask32)0x0000ffffu;   /* 16 blocks of 16 bits in 256 */
    return h == 0 ? (__mmask32)0xffffffffu : (__mmask32)0;  /* 32 blocks of 8 bits in 256 */
}

/* Register tile of MR patches x NR filters (MR <= 2, NR <= 4), all K, block levels every L bits. */
HBNN_AVX512_INLINE void hbnn_avx512_xor_int_tile(const hbnn_xor_args *g, const int L, const int MR, const int NR,
                                                 int64_t i, int64_t j)
{
    const int halves = L == 8 ? 2 : 1;   /* level vectors per chunk */
    __m512i acc[2][4];
    const uint64_t *a[2], *b[4];
    const int16_t *aq[2], *bq[4];
    for (int r = 0; r < MR; r++) {
        a[r] = g->a + (i + r) * g->kwords;
        aq[r] = g->aq + (i + r) * g->nblk;
        for (int c = 0; c < NR; c++) acc[r][c] = _mm512_setzero_si512();
    }
    for (int c = 0; c < NR; c++) {
        b[c] = g->b + (j + c) * g->kwords;
        bq[c] = g->bq + (j + c) * g->nblk;
    }
    const int64_t chunks = (g->kwords + 7) / 8;
    for (int64_t k = 0; k < chunks; k++) {
        const int half_chunk = 8 * k + 8 > g->kwords;
        const __mmask8 wm = half_chunk ? (__mmask8)0x0f : (__mmask8)0xff;
        const int64_t blk = k * 32 * halves;
        __mmask32 lm[2];
        __m512i va[2], ql[2][2], q2[2][2];
        for (int h = 0; h < halves; h++) {
            lm[h] = hbnn_avx512_level_mask(L, half_chunk, h);
            const __m512i len = _mm512_maskz_loadu_epi16(lm[h], g->qlen + blk + 32 * h);
            for (int r = 0; r < MR; r++) {
                const __m512i q = _mm512_maskz_loadu_epi16(lm[h], aq[r] + blk + 32 * h);
                ql[r][h] = _mm512_mullo_epi16(q, len);
                q2[r][h] = _mm512_add_epi16(q, q);
            }
        }
        for (int r = 0; r < MR; r++) va[r] = _mm512_maskz_loadu_epi64(wm, a[r] + 8 * k);
        for (int c = 0; c < NR; c++) {
            const __m512i vb = _mm512_maskz_loadu_epi64(wm, b[c] + 8 * k);
            __m512i qb[2];
            for (int h = 0; h < halves; h++) qb[h] = _mm512_maskz_loadu_epi16(lm[h], bq[c] + blk + 32 * h);
            for (int r = 0; r < MR; r++) {
                const __m512i x = _mm512_xor_si512(va[r], vb);
                __m512i pop[2];
                if (L == 16) {
                    pop[0] = _mm512_popcnt_epi16(x);
                } else {
                    const __m512i c8 = _mm512_popcnt_epi8(x);
                    pop[0] = _mm512_cvtepu8_epi16(_mm512_castsi512_si256(c8));
                    pop[1] = _mm512_cvtepu8_epi16(_mm512_extracti64x4_epi64(c8, 1));
                }
                for (int h = 0; h < halves; h++) {
                    const __m512i t = _mm512_sub_epi16(ql[r][h], _mm512_mullo_epi16(pop[h], q2[r][h]));
                    acc[r][c] = _mm512_dpwssd_epi32(acc[r][c], t, qb[h]);
                }
            }
        }
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_int_output(&g->ep, g->col_scale, j + c,
                                                               _mm512_reduce_add_epi32(acc[r][c]));
}

/* One out-of-line function per L: columns 4 at a time, the last few one at a time. */
#define HBNN_AVX512_XOR_INT_FN(Lc)                                                           \
    HBNN_AVX512 __attribute__((noinline)) static void hbnn_avx512_xor_int_##Lc(              \
        const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)              \
    {                                                                                        \
        for (int64_t j = j0; j < j1;) {                                                      \
            const int nr = j + 4 <= j1 ? 4 : 1;                                              \
            int64_t i = i0;                                                                  \
            if (nr == 4) {                                                                   \
                for (; i + 1 < i1; i += 2) hbnn_avx512_xor_int_tile(g, Lc, 2, 4, i, j);      \
                if (i < i1) hbnn_avx512_xor_int_tile(g, Lc, 1, 4, i, j);                     \
            } else {                                                                         \
                for (; i + 1 < i1; i += 2) hbnn_avx512_xor_int_tile(g, Lc, 2, 1, i, j);      \
                if (i < i1) hbnn_avx512_xor_int_tile(g, Lc, 1, 1, i, j);                     \
            }                                                                                \
            j += nr;                                                                         \
        }                                                                                    \
    }
HBNN_AVX512_XOR_INT_FN(16)
HBNN_AVX512_XOR_INT_FN(8)

HBNN_AVX512 static void hbnn_xor_int_gemm_avx512(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0,
                                                 int64_t j1)
{
    switch (g->L) {
    case 16: hbnn_avx512_xor_int_16(g, i0, i1, j0, j1); break;
    case 8: hbnn_avx512_xor_int_8(g, i0, i1, j0, j1); break;
    default: hbnn_xor_int_gemm_portable(g, i0, i1, j0, j1); break;
    }
}

/* int8 GEMM (short blocks): vpdpbusd multiplies unsigned bytes by signed bytes, so each product
 * a * w is formed as |a| * (w with a's sign): vpabsb once per patch and chunk, then per pair the
 * filter's bytes negated where a < 0 (vpmovb2m mask, masked vpsubb from zero; |w| <= 127, so -w is a
 * byte) and one vpdpbusd: 64 products into 16 int32 lanes per two instructions, exact (a product at
 * most 127 * 127, four per lane and step, int32 sums as the contract bounds them). Where a = 0 the
 * product is 0 whatever w's sign. Rows are padded to 32 bytes: a last half chunk loads its upper 32
 * bytes as zero. Tile: MR patches x NR filters (MR <= 2, NR <= 4). */
HBNN_AVX512_INLINE void hbnn_avx512_int8_tile(const hbnn_int8_args *g, const int MR, const int NR, int64_t i,
                                              int64_t j)
{
    __m512i acc[2][4];
    const int8_t *a[2], *w[4];
    for (int r = 0; r < MR; r++) {
        a[r] = g->a + (i + r) * g->kpad;
        for (int c = 0; c < NR; c++) acc[r][c] = _mm512_setzero_si512();
    }
    for (int c = 0; c < NR; c++) w[c] = g->w + (j + c) * g->kpad;
    const __m512i zero = _mm512_setzero_si512();
    for (int64_t k = 0; k < g->kpad; k += 64) {
        const __mmask64 m = k + 64 <= g->kpad ? ~(__mmask64)0 : (__mmask64)0xffffffffu;
        __m512i aa[2];
        __mmask64 neg[2];
        for (int r = 0; r < MR; r++) {
            const __m512i va = _mm512_maskz_loadu_epi8(m, a[r] + k);
            aa[r] = _mm512_abs_epi8(va);
            neg[r] = _mm512_movepi8_mask(va);
        }
        for (int c = 0; c < NR; c++) {
            const __m512i vw = _mm512_maskz_loadu_epi8(m, w[c] + k);
            for (int r = 0; r < MR; r++)
                acc[r][c] = _mm512_dpbusd_epi32(acc[r][c], aa[r], _mm512_mask_sub_epi8(vw, neg[r], zero, vw));
        }
    }
    for (int r = 0; r < MR; r++)
        for (int c = 0; c < NR; c++)
            g->out[(i + r) * g->ldo + j + c] = hbnn_int_output(&g->ep, g->col_scale, j + c,
                                                               _mm512_reduce_add_epi32(acc[r][c]));
}

#define HBNN_AVX512_INT8_ROWS(NRc)                                                           \
    do {                                                                                     \
        int64_t i = i0;                                                                      \
        for (; i + 1 < i1; i += 2) hbnn_avx512_int8_tile(g, 2, NRc, i, j);                   \
        if (i < i1) hbnn_avx512_int8_tile(g, 1, NRc, i, j);                                  \
    } while (0)

HBNN_AVX512 static void hbnn_int8_gemm_avx512(const hbnn_int8_args *g, int64_t i0, int64_t i1, int64_t j0,
                                              int64_t j1)
{
    for (int64_t j = j0; j < j1; j += 4) {
        switch (j1 - j < 4 ? j1 - j : 4) {
        case 4: HBNN_AVX512_INT8_ROWS(4); break;
        case 3: HBNN_AVX512_INT8_ROWS(3); break;
        case 2: HBNN_AVX512_INT8_ROWS(2); break;
        default: HBNN_AVX512_INT8_ROWS(1); break;
        }
    }
}

/* The backend's functions in hbnn_backend's order after the name: the table in xhbnn.c, or in the
 * emulated test build xhbnn_avx512_simde.c's. The packers are AVX2's (see the top of this file). */
#define HBNN_AVX512_FUNCTIONS                                                                \
    hbnn_xor_gemm_avx512, hbnn_sign_gemm_avx512, hbnn_pack_rows_avx2, hbnn_dense_gemm_avx512,    \
        hbnn_sign_panel_avx512, hbnn_xor_int_gemm_avx512, hbnn_int8_gemm_avx512

#endif

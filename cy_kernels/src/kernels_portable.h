/* Portable C backend: plain loops, any block width. Also the tail handler for the SIMD backends.
 * Included once, by xhbnn.c. */
#ifndef XHBNN_KERNELS_PORTABLE_H
#define XHBNN_KERNELS_PORTABLE_H

#include <math.h>
#include <string.h>
#include "xhbnn.h"

static inline float hbnn_apply_epilogue(const hbnn_epilogue *ep, int64_t j, float acc)
{
    if (ep->scale) acc *= ep->scale[j];
    if (ep->bias) acc += ep->bias[j];
    /* `acc < 0` (not fmaxf) so that NaN stays NaN through ReLU, as numpy.maximum does */
    if (ep->relu && acc < 0.0f) acc = 0.0f;
    return acc;
}

static inline int hbnn_popcount64(uint64_t x)
{
    return __builtin_popcountll(x);
}

/* Number of set bits of block t (width L) of word x. */
static inline int hbnn_block_pop(uint64_t x, int t, int L)
{
    if (L == 64) return hbnn_popcount64(x);
    return hbnn_popcount64((x >> (t * L)) & ((UINT64_C(1) << L) - 1));
}

/* L = 64 with runs: integer popcount sum per run, one float multiply-add per run. */
static void hbnn_xor_gemm_portable_runs(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    const int64_t R = g->run;
    for (int64_t i = i0; i < i1; i++) {
        const uint64_t *a = g->a + i * g->kwords;
        const float *as = g->as + i * g->nblk;
        for (int64_t j = j0; j < j1; j++) {
            const uint64_t *b = g->b + j * g->kwords;
            const float *bs = g->bs + j * g->nblk;
            float acc = 0.0f;
            for (int64_t r = 0; r < g->nrun; r++) {
                int64_t pop = 0;
                for (int64_t w = r * R; w < (r + 1) * R; w++) pop += hbnn_popcount64(a[w] ^ b[w]);
                acc += (as[r * R] * bs[r * R]) * (g->run_len[r] - 2.0f * (float)pop);
            }
            g->out[i * g->ldo + j] = hbnn_apply_epilogue(&g->ep, j, acc);
        }
    }
}

static void hbnn_xor_gemm_portable(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    if (g->L == 64 && g->run > 0) {
        hbnn_xor_gemm_portable_runs(g, i0, i1, j0, j1);
        return;
    }
    const int per_word = 64 / g->L;
    for (int64_t i = i0; i < i1; i++) {
        const uint64_t *a = g->a + i * g->kwords;
        const float *as = g->as + i * g->nblk;
        for (int64_t j = j0; j < j1; j++) {
            const uint64_t *b = g->b + j * g->kwords;
            const float *bs = g->bs + j * g->nblk;
            float acc = 0.0f;
            for (int64_t w = 0; w < g->kwords; w++) {
                const uint64_t x = a[w] ^ b[w];
                for (int t = 0; t < per_word; t++) {
                    const int64_t blk = w * per_word + t;
                    const float d = g->len[blk] - 2.0f * (float)hbnn_block_pop(x, t, g->L);
                    acc += (as[blk] * bs[blk]) * d;
                }
            }
            g->out[i * g->ldo + j] = hbnn_apply_epilogue(&g->ep, j, acc);
        }
    }
}

/* ---- integer scales (docs/DESIGN.md, section 9) ----------------------------------------------- */

/* The level of one float scale: v = s * inv; 0 for NaN and v <= 0, 127 for v >= 127, else v rounded
 * to nearest, ties to even: adding and subtracting 2^23 rounds a float in [0, 2^22) that way in the
 * default rounding mode (plain float operations, no excess precision on SSE or VFP). */
static inline int16_t hbnn_level(float s, float inv)
{
    const float v = s * inv;
    if (!(v > 0.0f)) return 0;
    if (v >= (float)HBNN_LEVEL_MAX) return HBNN_LEVEL_MAX;
    const float r = (v + 8388608.0f) - 8388608.0f;
    return (int16_t)r;
}

static inline float hbnn_int_output(const hbnn_epilogue *ep, const float *col_scale, int64_t j, int32_t acc)
{
    return hbnn_apply_epilogue(ep, j, (float)acc * col_scale[j]);
}

/* Any block width: acc += aq * bq * (len - 2 * pop) per block, in int32. */
static void hbnn_xor_int_gemm_portable(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    const int per_word = 64 / g->L;
    for (int64_t i = i0; i < i1; i++) {
        const uint64_t *a = g->a + i * g->kwords;
        const int16_t *aq = g->aq + i * g->nblk;
        for (int64_t j = j0; j < j1; j++) {
            const uint64_t *b = g->b + j * g->kwords;
            const int16_t *bq = g->bq + j * g->nblk;
            int32_t acc = 0;
            for (int64_t w = 0; w < g->kwords; w++) {
                const uint64_t x = a[w] ^ b[w];
                for (int t = 0; t < per_word; t++) {
                    const int64_t blk = w * per_word + t;
                    const int32_t d = g->qlen[blk] - 2 * hbnn_block_pop(x, t, g->L);
                    acc += (int32_t)aq[blk] * (int32_t)bq[blk] * d;
                }
            }
            g->out[i * g->ldo + j] = hbnn_int_output(&g->ep, g->col_scale, j, acc);
        }
    }
}

static void hbnn_int8_gemm_portable(const hbnn_int8_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t i = i0; i < i1; i++) {
        const int8_t *a = g->a + i * g->kpad;
        for (int64_t j = j0; j < j1; j++) {
            const int8_t *w = g->w + j * g->kpad;
            int32_t acc = 0;
            for (int64_t k = 0; k < g->k; k++) acc += (int32_t)a[k] * (int32_t)w[k];
            g->out[i * g->ldo + j] = hbnn_int_output(&g->ep, g->col_scale, j, acc);
        }
    }
}

static void hbnn_sign_gemm_portable(const hbnn_sign_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                    float *scratch)
{
    (void)scratch;
    for (int64_t i = i0; i < i1; i++) {
        const float *f = g->f + i * g->kpad;
        for (int64_t j = j0; j < j1; j++) {
            const uint64_t *bits = g->bits + j * g->nwords;
            const float *sc = g->scales + j * g->nseg;
            float acc = 0.0f;
            for (int64_t s = 0; s < g->nseg; s++) {
                const int64_t start = s * g->seg;
                const int64_t end = start + g->seg < g->k ? start + g->seg : g->k;
                float sacc = 0.0f;  /* adds and subtracts only inside a segment */
                for (int64_t k = start; k < end; k++) {
                    const float v = f[k];
                    sacc += ((bits[k >> 6] >> (k & 63)) & 1) ? -v : v;
                }
                acc += sc[s] * sacc;
            }
            g->out[i * g->ldo + j] = hbnn_apply_epilogue(&g->ep, j, acc);
        }
    }
}

static void hbnn_dense_gemm_portable(const hbnn_dense_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    for (int64_t i = i0; i < i1; i++) {
        const float *f = g->f + i * g->k;
        for (int64_t j = j0; j < j1; j++) {
            const float *w = g->wpanel + (j / HBNN_PANEL) * g->k * HBNN_PANEL + j % HBNN_PANEL;
            float acc = 0.0f;
            for (int64_t k = 0; k < g->k; k++) acc += f[k] * w[k * HBNN_PANEL];
            g->out[i * g->ldo + j] = hbnn_apply_epilogue(&g->ep, j, acc);
        }
    }
}

/* The element after the optional affine; kept as a separate multiply and add (no FMA contraction:
 * -std=c99) so the result is exactly numpy's x * s + b. */
static inline float hbnn_affine(const float *row, const float *in_scale, const float *in_bias, int64_t j)
{
    float v = row[j];
    if (in_scale) v = v * in_scale[j];
    if (in_bias) v = v + in_bias[j];
    return v;
}

/* Elements [j, end) of a row: set their sign bits in brow and return sum + their |x| (in double).
 * The whole segment for the portable backend; the tail after the vector loop for the SIMD ones. */
static inline double hbnn_pack_scalar(const float *row, const float *in_scale, const float *in_bias, int64_t j,
                                      int64_t end, uint64_t *brow, double sum)
{
    for (; j < end; j++) {
        const float v = hbnn_affine(row, in_scale, in_bias, j);
        sum += fabs((double)v);
        if (v < 0.0f) brow[j >> 6] |= UINT64_C(1) << (j & 63);
    }
    return sum;
}

/* Write one segment's scale: per segment (L == 0) or to every L-bit block it covers. */
static inline void hbnn_store_scale(float *srow, int64_t s, int64_t start, int64_t end, int L, float sc)
{
    if (L == 0) {
        srow[s] = sc;
        return;
    }
    for (int64_t b = start / L; b <= (end - 1) / L; b++) srow[b] = sc;
}

static inline void hbnn_zero_tail_blocks(float *srow, int64_t n, int L)
{
    if (L == 0) return;
    const int64_t nblk = ((n + 63) / 64) * (64 / L);
    for (int64_t b = (n - 1) / L + 1; b < nblk; b++) srow[b] = 0.0f;
}

static void hbnn_pack_rows_portable(const float *x, int64_t rows, int64_t n, int64_t xstride,
                                    const float *in_scale, const float *in_bias, int64_t seg,
                                    uint64_t *bits, int64_t bstride, float *scales, int64_t sstride, int L)
{
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
            const double sum = hbnn_pack_scalar(row, in_scale, in_bias, start, end, brow, 0.0);
            hbnn_store_scale(srow, s, start, end, L, (float)(sum / (double)(end - start)));
        }
        hbnn_zero_tail_blocks(srow, n, L);
    }
}

#endif

/* Backend selection, OpenMP tiling, im2col, and the helpers shared by every backend. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "xhbnn.h"
#include "kernels_portable.h"

#if defined(__x86_64__) || defined(_M_X64)
#define HBNN_HAVE_AVX2 1
#include "kernels_avx2.h"
#ifndef HBNN_SIMDE_AVX512
#include "kernels_avx512.h"
#endif
#endif

/* NEON hook: the NEON backend (kernels_neon.h) is enabled here. */
#if defined(__ARM_NEON) || defined(__ARM_NEON__)
#if __has_include("kernels_neon.h")
#define HBNN_HAVE_NEON 1
#include "kernels_neon.h"
#include "kernels_neon_dotprod.h"
#endif
#endif

static const hbnn_backend portable_backend = {
    "portable", hbnn_xor_gemm_portable, hbnn_sign_gemm_portable, hbnn_pack_rows_portable,
    hbnn_dense_gemm_portable, NULL, hbnn_xor_int_gemm_portable, hbnn_int8_gemm_portable};

#ifdef HBNN_HAVE_AVX2
static const hbnn_backend avx2_backend = {
    "avx2", hbnn_xor_gemm_avx2, hbnn_sign_gemm_avx2, hbnn_pack_rows_avx2, hbnn_dense_gemm_avx2,
    hbnn_sign_panel_avx2, hbnn_xor_int_gemm_avx2, hbnn_int8_gemm_avx2};
/* AVX-512: its own GEMMs, sign panels and integer-scale GEMMs (VNNI); the packers are AVX2's (an
 * AVX-512 packer measured the same: packing is bound by reading the activations). */
#ifdef HBNN_SIMDE_AVX512
/* The emulated test build (setup.py: HBNN_SIMDE_AVX512=1): the same kernels compiled against SIMDe in
 * xhbnn_avx512_simde.c, offered whatever the CPU. Never in a wheel. */
extern const hbnn_backend hbnn_avx512_simde_backend;
#else
static const hbnn_backend avx512_backend = {"avx512", HBNN_AVX512_FUNCTIONS};
#endif

static int hbnn_cpu_has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("popcnt");
}

/* VNNI is required with the rest (see kernels_avx512.h): every CPU with VPOPCNTDQ and BITALG has it,
 * so the check excludes no CPU that could otherwise run the backend (Cascade Lake and Skylake-X have
 * no VPOPCNTDQ, and run AVX2). */
static int hbnn_cpu_has_avx512(void)
{
    return hbnn_cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512vpopcntdq") && __builtin_cpu_supports("avx512bitalg") &&
           __builtin_cpu_supports("avx512vnni");
}

static const hbnn_backend *hbnn_avx512_backend(void)
{
#ifdef HBNN_SIMDE_AVX512
    return &hbnn_avx512_simde_backend;
#else
    return hbnn_cpu_has_avx512() ? &avx512_backend : NULL;
#endif
}
#endif

#ifdef HBNN_HAVE_NEON
/* kernels_neon.h defines these when it has its own integer-scale kernels */
#ifndef HBNN_NEON_XOR_INT_GEMM
#define HBNN_NEON_XOR_INT_GEMM hbnn_xor_int_gemm_portable
#endif
#ifndef HBNN_NEON_INT8_GEMM
#define HBNN_NEON_INT8_GEMM hbnn_int8_gemm_portable
#endif
#ifdef HBNN_HAVE_NEON_DOTPROD
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)   /* Linux arm64 uapi hwcap.h */
#endif
/* The int8 GEMM picks the SDOT kernel when the CPU has the dot product (A76, A78AE, N1; the
 * kernel tells through HWCAP_ASIMDDP), else the armv8.0 one. Decided once, when the backend is
 * looked up at import (single-threaded); hbnn_neon_use_dotprod switches it for tests. */
static int hbnn_dotprod_on = -1;

int hbnn_neon_dotprod_supported(void) { return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0; }

static void hbnn_int8_gemm_neon_any(const hbnn_int8_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    if (hbnn_dotprod_on > 0) hbnn_int8_gemm_neon_dotprod(g, i0, i1, j0, j1);
    else HBNN_NEON_INT8_GEMM(g, i0, i1, j0, j1);
}
#undef HBNN_NEON_INT8_GEMM
#define HBNN_NEON_INT8_GEMM hbnn_int8_gemm_neon_any
#else
int hbnn_neon_dotprod_supported(void) { return 0; }
#endif
static const hbnn_backend neon_backend = {
    "neon", hbnn_xor_gemm_neon, hbnn_sign_gemm_neon, hbnn_pack_rows_neon, hbnn_dense_gemm_neon,
    NULL,  /* sign_panel: the NEON sign GEMM builds its panels per tile */
    HBNN_NEON_XOR_INT_GEMM, HBNN_NEON_INT8_GEMM
};
#else
int hbnn_neon_dotprod_supported(void) { return 0; }
#endif

/* 1 on, 0 off; returns the state, or -1 (unchanged) when asked for SDOT on a CPU or build without it. */
int hbnn_neon_use_dotprod(int on)
{
#ifdef HBNN_HAVE_NEON_DOTPROD
    if (on && !hbnn_neon_dotprod_supported()) return -1;
    hbnn_dotprod_on = on ? 1 : 0;
    return hbnn_dotprod_on;
#else
    return on ? -1 : 0;
#endif
}

const char *hbnn_backend_variant(const hbnn_backend *be)
{
#ifdef HBNN_SIMDE_AVX512
    if (be == &hbnn_avx512_simde_backend) return "avx512-simde";
#endif
#ifdef HBNN_HAVE_NEON_DOTPROD
    if (be == &neon_backend && hbnn_dotprod_on > 0) return "neon-dotprod";
#endif
    return be->name;
}

const hbnn_backend *hbnn_portable_backend(void) { return &portable_backend; }

/* The backend of that name if this build has it and this CPU can run it, else NULL. */
const hbnn_backend *hbnn_backend_named(const char *name)
{
    if (!strcmp(name, "portable")) return &portable_backend;
#ifdef HBNN_HAVE_AVX2
    if (!strcmp(name, "avx512")) return hbnn_avx512_backend();
    if (!strcmp(name, "avx2")) return hbnn_cpu_has_avx2() ? &avx2_backend : NULL;
#endif
#ifdef HBNN_HAVE_NEON
    if (!strcmp(name, "neon")) {
#ifdef HBNN_HAVE_NEON_DOTPROD
        if (hbnn_dotprod_on < 0) hbnn_dotprod_on = hbnn_neon_dotprod_supported();
#endif
        return &neon_backend;
    }
#endif
    return NULL;
}

const hbnn_backend *hbnn_select_backend(int force_portable)
{
    static const char *const best_first[] = {"avx512", "avx2", "neon"};
    if (force_portable) return &portable_backend;
    for (size_t i = 0; i < sizeof(best_first) / sizeof(best_first[0]); i++) {
        const hbnn_backend *be = hbnn_backend_named(best_first[i]);
        if (be) return be;
    }
    return &portable_backend;
}

/* Below these many multiply-accumulates a parallel region costs more than it saves (thread wake-up,
 * and on a loaded board a barrier can wait a whole scheduler tick for a descheduled thread). */
#define HBNN_MIN_PARALLEL_BINARY_MACS (INT64_C(8) << 20)
#define HBNN_MIN_PARALLEL_FLOAT_MACS (INT64_C(2) << 20)
#define HBNN_MIN_PARALLEL_BYTES (INT64_C(256) << 10)

static int hbnn_threads(int threads)
{
#ifdef _OPENMP
    return threads > 1 ? threads : 1;
#else
    (void)threads;
    return 1;
#endif
}

/* One output tile [i0, i1) x [j0, j1) of a GEMM; `scratch` is this thread's buffer (may be NULL). */
typedef void (*hbnn_tile_fn)(const hbnn_backend *be, const void *args, int64_t i0, int64_t i1, int64_t j0,
                             int64_t j1, float *scratch);

/* Split an m x n output into tm x tn tiles and run them, on `threads` OpenMP threads when `parallel`.
 * Each tile is computed by one thread in a fixed order, so results do not depend on the thread count.
 * Each thread gets `scratch_floats` floats of 32-byte aligned scratch (none when 0). */
static void hbnn_run_tiles(const hbnn_backend *be, const void *args, hbnn_tile_fn fn, int64_t m, int64_t n,
                           int64_t tm, int64_t tn, int threads, int parallel, int64_t scratch_floats)
{
    const int64_t tj = (n + tn - 1) / tn;
    const int64_t total = ((m + tm - 1) / tm) * tj;
    const int nt = hbnn_threads(threads);
    /* No OpenMP region at all when it would run on one thread: even if(0) costs ~0.35 us (libgomp
     * builds a team of one), several times per frame on a small network. */
    if (!(nt > 1 && total > 1 && parallel)) {
        float *raw = scratch_floats ? (float *)malloc((size_t)scratch_floats * sizeof(float) + 64) : NULL;
        float *scratch = raw ? (float *)(((uintptr_t)raw + 31) & ~(uintptr_t)31) : NULL;
        for (int64_t t = 0; t < total; t++) {
            const int64_t i0 = (t / tj) * tm, j0 = (t % tj) * tn;
            fn(be, args, i0, i0 + tm < m ? i0 + tm : m, j0, j0 + tn < n ? j0 + tn : n, scratch);
        }
        free(raw);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
        float *raw = scratch_floats ? (float *)malloc((size_t)scratch_floats * sizeof(float) + 64) : NULL;
        float *scratch = raw ? (float *)(((uintptr_t)raw + 31) & ~(uintptr_t)31) : NULL;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t t = 0; t < total; t++) {
            const int64_t i0 = (t / tj) * tm, j0 = (t % tj) * tn;
            fn(be, args, i0, i0 + tm < m ? i0 + tm : m, j0, j0 + tn < n ? j0 + tn : n, scratch);
        }
        free(raw);
    }
}

void hbnn_xor_gemm_tile(const hbnn_backend *be, const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1)
{
    if (g->aq) be->xor_int_gemm(g, i0, i1, j0, j1);
    else be->xor_gemm(g, i0, i1, j0, j1);
}

static void hbnn_xor_tile(const hbnn_backend *be, const void *args, int64_t i0, int64_t i1, int64_t j0,
                          int64_t j1, float *scratch)
{
    (void)scratch;
    hbnn_xor_gemm_tile(be, (const hbnn_xor_args *)args, i0, i1, j0, j1);
}

static void hbnn_int8_tile(const hbnn_backend *be, const void *args, int64_t i0, int64_t i1, int64_t j0,
                           int64_t j1, float *scratch)
{
    (void)scratch;
    be->int8_gemm((const hbnn_int8_args *)args, i0, i1, j0, j1);
}

static void hbnn_sign_tile(const hbnn_backend *be, const void *args, int64_t i0, int64_t i1, int64_t j0,
                           int64_t j1, float *scratch)
{
    /* no scratch (out of memory for a few KB) and no prebuilt panels: the scratch-free portable loop */
    if (scratch || ((const hbnn_sign_args *)args)->panels) be->sign_gemm((const hbnn_sign_args *)args, i0, i1, j0, j1, scratch);
    else hbnn_sign_gemm_portable((const hbnn_sign_args *)args, i0, i1, j0, j1, NULL);
}

static void hbnn_dense_tile(const hbnn_backend *be, const void *args, int64_t i0, int64_t i1, int64_t j0,
                            int64_t j1, float *scratch)
{
    (void)scratch;
    be->dense_gemm((const hbnn_dense_args *)args, i0, i1, j0, j1);
}


void hbnn_xor_gemm(const hbnn_backend *be, const hbnn_xor_args *g, int threads)
{
    hbnn_run_tiles(be, g, hbnn_xor_tile, g->m, g->n, HBNN_TILE_M, HBNN_TILE_N, threads,
                   g->m * g->n * g->kwords * 64 >= HBNN_MIN_PARALLEL_BINARY_MACS, 0);
}

void hbnn_int8_gemm(const hbnn_backend *be, const hbnn_int8_args *g, int threads)
{
    hbnn_run_tiles(be, g, hbnn_int8_tile, g->m, g->n, HBNN_PANEL_TILE_M, HBNN_PANEL, threads,
                   g->m * g->n * g->kpad * 4 >= HBNN_MIN_PARALLEL_BINARY_MACS, 0);
}

void hbnn_quantize_levels(const float *s, int64_t n, float inv, int16_t *q)
{
    for (int64_t t = 0; t < n; t++) q[t] = hbnn_level(s[t], inv);
}

/* The scale of each segment exactly as the packers compute it (affine first, |v| summed in double,
 * divided by the true length, rounded to float), then its level, then level * sign per element. */
void hbnn_binarize_int8(const float *x, int64_t rows, int64_t n, const float *in_scale, const float *in_bias,
                        int64_t seg, float inv, int8_t *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        int8_t *orow = out + r * n;
        if (seg == 2) {
            /* the common short segment (beta_a = 2): the affine once per element, the double sum of two */
            int64_t j = 0;
            for (; j + 1 < n; j += 2) {
                const float a = hbnn_affine(row, in_scale, in_bias, j), b = hbnn_affine(row, in_scale, in_bias, j + 1);
                const int8_t q = (int8_t)hbnn_level((float)(((double)fabsf(a) + (double)fabsf(b)) / 2.0), inv);
                orow[j] = a < 0.0f ? (int8_t)-q : q;
                orow[j + 1] = b < 0.0f ? (int8_t)-q : q;
            }
            if (j < n) {
                const float a = hbnn_affine(row, in_scale, in_bias, j);
                const int8_t q = (int8_t)hbnn_level((float)(double)fabsf(a), inv);
                orow[j] = a < 0.0f ? (int8_t)-q : q;
            }
            continue;
        }
        for (int64_t start = 0; start < n; start += seg) {
            const int64_t end = start + seg < n ? start + seg : n;
            double sum = 0.0;
            for (int64_t j = start; j < end; j++) sum += fabs((double)hbnn_affine(row, in_scale, in_bias, j));
            const int8_t q = (int8_t)hbnn_level((float)(sum / (double)(end - start)), inv);
            for (int64_t j = start; j < end; j++) orow[j] = hbnn_affine(row, in_scale, in_bias, j) < 0.0f ? (int8_t)-q : q;
        }
    }
}

void hbnn_im2col_int8_rows(const int8_t *x, int64_t batch, int64_t h, int64_t w, int64_t c, int64_t kh,
                           int64_t kw, int64_t stride, int64_t pad, int64_t oh, int64_t ow, int8_t *dst,
                           int64_t row_len, int64_t by0, int64_t by1)
{
    (void)batch;  /* the rows [by0, by1) of batch * oh say which images */
    for (int64_t by = by0; by < by1; by++) {
        const int64_t b = by / oh, oy = by % oh;
        for (int64_t ox = 0; ox < ow; ox++) {
            int8_t *d = dst + (by * ow + ox) * row_len;
            const int64_t ix0 = ox * stride - pad;
            for (int64_t ky = 0; ky < kh; ky++) {
                const int64_t iy = oy * stride + ky - pad;
                if (iy >= 0 && iy < h && ix0 >= 0 && ix0 + kw <= w) {  /* the whole kernel row is inside */
                    memcpy(d + ky * kw * c, x + ((b * h + iy) * w + ix0) * c, (size_t)(kw * c));
                    continue;
                }
                for (int64_t kx = 0; kx < kw; kx++) {
                    const int64_t ix = ox * stride + kx - pad;
                    int8_t *dk = d + (ky * kw + kx) * c;
                    if (iy < 0 || iy >= h || ix < 0 || ix >= w) memset(dk, 0, (size_t)c);
                    else memcpy(dk, x + ((b * h + iy) * w + ix) * c, (size_t)c);
                }
            }
            memset(d + kh * kw * c, 0, (size_t)(row_len - kh * kw * c));
        }
    }
}

/* The sign GEMM expands 16 filters' sign bits and scales into a float panel per tile. */
int64_t hbnn_sign_scratch_floats(const hbnn_sign_args *g) { return 16 * (g->kpad + g->nseg) + 16; }
int64_t hbnn_sign_panel_floats(const hbnn_sign_args *g) { return 16 * (g->kpad + g->nseg); }

int hbnn_sign_build_panels(const hbnn_backend *be, const hbnn_sign_args *g, float *out)
{
    if (!be->sign_panel) return 0;
    const int64_t per = hbnn_sign_panel_floats(g);
    for (int64_t j = 0; j < g->n; j += HBNN_PANEL)
        be->sign_panel(g, j, g->n - j < HBNN_PANEL ? g->n - j : HBNN_PANEL, out + (j / HBNN_PANEL) * per);
    return 1;
}

void hbnn_sign_gemm(const hbnn_backend *be, const hbnn_sign_args *g, int threads)
{
    hbnn_run_tiles(be, g, hbnn_sign_tile, g->m, g->n, HBNN_PANEL_TILE_M, HBNN_PANEL, threads,
                   g->m * g->n * g->k >= HBNN_MIN_PARALLEL_FLOAT_MACS, g->panels ? 0 : hbnn_sign_scratch_floats(g));
}

void hbnn_dense_gemm(const hbnn_backend *be, const hbnn_dense_args *g, int threads)
{
    hbnn_run_tiles(be, g, hbnn_dense_tile, g->m, g->n, HBNN_PANEL_TILE_M, HBNN_PANEL, threads,
                   g->m * g->n * g->k >= HBNN_MIN_PARALLEL_FLOAT_MACS, 0);
}

void hbnn_pack_rows(const hbnn_backend *be, const float *x, int64_t rows, int64_t n, int64_t xstride,
                    const float *in_scale, const float *in_bias, int64_t seg,
                    uint64_t *bits, int64_t bstride, float *scales, int64_t sstride, int L, int threads)
{
    const int nt = hbnn_threads(threads);
    const int64_t chunk = 64;
    const int64_t nchunks = (rows + chunk - 1) / chunk;
    if (!(nt > 1 && nchunks > 1 && rows * n * 4 >= HBNN_MIN_PARALLEL_BYTES)) {
        be->pack_rows(x, rows, n, xstride, in_scale, in_bias, seg, bits, bstride, scales, sstride, L);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
    for (int64_t c = 0; c < nchunks; c++) {
        const int64_t r0 = c * chunk;
        const int64_t r1 = r0 + chunk < rows ? r0 + chunk : rows;
        be->pack_rows(x + r0 * xstride, r1 - r0, n, xstride, in_scale, in_bias, seg,
                      bits + r0 * bstride, bstride, scales + r0 * sstride, sstride, L);
    }
}

/* One image row of w pixels, binarized and packed into the interior of the zero-bordered image. */
static void hbnn_pack_image_row(const hbnn_backend *be, const hbnn_conv_geometry *cg, int L, int64_t by)
{
    const int64_t hp = cg->h + 2 * cg->pad, wp = cg->w + 2 * cg->pad;
    const int64_t pix = ((by / cg->h) * hp + by % cg->h + cg->pad) * wp + cg->pad;
    be->pack_rows(cg->x + by * cg->w * cg->c, cg->w, cg->c, cg->c, cg->in_scale, cg->in_bias, cg->seg,
                  cg->img_bits + pix * cg->pix_words, cg->pix_words, cg->img_scales + pix * cg->pix_blk,
                  cg->pix_blk, L);
    /* integer scales: the row's block levels, once per pixel (not once per im2col copy) */
    if (cg->img_levels)
        hbnn_quantize_levels(cg->img_scales + pix * cg->pix_blk, cg->w * cg->pix_blk, cg->inv_act,
                             cg->img_levels + pix * cg->pix_blk);
}

/* The im2col rows of one output image row: kh runs of kw packed pixels each, copied as words. */
static void hbnn_im2col_bits_row(const hbnn_conv_geometry *cg, const hbnn_xor_args *g, int64_t by)
{
    const int64_t hp = cg->h + 2 * cg->pad, wp = cg->w + 2 * cg->pad;
    const int64_t run_words = cg->kw * cg->pix_words, run_blk = cg->kw * cg->pix_blk;
    const int64_t b = by / cg->oh, y = by % cg->oh;
    for (int64_t x = 0; x < cg->ow; x++) {
        const int64_t r = by * cg->ow + x;
        uint64_t *drow = (uint64_t *)g->a + r * g->kwords;
        for (int64_t ky = 0; ky < cg->kh; ky++) {
            const int64_t pix = (b * hp + y * cg->stride + ky) * wp + x * cg->stride;
            memcpy(drow + ky * run_words, cg->img_bits + pix * cg->pix_words, (size_t)run_words * sizeof(uint64_t));
        }
        for (int64_t w = cg->kh * run_words; w < g->kwords; w++) drow[w] = 0;
        if (g->aq) {
            int16_t *qrow = g->aq + r * g->nblk;
            for (int64_t ky = 0; ky < cg->kh; ky++) {
                const int64_t pix = (b * hp + y * cg->stride + ky) * wp + x * cg->stride;
                memcpy(qrow + ky * run_blk, cg->img_levels + pix * cg->pix_blk, (size_t)run_blk * sizeof(int16_t));
            }
            for (int64_t s = cg->kh * run_blk; s < g->nblk; s++) qrow[s] = 0;
            continue;
        }
        float *srow = (float *)g->as + r * g->nblk;
        for (int64_t ky = 0; ky < cg->kh; ky++) {
            const int64_t pix = (b * hp + y * cg->stride + ky) * wp + x * cg->stride;
            memcpy(srow + ky * run_blk, cg->img_scales + pix * cg->pix_blk, (size_t)run_blk * sizeof(float));
        }
        for (int64_t s = cg->kh * run_blk; s < g->nblk; s++) srow[s] = 0.0f;
    }
}

void hbnn_conv_xor(const hbnn_backend *be, const hbnn_conv_geometry *cg, const hbnn_xor_args *g, int threads)
{
    const int64_t tj = (g->n + HBNN_TILE_N - 1) / HBNN_TILE_N;
    const int64_t tiles = ((g->m + HBNN_TILE_M - 1) / HBNN_TILE_M) * tj;
    const int nt = hbnn_threads(threads);
    if (!(nt > 1 && g->m * g->n * g->kwords * 64 >= HBNN_MIN_PARALLEL_BINARY_MACS)) {
        for (int64_t by = 0; by < cg->batch * cg->h; by++) hbnn_pack_image_row(be, cg, g->L, by);
        for (int64_t by = 0; by < cg->batch * cg->oh; by++) hbnn_im2col_bits_row(cg, g, by);
        for (int64_t t = 0; t < tiles; t++) {
            const int64_t i0 = (t / tj) * HBNN_TILE_M, j0 = (t % tj) * HBNN_TILE_N;
            hbnn_xor_gemm_tile(be, g, i0, i0 + HBNN_TILE_M < g->m ? i0 + HBNN_TILE_M : g->m, j0,
                               j0 + HBNN_TILE_N < g->n ? j0 + HBNN_TILE_N : g->n);
        }
        return;
    }
    /* one parallel region for the three phases: waking sleeping workers once, not three times */
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t by = 0; by < cg->batch * cg->h; by++) hbnn_pack_image_row(be, cg, g->L, by);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (int64_t by = 0; by < cg->batch * cg->oh; by++) hbnn_im2col_bits_row(cg, g, by);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
        for (int64_t t = 0; t < tiles; t++) {
            const int64_t i0 = (t / tj) * HBNN_TILE_M, j0 = (t % tj) * HBNN_TILE_N;
            hbnn_xor_gemm_tile(be, g, i0, i0 + HBNN_TILE_M < g->m ? i0 + HBNN_TILE_M : g->m, j0,
                               j0 + HBNN_TILE_N < g->n ? j0 + HBNN_TILE_N : g->n);
        }
    }
}

/* Row ranges of the binary conv's first two phases, for the frame executor (frame.c). */
void hbnn_conv_pack_rows(const hbnn_backend *be, const hbnn_conv_geometry *cg, int L, int64_t by0, int64_t by1)
{
    for (int64_t by = by0; by < by1; by++) hbnn_pack_image_row(be, cg, L, by);
}

void hbnn_conv_im2col_rows(const hbnn_conv_geometry *cg, const hbnn_xor_args *g, int64_t by0, int64_t by1)
{
    for (int64_t by = by0; by < by1; by++) hbnn_im2col_bits_row(cg, g, by);
}

typedef struct {
    const float *x;
    int64_t batch, h, w, c, kh, kw, stride, pad, oh, ow, row_len;
    const float *in_scale, *in_bias;  /* NULL both: no affine */
    float *dst;
} hbnn_im2col_job;

/* Copy n floats (small n): whole 4-float moves, the last one overlapping, instead of a loop of n
 * scalar moves or a memcpy call (5 floats per copy in LeNet's first layer). GCC turns copy loops
 * into memmove calls (a call per 5 floats), hence no-tree-loop-distribute-patterns on the caller. */
typedef float hbnn_f4 __attribute__((vector_size(16), aligned(4), may_alias));

static inline void hbnn_copy_floats(float *restrict dst, const float *restrict src, int64_t n)
{
    if (n < 4) {
        for (int64_t t = 0; t < n; t++) dst[t] = src[t];
        return;
    }
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) *(hbnn_f4 *)(dst + t) = *(const hbnn_f4 *)(src + t);
    if (t < n) *(hbnn_f4 *)(dst + n - 4) = *(const hbnn_f4 *)(src + n - 4);
}

/* The im2col rows of output image row `by` (all ow output pixels). */
__attribute__((optimize("no-tree-loop-distribute-patterns")))
static void hbnn_im2col_float_row(const hbnn_im2col_job *job, int64_t by)
{
    /* locals, not job->...: the stores below may alias anything, which would reload every field */
    const int64_t c = job->c, kh = job->kh, kw = job->kw, h = job->h, w = job->w, ow = job->ow;
    const int64_t stride = job->stride, pad = job->pad, row_len = job->row_len, run = kw * c;
    const float *in_scale = job->in_scale, *in_bias = job->in_bias;
    const int affine = in_scale != NULL || in_bias != NULL;
    const int64_t b = by / job->oh, oy = by % job->oh;
    const float *img = job->x + b * h * w * c;
    float *dst = job->dst + by * ow * row_len;
    /* output pixels [lo, hi) read only in-image pixels (no affine): one copy of `run` floats each */
    int64_t lo = (pad + stride - 1) / stride, hi = w + pad - kw >= 0 ? (w + pad - kw) / stride + 1 : 0;
    if (hi > ow) hi = ow;
    if (affine || lo > hi) lo = hi = 0;
    /* kernel row by kernel row, so the inner loop over output pixels is one short copy each */
    for (int64_t ky = 0; ky < kh; ky++) {
        const int64_t iy = oy * stride + ky - pad, koff = ky * run;
        if (iy < 0 || iy >= h) {
            /* padding after the affine: exact 0 */
            for (int64_t ox = 0; ox < ow; ox++)
                for (int64_t t = 0; t < run; t++) dst[ox * row_len + koff + t] = 0.0f;
            continue;
        }
        const float *row = img + iy * w * c;
        switch (run) {  /* constant sizes: the copy compiles to a few moves, no call, no inner loop */
#define HBNN_COPY_RUN_CASE(N)                                                                    \
        case N:                                                                                  \
            for (int64_t ox = lo; ox < hi; ox++)                                                 \
                memcpy(dst + ox * row_len + koff, row + (ox * stride - pad) * c, N * sizeof(float)); \
            break;
        HBNN_COPY_RUN_CASE(1) HBNN_COPY_RUN_CASE(2) HBNN_COPY_RUN_CASE(3) HBNN_COPY_RUN_CASE(4)
        HBNN_COPY_RUN_CASE(5) HBNN_COPY_RUN_CASE(6) HBNN_COPY_RUN_CASE(7) HBNN_COPY_RUN_CASE(8)
        HBNN_COPY_RUN_CASE(9) HBNN_COPY_RUN_CASE(12) HBNN_COPY_RUN_CASE(15) HBNN_COPY_RUN_CASE(16)
#undef HBNN_COPY_RUN_CASE
        default:
            for (int64_t ox = lo; ox < hi; ox++) {
                const float *s0 = row + (ox * stride - pad) * c;
                if (run >= 64) memcpy(dst + ox * row_len + koff, s0, (size_t)run * sizeof(float));
                else hbnn_copy_floats(dst + ox * row_len + koff, s0, run);
            }
        }
        /* the other output pixels: pixel by pixel, zero outside the image, affine if any */
        for (int64_t ox = 0; ox < ow; ox++) {
            if (ox >= lo && ox < hi) continue;
            float *d = dst + ox * row_len + koff;
            const int64_t ix0 = ox * stride - pad;
            for (int64_t kx = 0; kx < kw; kx++) {
                const int64_t ix = ix0 + kx;
                float *dk = d + kx * c;
                if (ix < 0 || ix >= w) {
                    for (int64_t ch = 0; ch < c; ch++) dk[ch] = 0.0f;
                } else if (!affine) {
                    hbnn_copy_floats(dk, row + ix * c, c);
                } else {
                    for (int64_t ch = 0; ch < c; ch++) dk[ch] = hbnn_affine(row + ix * c, in_scale, in_bias, ch);
                }
            }
        }
    }
    for (int64_t ox = 0; ox < ow; ox++)
        for (int64_t k = kh * run; k < row_len; k++) dst[ox * row_len + k] = 0.0f;
}

void hbnn_im2col_float(const float *x, int64_t batch, int64_t h, int64_t w, int64_t c,
                       const float *in_scale, const float *in_bias, int64_t kh, int64_t kw,
                       int64_t stride, int64_t pad, int64_t oh, int64_t ow, float *dst, int64_t row_len,
                       int threads)
{
    hbnn_im2col_job job = {x, batch, h, w, c, kh, kw, stride, pad, oh, ow, row_len, in_scale, in_bias, dst};
    const int64_t pixels = batch * h * w;
    /* The affine once per input element, not once per im2col copy (kh * kw times); padding stays an
     * exact 0 because only in-image pixels are read. Without memory for the copy: per element. */
    float *xa = in_scale || in_bias ? (float *)malloc((size_t)(pixels * c) * sizeof(float)) : NULL;
    if (xa) {
        for (int64_t p = 0; p < pixels; p++)
            for (int64_t ch = 0; ch < c; ch++) xa[p * c + ch] = hbnn_affine(x + p * c, in_scale, in_bias, ch);
        job.x = xa;
        job.in_scale = job.in_bias = NULL;
    }
    const int nt = hbnn_threads(threads);
    if (nt > 1 && batch * oh * ow * row_len * 4 >= HBNN_MIN_PARALLEL_BYTES) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(nt)
#endif
        for (int64_t by = 0; by < batch * oh; by++) hbnn_im2col_float_row(&job, by);
    } else {
        for (int64_t by = 0; by < batch * oh; by++) hbnn_im2col_float_row(&job, by);
    }
    free(xa);
}

/* Output image rows [by0, by1) of hbnn_im2col_float without an affine (the frame executor applies
 * it once beforehand, as hbnn_im2col_float does). */
void hbnn_im2col_float_rows(const float *x, int64_t batch, int64_t h, int64_t w, int64_t c, int64_t kh,
                            int64_t kw, int64_t stride, int64_t pad, int64_t oh, int64_t ow, float *dst,
                            int64_t row_len, int64_t by0, int64_t by1)
{
    hbnn_im2col_job job = {x, batch, h, w, c, kh, kw, stride, pad, oh, ow, row_len, NULL, NULL, dst};
    for (int64_t by = by0; by < by1; by++) hbnn_im2col_float_row(&job, by);
}

/* One row: scale * sign per segment. `tmp` holds the row after the affine (NULL: no affine). */
static void hbnn_binarize_row(const float *row, int64_t n, int64_t seg, float *orow)
{
    if (seg == 2) {
        /* the common short segment (beta_a = 2), written so the compiler vectorizes it */
        int64_t j = 0;
        for (; j + 1 < n; j += 2) {
            const float a = row[j], b = row[j + 1];
            const float sc = (float)(((double)fabsf(a) + (double)fabsf(b)) * 0.5);
            orow[j] = a < 0.0f ? -sc : sc;
            orow[j + 1] = b < 0.0f ? -sc : sc;
        }
        if (j < n) orow[j] = row[j] < 0.0f ? -fabsf(row[j]) : fabsf(row[j]);
        return;
    }
    for (int64_t start = 0; start < n; start += seg) {
        const int64_t end = start + seg < n ? start + seg : n;
        double sum = 0.0;
        for (int64_t j = start; j < end; j++) sum += fabs((double)row[j]);
        const float sc = (float)(sum / (double)(end - start));
        for (int64_t j = start; j < end; j++) orow[j] = row[j] < 0.0f ? -sc : sc;
    }
}

void hbnn_binarize_float(const float *x, int64_t rows, int64_t n, const float *in_scale,
                         const float *in_bias, int64_t seg, float *out)
{
    const int affine = in_scale != NULL || in_bias != NULL;
    for (int64_t r = 0; r < rows; r++) {
        const float *row = x + r * n;
        float *orow = out + r * n;
        if (affine) {
            /* apply the affine in place in the output row first, then binarize it there */
            for (int64_t j = 0; j < n; j++) orow[j] = hbnn_affine(row, in_scale, in_bias, j);
            row = orow;
        }
        hbnn_binarize_row(row, n, seg, orow);
    }
}

/* ---- small layers of the runtime: pooling and softmax (one C call instead of several ufuncs) ---- */

/* Plain C loops that GCC vectorizes: on x86-64 also compiled for AVX2 and picked at load (ifunc),
 * since the baseline build only has SSE2 (maxpool 32x32x128 -> 16x16x128: 18.6 -> 11.9 us). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
#define HBNN_MULTIVERSION __attribute__((target_clones("avx2", "default")))
#else
#define HBNN_MULTIVERSION
#endif

/* Max pooling of channel counts divisible by 16 (every conv of the zoo): 16 channels of a window
 * reduced in four 4-float vectors (GCC's generic vectors: NEON q registers, SSE/AVX lanes) and stored
 * once, instead of the output being read and written back per window element. Per lane the same
 * select as the generic loop below, so the same bits (NaN wins, as numpy.maximum). A plain array
 * accumulator here was turned into scalar compares by GCC 12 on aarch64; these vectors are not. */
typedef float hbnn_v4f __attribute__((vector_size(16)));
typedef int32_t hbnn_v4i __attribute__((vector_size(16)));

static inline hbnn_v4f hbnn_ld4(const float *p)
{
    hbnn_v4f v;
    memcpy(&v, p, sizeof v);  /* unaligned load */
    return v;
}

static inline hbnn_v4f hbnn_max4_nan(hbnn_v4f m, hbnn_v4f v)
{
    const hbnn_v4i take = (v > m) | (v != v);
    return (hbnn_v4f)(((hbnn_v4i)v & take) | ((hbnn_v4i)m & ~take));
}

static inline void hbnn_maxpool16(const float *restrict x, int64_t batch, int64_t h, int64_t w, int64_t c,
                                  int64_t k, int64_t s, float *restrict out)
{
    const int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1;
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                float *o = out + ((b * oh + oy) * ow + ox) * c;
                const float *win = x + ((b * h + oy * s) * w + ox * s) * c;
                for (int64_t c0 = 0; c0 < c; c0 += 16) {
                    hbnn_v4f m0 = hbnn_ld4(win + c0), m1 = hbnn_ld4(win + c0 + 4);
                    hbnn_v4f m2 = hbnn_ld4(win + c0 + 8), m3 = hbnn_ld4(win + c0 + 12);
                    for (int64_t ky = 0; ky < k; ky++)
                        for (int64_t kx = 0; kx < k; kx++) {
                            if (ky == 0 && kx == 0) continue;
                            const float *p = win + (ky * w + kx) * c + c0;
                            m0 = hbnn_max4_nan(m0, hbnn_ld4(p));
                            m1 = hbnn_max4_nan(m1, hbnn_ld4(p + 4));
                            m2 = hbnn_max4_nan(m2, hbnn_ld4(p + 8));
                            m3 = hbnn_max4_nan(m3, hbnn_ld4(p + 12));
                        }
                    memcpy(o + c0, &m0, sizeof m0);
                    memcpy(o + c0 + 4, &m1, sizeof m1);
                    memcpy(o + c0 + 8, &m2, sizeof m2);
                    memcpy(o + c0 + 12, &m3, sizeof m3);
                }
            }
}

HBNN_MULTIVERSION void hbnn_pool2d(const float *restrict x, int64_t batch, int64_t h, int64_t w, int64_t c,
                                   int64_t k, int64_t s, int avg, float *restrict out)
{
    if (!avg && c % 16 == 0) {
        hbnn_maxpool16(x, batch, h, w, c, k, s, out);
        return;
    }
    const int64_t oh = (h - k) / s + 1, ow = (w - k) / s + 1;
    const float inv = 1.0f / (float)(k * k);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t oy = 0; oy < oh; oy++)
            for (int64_t ox = 0; ox < ow; ox++) {
                float *o = out + ((b * oh + oy) * ow + ox) * c;
                const float *first = x + ((b * h + oy * s) * w + ox * s) * c;
                for (int64_t ch = 0; ch < c; ch++) o[ch] = first[ch];
                for (int64_t ky = 0; ky < k; ky++)
                    for (int64_t kx = 0; kx < k; kx++) {
                        if (ky == 0 && kx == 0) continue;
                        const float *p = x + ((b * h + oy * s + ky) * w + ox * s + kx) * c;
                        if (avg)
                            for (int64_t ch = 0; ch < c; ch++) o[ch] += p[ch];
                        else
                            /* NaN wins, as numpy.maximum: v > m is false for NaN, v != v catches it */
                            for (int64_t ch = 0; ch < c; ch++) o[ch] = (p[ch] > o[ch] || p[ch] != p[ch]) ? p[ch] : o[ch];
                    }
                if (avg)
                    for (int64_t ch = 0; ch < c; ch++) o[ch] *= inv;
            }
}

void hbnn_softmax(const float *x, int64_t rows, int64_t n, float *out)
{
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * n;
        float *o = out + r * n;
        float m = xr[0];
        for (int64_t j = 1; j < n; j++) m = (xr[j] > m || xr[j] != xr[j]) ? xr[j] : m;
        double sum = 0.0;
        for (int64_t j = 0; j < n; j++) {
            o[j] = expf(xr[j] - m);
            sum += o[j];
        }
        const float inv = (float)(1.0 / sum);
        for (int64_t j = 0; j < n; j++) o[j] *= inv;
    }
}

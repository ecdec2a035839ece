/* xHBNN kernels: data conventions and the backend interface.
 *
 * Conventions (stated once, see docs/DESIGN.md):
 *  - A packed row is an array of uint64 words; element j of the row is bit (j % 64) of word j / 64,
 *    least significant bit first. A bit is 1 iff the element is < 0 (zero and NaN pack as 0 = +1).
 *    Padding bits are always 0.
 *  - Binary x binary products work on "blocks": runs of L bits (L a power of two, 1..64) inside one
 *    word over which both operands' segment scales are constant. Every row carries its scales already
 *    expanded to one float per block ("block scales"); a block that holds only padding has scale 0.
 *    len[b] is the number of real elements in block b (the same for every row).
 *      out[i][j] = sum_b as[i][b] * bs[j][b] * (len[b] - 2 * popcount((a[i] ^ b[j]) in block b))
 *    With L = 64, runs of several words that share one scale pair are described once per plan
 *    (hbnn_xor_args.run): wide segments (beta >= 128, beta = inf) then cost one float operation per run.
 *  - Rows of the binary GEMM are padded to a multiple of HBNN_ROW_WORDS words (zero bits, zero scales)
 *    so SIMD backends never need a scalar tail.
 *  - Sign GEMM (one side float): out[i][j] = sum_s scale[j][s] * sum_{k in s} (bit[j][k] ? -f[i][k] : f[i][k])
 *    with f rows zero padded to a multiple of 8 floats and the packed rows in the canonical tight layout.
 */
#ifndef XHBNN_H
#define XHBNN_H

#include <stdint.h>
#include <stddef.h>

#define HBNN_ROW_WORDS 4          /* binary GEMM rows are padded to 256 bits */
#define HBNN_FLOAT_PAD 8          /* sign GEMM float rows are padded to 8 floats */

/* Per-output-column epilogue: y = acc * scale[j] + bias[j], then max(y, 0) if relu. */
typedef struct {
    const float *scale;   /* NULL: 1 */
    const float *bias;    /* NULL: 0 */
    int relu;
} hbnn_epilogue;

typedef struct {
    const uint64_t *a;    /* m rows x kwords */
    const float *as;      /* m rows x nblk block scales */
    int64_t m;
    const uint64_t *b;    /* n rows x kwords */
    const float *bs;      /* n rows x nblk */
    int64_t n;
    int64_t kwords;       /* multiple of HBNN_ROW_WORDS */
    int64_t nblk;         /* kwords * 64 / L */
    int L;                /* block width in bits: 1, 2, 4, ..., 64 */
    const float *len;     /* nblk: real elements per block */
    float *out;           /* out[i * ldo + j] */
    int64_t ldo;
    hbnn_epilogue ep;
    /* Runs (L == 64 only; run = 0: none described, each word is its own run): for r < nrun, the words [r * run, (r + 1) * run) carry one
     * scale pair in every row (a's and b's block scales are constant across them), so a kernel may add
     * their popcounts as integers and do the float work once per run:
     *   acc += as[i][r * run] * bs[j][r * run] * (run_len[r] - 2 * popcount of the run).
     * Words from nrun * run to kwords are padding (zero bits, zero scales on both sides: they add exactly
     * 0) and may be skipped. run = 1, nrun = kwords, run_len = len is always valid. */
    int64_t run;
    int64_t nrun;
    const float *run_len; /* nrun: real elements per run */
    /* Integer scales (docs/DESIGN.md, section 9), when aq != NULL: blocks carry int16 levels (0..127)
     * instead of float scales (the GEMM reads aq, bq, qlen; no runs), and per output
     *   out[i][j] = epilogue((float)(int32) sum_b aq[i][b] * bq[j][b] * (qlen[b] - 2 * pop_b) * col_scale[j])
     * exact in int32 for K <= HBNN_MAX_INT_K. A dense layer's packer writes float block scales to `as`
     * first, then hbnn_quantize_levels(as, ..., inv_act, aq); a conv quantizes its packed image instead. */
    int16_t *aq;          /* m rows x nblk */
    const int16_t *bq;    /* n rows x nblk */
    const int16_t *qlen;  /* nblk */
    const float *col_scale;  /* n: float32(act_factor * factor[j]) */
    float inv_act;        /* 1.0f / act_factor */
} hbnn_xor_args;

#define HBNN_LEVEL_MAX 127
#define HBNN_MAX_INT_K 133144   /* (2^31 - 1) / (127 * 127) */
#define HBNN_INT8_PAD 32        /* int8 GEMM rows are padded to 32 bytes (zero) */

/* Integer scales with blocks below 8 bits (e.g. beta_a = 2): an int8 GEMM of the activations'
 * level * sign against the weights' level * sign, expanded per element:
 *   out[i][j] = epilogue((float)(int32) sum_k a[i][k] * w[j][k] * col_scale[j]) */
typedef struct {
    const int8_t *a;      /* m rows x kpad (zero tail) */
    int64_t m;
    int64_t k;            /* real row length */
    int64_t kpad;         /* k rounded up to HBNN_INT8_PAD */
    const int8_t *w;      /* n rows x kpad (zero tail) */
    int64_t n;
    const float *col_scale;
    float *out;           /* out[i * ldo + j] */
    int64_t ldo;
    hbnn_epilogue ep;
} hbnn_int8_args;

typedef struct {
    const float *f;       /* m rows x kpad floats (zero tail) */
    int64_t m;
    int64_t k;            /* real row length */
    int64_t kpad;         /* k rounded up to HBNN_FLOAT_PAD */
    const uint64_t *bits; /* n rows x nwords, canonical tight packing of k elements */
    int64_t nwords;
    const float *scales;  /* n rows x nseg */
    int64_t nseg;
    int64_t seg;          /* segment length (>= 2) */
    int64_t n;
    float *out;           /* out[i * ldo + j] */
    int64_t ldo;
    hbnn_epilogue ep;
    /* Optional: every 16-filter panel built once (by the backend's sign_panel, for layers that see
     * few rows per call, e.g. dense layers at batch 1, where rebuilding a panel per call would cost
     * more than using it). ceil(n / 16) panels of hbnn_sign_panel_floats() floats; NULL: build per tile. */
    const float *panels;
} hbnn_sign_args;

/* Float GEMM for full-precision layers: out[i][j] = sum_k f[i][k] * w[j][k], with the weights
 * pre-arranged once per layer in panels of 16 filters: wpanel[(j / 16) * k * 16 + kk * 16 + j % 16]
 * (zero for filters past n). */
typedef struct {
    const float *f;       /* m rows x k floats */
    int64_t m;
    int64_t k;
    const float *wpanel;  /* ceil(n / 16) panels x k x 16 */
    int64_t n;
    float *out;           /* out[i * ldo + j] */
    int64_t ldo;
    hbnn_epilogue ep;
} hbnn_dense_args;

#define HBNN_PANEL 16

/* GEMM tiles (fixed, so results never depend on the thread count). xor: 32 rows of A (patches) x 64
 * rows of B (filters); consecutive tiles share the A block. Sign and float: 128 float rows (~0.5 MB
 * at K = 1152, in L2) x 16 filters (one panel). */
#define HBNN_TILE_M 32
#define HBNN_TILE_N 64
#define HBNN_PANEL_TILE_M 128

/* One backend = these functions.
 * xor_gemm / sign_gemm compute the output tile rows [i0, i1) x columns [j0, j1); `scratch` is a
 * 32-byte aligned per-thread buffer of hbnn_sign_scratch_floats(args) = 16 * (kpad + nseg) + 16 floats
 * (sign GEMM only), enough for 16 filters' expanded signs and scales.
 * pack_rows binarizes and packs `rows` rows of n floats (row stride xstride), with an optional
 * per-column affine x * in_scale + in_bias applied first, segment length seg. Bits go to
 * bits[r * bstride ...] (ceil(n/64) words; the caller zeroes any further padding words). Scales:
 * if L == 0, one float per segment at scales[r * sstride + s]; if L > 0, block scales: one float per
 * L-bit block of the first ceil(n/64)*64 bits (blocks past n get 0). Scales are mean |x| computed in
 * double, stored as float. */
typedef void (*hbnn_xor_gemm_fn)(const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
typedef void (*hbnn_sign_gemm_fn)(const hbnn_sign_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                  float *scratch);
typedef void (*hbnn_sign_panel_fn)(const hbnn_sign_args *g, int64_t j, int64_t nf, float *panel);
typedef void (*hbnn_dense_gemm_fn)(const hbnn_dense_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
typedef void (*hbnn_int8_gemm_fn)(const hbnn_int8_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
typedef void (*hbnn_pack_rows_fn)(const float *x, int64_t rows, int64_t n, int64_t xstride,
                                  const float *in_scale, const float *in_bias, int64_t seg,
                                  uint64_t *bits, int64_t bstride, float *scales, int64_t sstride, int L);

typedef struct {
    const char *name;
    hbnn_xor_gemm_fn xor_gemm;
    hbnn_sign_gemm_fn sign_gemm;
    hbnn_pack_rows_fn pack_rows;
    hbnn_dense_gemm_fn dense_gemm;  /* j0 is a multiple of HBNN_PANEL */
    hbnn_sign_panel_fn sign_panel;  /* optional (NULL): builds the panel that sign_gemm reads */
    hbnn_xor_gemm_fn xor_int_gemm;  /* integer scales, block levels every 8 or 16 bits (g->L) */
    hbnn_int8_gemm_fn int8_gemm;    /* integer scales, short blocks */
} hbnn_backend;

/* Entry points used by the Cython front end (xhbnn.c). */
const hbnn_backend *hbnn_select_backend(int force_portable);
/* "avx512", "avx2", "neon" or "portable": NULL when not built in or not supported by this CPU. */
const hbnn_backend *hbnn_backend_named(const char *name);
const hbnn_backend *hbnn_portable_backend(void);
/* The backend's name, or the name of the kernel variant it runs on this CPU: "neon-dotprod" when the
 * NEON backend's int8 GEMM uses SDOT (aarch64 with the dot product extension); "avx512-simde" in the
 * emulated test build (setup.py: HBNN_SIMDE_AVX512=1), where the AVX-512 backend runs on SIMDe. */
const char *hbnn_backend_variant(const hbnn_backend *be);
/* Whether this CPU has the Armv8.2 dot product (aarch64 builds; 0 elsewhere). */
int hbnn_neon_dotprod_supported(void);
/* Test hook: SDOT kernels on (1) or off (0); returns the new state, or -1 when SDOT is unavailable. */
int hbnn_neon_use_dotprod(int on);
int64_t hbnn_sign_scratch_floats(const hbnn_sign_args *g);
int64_t hbnn_sign_panel_floats(const hbnn_sign_args *g);
/* Build all panels into `out` (32-byte aligned, ceil(n/16) * hbnn_sign_panel_floats floats); returns 0
 * when the backend reads no prebuilt panels (then leave g->panels NULL). */
int hbnn_sign_build_panels(const hbnn_backend *be, const hbnn_sign_args *g, float *out);
void hbnn_xor_gemm(const hbnn_backend *be, const hbnn_xor_args *g, int threads);
/* One tile of the xor GEMM: the integer kernel when g->aq is set, else the float one. */
void hbnn_xor_gemm_tile(const hbnn_backend *be, const hbnn_xor_args *g, int64_t i0, int64_t i1, int64_t j0, int64_t j1);
void hbnn_int8_gemm(const hbnn_backend *be, const hbnn_int8_args *g, int threads);
/* Levels of n float scales: v = s * inv; 0 if v is NaN or <= 0, 127 if v >= 127, else v rounded to
 * nearest even (docs/DESIGN.md, section 9). */
void hbnn_quantize_levels(const float *s, int64_t n, float inv, int16_t *q);
/* Rows of n floats (optional affine first) to int8 level * sign per element, segment length seg. */
void hbnn_binarize_int8(const float *x, int64_t rows, int64_t n, const float *in_scale, const float *in_bias,
                        int64_t seg, float inv, int8_t *out);
/* im2col over int8 NHWC (zero padding), rows of row_len bytes (zero tail), output image rows [by0, by1). */
void hbnn_im2col_int8_rows(const int8_t *x, int64_t batch, int64_t h, int64_t w, int64_t c, int64_t kh,
                           int64_t kw, int64_t stride, int64_t pad, int64_t oh, int64_t ow, int8_t *dst,
                           int64_t row_len, int64_t by0, int64_t by1);
void hbnn_sign_gemm(const hbnn_backend *be, const hbnn_sign_args *g, int threads);
void hbnn_dense_gemm(const hbnn_backend *be, const hbnn_dense_args *g, int threads);
void hbnn_pack_rows(const hbnn_backend *be, const float *x, int64_t rows, int64_t n, int64_t xstride,
                    const float *in_scale, const float *in_bias, int64_t seg,
                    uint64_t *bits, int64_t bstride, float *scales, int64_t sstride, int L, int threads);
/* A binary conv in one call: binarize + pack the (B, H, W, C) input into the interior of the
 * zero-bordered packed image (img_*: B x (H+2p) x (W+2p) pixels of pix_words words and pix_blk block
 * scales, borders already zero), copy its im2col rows into g->a / g->as (rows of g->kwords words and
 * g->nblk scales), then run the xor GEMM; all three phases in one OpenMP region. */
typedef struct {
    const float *x;
    int64_t batch, h, w, c;
    const float *in_scale, *in_bias;
    int64_t seg, pad;
    uint64_t *img_bits;
    float *img_scales;
    int64_t pix_words, pix_blk;
    int64_t kh, kw, stride, oh, ow;
    /* integer scales: the packed image's block levels (zero border), quantized from img_scales with
     * inv_act as each image row is packed; the im2col then copies levels, not scales. NULL: float. */
    int16_t *img_levels;
    float inv_act;
} hbnn_conv_geometry;

void hbnn_conv_xor(const hbnn_backend *be, const hbnn_conv_geometry *cg, const hbnn_xor_args *g, int threads);
/* im2col over floats with an optional per-channel affine applied before zero padding. */
void hbnn_im2col_float(const float *x, int64_t batch, int64_t h, int64_t w, int64_t c,
                       const float *in_scale, const float *in_bias, int64_t kh, int64_t kw,
                       int64_t stride, int64_t pad, int64_t oh, int64_t ow, float *dst, int64_t row_len,
                       int threads);
/* Row ranges of the phases above, for the frame executor (frame.c): packed image rows [by0, by1) of
 * the B*H input rows, im2col rows of output image rows [by0, by1) of B*OH, float im2col likewise. */
void hbnn_conv_pack_rows(const hbnn_backend *be, const hbnn_conv_geometry *cg, int L, int64_t by0, int64_t by1);
void hbnn_conv_im2col_rows(const hbnn_conv_geometry *cg, const hbnn_xor_args *g, int64_t by0, int64_t by1);
void hbnn_im2col_float_rows(const float *x, int64_t batch, int64_t h, int64_t w, int64_t c, int64_t kh,
                            int64_t kw, int64_t stride, int64_t pad, int64_t oh, int64_t ow, float *dst,
                            int64_t row_len, int64_t by0, int64_t by1);
/* Hadamard binarization to floats (scale * sign), rows of n, segment length seg. */
void hbnn_binarize_float(const float *x, int64_t rows, int64_t n, const float *in_scale,
                         const float *in_bias, int64_t seg, float *out);

/* Max (avg = 0) or average pooling, k x k windows, stride s, no padding, NHWC; NaN propagates. */
void hbnn_pool2d(const float *x, int64_t batch, int64_t h, int64_t w, int64_t c, int64_t k, int64_t s, int avg,
                 float *out);
/* Softmax over rows of n (max subtracted first; sum in double). */
void hbnn_softmax(const float *x, int64_t rows, int64_t n, float *out);

#endif

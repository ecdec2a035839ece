/* The whole-frame executor (frame.h): steps -> ops of tiles -> one pool run per frame. */
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "threadpool.h"

/* Below these sizes a phase is one tile: splitting it costs more (a claim, a cache line moving to
 * the other core, the wait at the next op) than the few microseconds it would save. Measured on
 * LeNet and the AlexNet-inspired net (docs/BENCHMARKS.md, "Threads"). */
#define HBNN_FRAME_MIN_BINARY_MACS (INT64_C(8) << 20)
#define HBNN_FRAME_MIN_FLOAT_MACS (INT64_C(2) << 20)
#define HBNN_FRAME_MIN_BYTES (INT64_C(256) << 10)
/* A row phase's tiles hold at least this many bytes of output (a few microseconds of copying). */
#define HBNN_FRAME_TILE_BYTES (INT64_C(16) << 10)

/* Load awareness: judge the helpers over this many parallel frames; if they did not pay, run this
 * many frames (doubling to the maximum while they keep not paying) on the caller alone. */
#define HBNN_FRAME_WINDOW 4
#define HBNN_FRAME_SEED_FRAMES 3  /* frames on the caller alone first, to learn what one thread takes */
#define HBNN_FRAME_BACKOFF_MIN 8
#define HBNN_FRAME_BACKOFF_MAX 1024

typedef enum {
    OP_PACK_IMAGE, OP_IM2COL_BITS, OP_XOR_GEMM, OP_PACK_ROWS, OP_BINARIZE, OP_AFFINE_PRE, OP_IM2COL_FLOAT,
    OP_SIGN_GEMM, OP_DENSE_GEMM, OP_POOL, OP_SOFTMAX, OP_AFFINE, OP_RELU, OP_BINARIZE_INT8, OP_IM2COL_INT8,
    OP_INT8_GEMM
} hbnn_op_kind;

typedef struct {
    int kind;
    int step;
    int64_t units;   /* rows, GEMM tiles or elements */
    int64_t per;     /* units per frame tile */
    int64_t tj;      /* GEMM: tiles across the filters */
} hbnn_op;

struct hbnn_frame {
    const hbnn_backend *be;
    int threads;
    hbnn_step *steps;
    float **prepass;        /* per step: the input after its affine (sign/float paths), or NULL */
    int nsteps, cap;
    hbnn_op *ops;
    int64_t *op_end;
    double *tile_us;        /* the caller's latest time per tile, per op */
    int nops, parallel_ops;
    float *scratch_raw, *scratch;
    int64_t scratch_stride;
    hbnn_pool *pool;
    hbnn_pool_job job;
    /* load awareness */
    int adaptive;
    int seq_left, backoff, window_n;
    double window_wall, window_est;
    double seq_wall;        /* running mean wall time of the frames run alone (0: none yet) */
    int64_t frames, parallel_frames;
};

hbnn_frame *hbnn_frame_create(const hbnn_backend *be, int threads)
{
    hbnn_frame *f = (hbnn_frame *)calloc(1, sizeof(*f));
    if (!f) return NULL;
    f->be = be;
    f->threads = threads > 1 ? threads : 1;
    f->adaptive = 1;
    f->seq_left = HBNN_FRAME_SEED_FRAMES;
    return f;
}

int hbnn_frame_add(hbnn_frame *f, const hbnn_step *step)
{
    if (step->kind < HBNN_STEP_XOR_CONV || step->kind > HBNN_STEP_INT8) return -1;
    if (f->nsteps == f->cap) {
        const int cap = f->cap ? 2 * f->cap : 16;
        hbnn_step *s = (hbnn_step *)realloc(f->steps, (size_t)cap * sizeof(*s));
        if (!s) return -1;
        f->steps = s;
        float **p = (float **)realloc(f->prepass, (size_t)cap * sizeof(*p));
        if (!p) return -1;
        f->prepass = p;
        f->cap = cap;
    }
    f->steps[f->nsteps] = *step;
    f->prepass[f->nsteps] = NULL;
    f->nsteps++;
    return 0;
}

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }

/* A row phase: one tile when small, else tiles of about HBNN_FRAME_TILE_BYTES. */
static int64_t rows_per_tile(int64_t units, int64_t bytes, int threads)
{
    if (threads <= 1 || units <= 1 || bytes < HBNN_FRAME_MIN_BYTES) return units > 0 ? units : 1;
    int64_t tiles = bytes / HBNN_FRAME_TILE_BYTES;
    if (tiles > units) tiles = units;
    if (tiles < 1) tiles = 1;
    return cdiv(units, tiles);
}

static int push_op(hbnn_frame *f, int kind, int step, int64_t units, int64_t per, int64_t tj)
{
    hbnn_op *o = &f->ops[f->nops++];
    o->kind = kind;
    o->step = step;
    o->units = units > 0 ? units : 1;
    o->per = per > 0 ? per : o->units;
    o->tj = tj;
    return 0;
}

static void gemm_op(hbnn_frame *f, int kind, int step, int64_t m, int64_t n, int64_t tm, int64_t tn, int parallel)
{
    const int64_t tj = cdiv(n, tn), units = cdiv(m, tm) * tj;
    push_op(f, kind, step, units, parallel && f->threads > 1 ? 1 : units, tj);
}

int hbnn_frame_finish(hbnn_frame *f)
{
    const int nt = f->threads;
    f->ops = (hbnn_op *)calloc((size_t)(3 * f->nsteps + 1), sizeof(hbnn_op));
    if (!f->ops) return -1;
    int64_t scratch_floats = 0;
    for (int i = 0; i < f->nsteps; i++) {
        hbnn_step *s = &f->steps[i];
        switch (s->kind) {
        case HBNN_STEP_XOR_CONV: {
            const hbnn_xor_args *g = &s->gx;
            push_op(f, OP_PACK_IMAGE, i, s->batch * s->h,
                    rows_per_tile(s->batch * s->h, s->batch * s->h * s->w * s->c * 4, nt), 0);
            push_op(f, OP_IM2COL_BITS, i, s->batch * s->oh,
                    rows_per_tile(s->batch * s->oh, g->m * (g->kwords * 8 + g->nblk * 4), nt), 0);
            gemm_op(f, OP_XOR_GEMM, i, g->m, g->n, HBNN_TILE_M, HBNN_TILE_N,
                    g->m * g->n * g->kwords * 64 >= HBNN_FRAME_MIN_BINARY_MACS);
            break;
        }
        case HBNN_STEP_XOR_DENSE: {
            const hbnn_xor_args *g = &s->gx;
            push_op(f, OP_PACK_ROWS, i, s->batch, rows_per_tile(s->batch, s->batch * s->c * 4, nt), 0);
            gemm_op(f, OP_XOR_GEMM, i, g->m, g->n, HBNN_TILE_M, HBNN_TILE_N,
                    g->m * g->n * g->kwords * 64 >= HBNN_FRAME_MIN_BINARY_MACS);
            break;
        }
        case HBNN_STEP_SIGN:
        case HBNN_STEP_FLOAT: {
            const int64_t pixels = s->batch * s->h * s->w;
            if (s->binarize) {
                push_op(f, OP_BINARIZE, i, pixels, rows_per_tile(pixels, pixels * s->c * 4, nt), 0);
            } else if (s->in_scale || s->in_bias) {
                f->prepass[i] = (float *)malloc((size_t)(pixels * s->c) * sizeof(float));
                if (!f->prepass[i]) return -1;
                push_op(f, OP_AFFINE_PRE, i, pixels, rows_per_tile(pixels, pixels * s->c * 4, nt), 0);
            }
            const int64_t m = s->batch * s->oh * s->ow;
            push_op(f, OP_IM2COL_FLOAT, i, s->batch * s->oh,
                    rows_per_tile(s->batch * s->oh, m * s->row_len * 4, nt), 0);
            if (s->kind == HBNN_STEP_SIGN) {
                gemm_op(f, OP_SIGN_GEMM, i, s->gs.m, s->gs.n, HBNN_PANEL_TILE_M, HBNN_PANEL,
                        s->gs.m * s->gs.n * s->gs.k >= HBNN_FRAME_MIN_FLOAT_MACS);
                if (!s->gs.panels) {
                    const int64_t sf = hbnn_sign_scratch_floats(&s->gs);
                    if (sf > scratch_floats) scratch_floats = sf;
                }
            } else {
                gemm_op(f, OP_DENSE_GEMM, i, s->gd.m, s->gd.n, HBNN_PANEL_TILE_M, HBNN_PANEL,
                        s->gd.m * s->gd.n * s->gd.k >= HBNN_FRAME_MIN_FLOAT_MACS);
            }
            break;
        }
        case HBNN_STEP_INT8: {
            const int64_t pixels = s->batch * s->h * s->w;
            push_op(f, OP_BINARIZE_INT8, i, pixels, rows_per_tile(pixels, pixels * s->c * 4, nt), 0);
            push_op(f, OP_IM2COL_INT8, i, s->batch * s->oh,
                    rows_per_tile(s->batch * s->oh, s->gi.m * s->gi.kpad, nt), 0);
            gemm_op(f, OP_INT8_GEMM, i, s->gi.m, s->gi.n, HBNN_PANEL_TILE_M, HBNN_PANEL,
                    s->gi.m * s->gi.n * s->gi.kpad >= HBNN_FRAME_MIN_FLOAT_MACS);
            break;
        }
        case HBNN_STEP_POOL: {
            const int64_t units = s->batch * s->oh;
            push_op(f, OP_POOL, i, units, rows_per_tile(units, s->batch * s->h * s->w * s->c * 4, nt), 0);
            break;
        }
        case HBNN_STEP_SOFTMAX:
            push_op(f, OP_SOFTMAX, i, s->rows, s->rows, 0);
            break;
        case HBNN_STEP_AFFINE:
            push_op(f, OP_AFFINE, i, s->rows, rows_per_tile(s->rows, s->rows * s->n * 4, nt), 0);
            break;
        case HBNN_STEP_RELU:
            push_op(f, OP_RELU, i, s->n, rows_per_tile(s->n, s->n * 4, nt), 0);
            break;
        }
    }
    if (f->nops == 0) push_op(f, OP_RELU, -1, 1, 1, 0);  /* an empty model: one no-op tile */
    f->op_end = (int64_t *)calloc((size_t)f->nops, sizeof(int64_t));
    f->tile_us = (double *)calloc((size_t)f->nops, sizeof(double));
    if (!f->op_end || !f->tile_us) return -1;
    int64_t end = 0;
    for (int k = 0; k < f->nops; k++) {
        const int64_t tiles = cdiv(f->ops[k].units, f->ops[k].per);
        end += tiles;
        f->op_end[k] = end;
        f->parallel_ops += tiles > 1;
    }
    if (scratch_floats) {
        f->scratch_stride = (scratch_floats + 15) & ~(int64_t)15;  /* 64-byte multiples */
        f->scratch_raw = (float *)malloc((size_t)(f->scratch_stride * nt + 16) * sizeof(float));
        if (!f->scratch_raw) return -1;
        f->scratch = (float *)(((uintptr_t)f->scratch_raw + 63) & ~(uintptr_t)63);
    }
    if (nt > 1 && f->parallel_ops > 0) f->pool = hbnn_pool_create(nt);  /* NULL: run alone */
    return 0;
}

static void affine_rows(const float *x, float *out, int64_t r0, int64_t r1, int64_t n, const float *scale,
                        const float *bias)
{
    /* a multiply, then an add (two roundings, no FMA): what NumPy and the kernels' affine compute */
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * n;
        float *o = out + r * n;
        for (int64_t j = 0; j < n; j++) {
            float v = xr[j];
            if (scale) v = v * scale[j];
            if (bias) v = v + bias[j];
            o[j] = v;
        }
    }
}

static void run_tile(void *ctx, int opi, int64_t t, int slot)
{
    hbnn_frame *f = (hbnn_frame *)ctx;
    const hbnn_op *o = &f->ops[opi];
    if (o->step < 0) return;
    const hbnn_step *s = &f->steps[o->step];
    const hbnn_backend *be = f->be;
    const int64_t u0 = t * o->per, u1 = u0 + o->per < o->units ? u0 + o->per : o->units;
    switch (o->kind) {
    case OP_PACK_IMAGE:
        hbnn_conv_pack_rows(be, &s->cg, s->gx.L, u0, u1);
        break;
    case OP_IM2COL_BITS:
        hbnn_conv_im2col_rows(&s->cg, &s->gx, u0, u1);
        break;
    case OP_PACK_ROWS:
        be->pack_rows(s->x + u0 * s->c, u1 - u0, s->c, s->c, s->in_scale, s->in_bias, s->seg_a,
                      (uint64_t *)s->gx.a + u0 * s->gx.kwords, s->gx.kwords, (float *)s->gx.as + u0 * s->gx.nblk,
                      s->gx.nblk, s->gx.L);
        if (s->gx.aq)  /* integer scales: the rows' block levels */
            hbnn_quantize_levels(s->gx.as + u0 * s->gx.nblk, (u1 - u0) * s->gx.nblk, s->gx.inv_act,
                                 s->gx.aq + u0 * s->gx.nblk);
        break;
    case OP_XOR_GEMM:
        for (int64_t u = u0; u < u1; u++) {
            const int64_t i0 = (u / o->tj) * HBNN_TILE_M, j0 = (u % o->tj) * HBNN_TILE_N;
            hbnn_xor_gemm_tile(be, &s->gx, i0, i0 + HBNN_TILE_M < s->gx.m ? i0 + HBNN_TILE_M : s->gx.m, j0,
                               j0 + HBNN_TILE_N < s->gx.n ? j0 + HBNN_TILE_N : s->gx.n);
        }
        break;
    case OP_BINARIZE_INT8:
        hbnn_binarize_int8(s->x + u0 * s->c, u1 - u0, s->c, s->in_scale, s->in_bias, s->seg_a, s->inv_act,
                           s->acts8 + u0 * s->c);
        break;
    case OP_IM2COL_INT8:
        hbnn_im2col_int8_rows(s->acts8, s->batch, s->h, s->w, s->c, s->kh, s->kw, s->stride, s->pad, s->oh, s->ow,
                              s->cols8, s->gi.kpad, u0, u1);
        break;
    case OP_INT8_GEMM:
        for (int64_t u = u0; u < u1; u++) {
            const int64_t i0 = (u / o->tj) * HBNN_PANEL_TILE_M, j0 = (u % o->tj) * HBNN_PANEL;
            be->int8_gemm(&s->gi, i0, i0 + HBNN_PANEL_TILE_M < s->gi.m ? i0 + HBNN_PANEL_TILE_M : s->gi.m, j0,
                          j0 + HBNN_PANEL < s->gi.n ? j0 + HBNN_PANEL : s->gi.n);
        }
        break;
    case OP_BINARIZE:
        hbnn_binarize_float(s->x + u0 * s->c, u1 - u0, s->c, s->in_scale, s->in_bias, s->seg_a, s->acts + u0 * s->c);
        break;
    case OP_AFFINE_PRE:
        affine_rows(s->x, f->prepass[o->step], u0, u1, s->c, s->in_scale, s->in_bias);
        break;
    case OP_IM2COL_FLOAT: {
        const float *src = s->binarize ? s->acts : f->prepass[o->step] ? f->prepass[o->step] : s->x;
        hbnn_im2col_float_rows(src, s->batch, s->h, s->w, s->c, s->kh, s->kw, s->stride, s->pad, s->oh, s->ow,
                               s->cols, s->row_len, u0, u1);
        break;
    }
    case OP_SIGN_GEMM: {
        float *scratch = f->scratch ? f->scratch + (int64_t)slot * f->scratch_stride : NULL;
        for (int64_t u = u0; u < u1; u++) {
            const int64_t i0 = (u / o->tj) * HBNN_PANEL_TILE_M, j0 = (u % o->tj) * HBNN_PANEL;
            be->sign_gemm(&s->gs, i0, i0 + HBNN_PANEL_TILE_M < s->gs.m ? i0 + HBNN_PANEL_TILE_M : s->gs.m, j0,
                          j0 + HBNN_PANEL < s->gs.n ? j0 + HBNN_PANEL : s->gs.n, scratch);
        }
        break;
    }
    case OP_DENSE_GEMM:
        for (int64_t u = u0; u < u1; u++) {
            const int64_t i0 = (u / o->tj) * HBNN_PANEL_TILE_M, j0 = (u % o->tj) * HBNN_PANEL;
            be->dense_gemm(&s->gd, i0, i0 + HBNN_PANEL_TILE_M < s->gd.m ? i0 + HBNN_PANEL_TILE_M : s->gd.m, j0,
                           j0 + HBNN_PANEL < s->gd.n ? j0 + HBNN_PANEL : s->gd.n);
        }
        break;
    case OP_POOL:
        /* output rows [u0, u1) of the batch*oh, image by image: the same window per element */
        for (int64_t u = u0; u < u1;) {
            const int64_t b = u / s->oh, oy = u % s->oh;
            const int64_t n = (u1 - u < s->oh - oy) ? u1 - u : s->oh - oy;
            hbnn_pool2d(s->x + ((b * s->h + oy * s->s) * s->w) * s->c, 1, (n - 1) * s->s + s->k, s->w, s->c, s->k,
                        s->s, s->avg, s->out + ((b * s->oh + oy) * s->ow) * s->c);
            u += n;
        }
        break;
    case OP_SOFTMAX:
        hbnn_softmax(s->x + u0 * s->n, u1 - u0, s->n, s->out + u0 * s->n);
        break;
    case OP_AFFINE:
        affine_rows(s->x, s->out, u0, u1, s->n, s->scale, s->bias);
        break;
    case OP_RELU:
        /* max(x, 0) as numpy.maximum(x, 0): NaN stays NaN; -0.0 becomes +0.0 (numpy gives +0.0 on
         * x86-64 and -0.0 on armv7 NEON: equal values either way) */
        for (int64_t j = u0; j < u1; j++) {
            const float v = s->x[j];
            s->out[j] = (v > 0.0f || v != v) ? v : 0.0f;
        }
        break;
    }
}

void hbnn_frame_run(hbnn_frame *f)
{
    f->job.run = run_tile;
    f->job.ctx = f;
    f->job.nops = f->nops;
    f->job.op_end = f->op_end;
    int nt = f->pool ? f->threads : 1;
    if (nt > 1 && f->adaptive && f->seq_left > 0) {
        f->seq_left--;
        nt = 1;
    }
    hbnn_pool_stats st;
    hbnn_pool_run(f->pool, &f->job, nt, &st, f->tile_us);
    f->frames++;
    if (nt <= 1) {
        /* what one thread takes, from the frames that ran alone (not the very first: cold caches) */
        if (f->pool && f->frames > 1) f->seq_wall = f->seq_wall > 0.0 ? 0.75 * f->seq_wall + 0.25 * st.wall_us : st.wall_us;
        return;
    }
    f->parallel_frames++;
    /* what one thread would have taken: the caller's time per tile times every tile, or the recent
     * frames that ran alone if they were faster (the caller's tiles slow down when shared) */
    double est = 0.0;
    for (int k = 0; k < f->nops; k++) est += f->tile_us[k] * (double)(f->op_end[k] - (k ? f->op_end[k - 1] : 0));
    if (f->seq_wall > 0.0 && f->seq_wall < est) est = f->seq_wall;
    f->window_wall += st.wall_us;
    f->window_est += est;
    if (++f->window_n < HBNN_FRAME_WINDOW) return;
    if (f->window_wall > f->window_est) {
        f->backoff = f->backoff ? (f->backoff * 2 < HBNN_FRAME_BACKOFF_MAX ? f->backoff * 2 : HBNN_FRAME_BACKOFF_MAX)
                                : HBNN_FRAME_BACKOFF_MIN;
        f->seq_left = f->backoff;
    } else {
        f->backoff = 0;
    }
    f->window_n = 0;
    f->window_wall = f->window_est = 0.0;
}

void hbnn_frame_destroy(hbnn_frame *f)
{
    if (!f) return;
    hbnn_pool_destroy(f->pool);
    for (int i = 0; i < f->nsteps; i++) free(f->prepass[i]);
    free(f->prepass);
    free(f->steps);
    free(f->ops);
    free(f->op_end);
    free(f->tile_us);
    free(f->scratch_raw);
    free(f);
}

void hbnn_frame_get_info(const hbnn_frame *f, hbnn_frame_info *info)
{
    info->threads = f->threads;
    info->pool_threads = hbnn_pool_size(f->pool);
    info->nops = f->nops;
    info->parallel_ops = f->parallel_ops;
    info->tiles = f->nops ? f->op_end[f->nops - 1] : 0;
    info->frames = f->frames;
    info->parallel_frames = f->parallel_frames;
    info->adaptive = f->adaptive;
}

void hbnn_frame_op_times(const hbnn_frame *f, int64_t *tiles, double *tile_us)
{
    for (int k = 0; k < f->nops; k++) {
        tiles[k] = f->op_end[k] - (k ? f->op_end[k - 1] : 0);
        tile_us[k] = f->tile_us[k];
    }
}

void hbnn_frame_set_adaptive(hbnn_frame *f, int on)
{
    f->adaptive = on != 0;
    if (!on) f->seq_left = 0;
}

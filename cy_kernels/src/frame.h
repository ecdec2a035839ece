/* The whole-frame executor: a model's prepared steps run in one call, on the frame thread pool.
 *
 * Each step (a conv or dense layer with its packing and im2col, a pooling, a softmax, an affine, a
 * ReLU) becomes one to three ops of balanced tiles (rows, or GEMM tiles of output rows x filter
 * groups, the same fixed tiles as the per-op path: results are identical for any thread count).
 * A phase too small to pay for a second thread is one tile. Every buffer is the prepared plan's
 * or allocated here at build time: a frame allocates nothing.
 *
 * Load-aware: each parallel frame compares its wall time with the caller's own per-tile times
 * scaled to the whole frame (what one thread would have taken). When a short window of frames
 * shows the helpers did not pay (a worker preempted by another process holds up the frame), the
 * next frames run on the caller alone, for a backoff that doubles while it keeps failing.
 */
#ifndef HBNN_FRAME_H
#define HBNN_FRAME_H

#include "xhbnn.h"

typedef enum {
    HBNN_STEP_XOR_CONV = 1,  /* cg + gx: pack the image, bit im2col, xor GEMM */
    HBNN_STEP_XOR_DENSE,     /* x (rows of c) packed into gx.a, then the xor GEMM */
    HBNN_STEP_SIGN,          /* [binarize or affine], float im2col, sign GEMM (gs) */
    HBNN_STEP_FLOAT,         /* [binarize or affine], float im2col, float GEMM (gd) */
    HBNN_STEP_POOL,          /* max/avg pool of x (batch, h, w, c) into out */
    HBNN_STEP_SOFTMAX,       /* rows of n */
    HBNN_STEP_AFFINE,        /* out = x * scale + bias per last-axis element: rows of n */
    HBNN_STEP_RELU,          /* out = max(x, 0) over n elements (NaN stays NaN) */
    HBNN_STEP_INT8           /* integer scales, short blocks: binarize to int8 into acts8, int8 im2col, int8 GEMM */
} hbnn_step_kind;

/* One step, filled by the caller; fields not used by its kind are ignored. */
typedef struct {
    int kind;
    const float *x;
    float *out;
    /* the input's shape (pool, convs: NHWC; dense: batch rows of c) and the conv geometry */
    int64_t batch, h, w, c, kh, kw, stride, pad, oh, ow;
    const float *in_scale, *in_bias;   /* the fused affine before a conv/dense (NULL: none) */
    hbnn_epilogue ep;
    /* xor */
    hbnn_conv_geometry cg;
    hbnn_xor_args gx;
    int64_t seg_a;
    /* sign / float */
    hbnn_sign_args gs;
    hbnn_dense_args gd;
    int binarize;                      /* activations binarized to floats into `acts` first */
    float *acts;
    float *cols;
    int64_t row_len;
    /* int8 (integer scales, short blocks); the xor steps carry their integer fields in gx and cg */
    hbnn_int8_args gi;
    int8_t *acts8;
    int8_t *cols8;
    float inv_act;
    /* pool */
    int64_t k, s;
    int avg;
    /* softmax, affine, relu */
    int64_t rows, n;
    const float *scale, *bias;
} hbnn_step;

typedef struct hbnn_frame hbnn_frame;

/* An empty executor for `threads` threads (its pool is started at hbnn_frame_finish). */
hbnn_frame *hbnn_frame_create(const hbnn_backend *be, int threads);
/* Append a step (copied). 0 on success, -1 out of memory or a kind not known. */
int hbnn_frame_add(hbnn_frame *f, const hbnn_step *step);
/* Lay out the ops and tiles, allocate scratch, start the pool. 0 on success; -1: out of memory
 * (the executor then runs on the caller alone, still correct). */
int hbnn_frame_finish(hbnn_frame *f);
void hbnn_frame_run(hbnn_frame *f);
void hbnn_frame_destroy(hbnn_frame *f);

typedef struct {
    int threads;              /* threads asked for */
    int pool_threads;         /* threads the pool really has (1: none started) */
    int nops, parallel_ops;   /* ops, and ops of more than one tile */
    int64_t tiles;            /* tiles per frame */
    int64_t frames, parallel_frames;  /* frames run; of them with the workers */
    int adaptive;
} hbnn_frame_info;

void hbnn_frame_get_info(const hbnn_frame *f, hbnn_frame_info *info);
/* Per op: its tiles and the caller's latest mean time per tile (0 until it ran one); arrays of
 * info.nops. For profiling and for predicting other core counts (benchmarks). */
void hbnn_frame_op_times(const hbnn_frame *f, int64_t *tiles, double *tile_us);
/* Load awareness on (default) or off (always use every thread: for measuring the raw effect). */
void hbnn_frame_set_adaptive(hbnn_frame *f, int on);

#endif

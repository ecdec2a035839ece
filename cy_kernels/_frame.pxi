# Included at the end of _xhbnn.pyx (it reads the C fields of ConvPlan, PreparedOp, BoundPool and
# BoundSoftmax): the whole-frame executor, src/frame.c on the thread pool of src/threadpool.c.

cdef extern from "frame.h":
    ctypedef struct hbnn_step:
        int kind
        const float *x
        float *out
        int64_t batch, h, w, c, kh, kw, stride, pad, oh, ow
        const float *in_scale
        const float *in_bias
        hbnn_conv_geometry cg
        hbnn_xor_args gx
        int64_t seg_a
        hbnn_sign_args gs
        hbnn_dense_args gd
        int binarize
        float *acts
        float *cols
        int64_t row_len
        hbnn_int8_args gi
        int8_t *acts8
        int8_t *cols8
        float inv_act
        int64_t k, s
        int avg
        int64_t rows, n
        const float *scale
        const float *bias
    ctypedef struct hbnn_frame:
        pass
    ctypedef struct hbnn_frame_info:
        int threads
        int pool_threads
        int nops, parallel_ops
        int64_t tiles
        int64_t frames, parallel_frames
        int adaptive
    int HBNN_STEP_XOR_CONV, HBNN_STEP_XOR_DENSE, HBNN_STEP_SIGN, HBNN_STEP_FLOAT, HBNN_STEP_POOL
    int HBNN_STEP_SOFTMAX, HBNN_STEP_AFFINE, HBNN_STEP_RELU, HBNN_STEP_INT8
    hbnn_frame *hbnn_frame_create(const hbnn_backend *be, int threads) nogil
    int hbnn_frame_add(hbnn_frame *f, const hbnn_step *step) nogil
    int hbnn_frame_finish(hbnn_frame *f) nogil
    void hbnn_frame_run(hbnn_frame *f) nogil
    void hbnn_frame_destroy(hbnn_frame *f) nogil
    void hbnn_frame_get_info(const hbnn_frame *f, hbnn_frame_info *info) nogil
    void hbnn_frame_set_adaptive(hbnn_frame *f, int on) nogil
    void hbnn_frame_op_times(const hbnn_frame *f, int64_t *tiles, double *tile_us) nogil

from libc.string cimport memset


cdef _f32_buffer(a, str what):
    if type(a) is not np.ndarray or a.dtype != np.float32 or not a.flags.c_contiguous or a.size == 0:
        raise ValueError(f"Expected {what} as a non-empty C-contiguous float32 array, got "
                         f"{getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")
    return a


cdef class FrameExecutor:
    """A prepared network's steps run as one C call per frame on a persistent thread pool.

    ``steps``: the plan's ops in order. Each is a ``BoundPool``, a ``BoundSoftmax``, or has a
    ``frame_step`` tuple: ``("layer", PreparedOp, x, out)``, ``("affine", x, out, scale, bias)``
    (per last-axis element) or ``("relu", x, out)``. The arrays are the plan's own buffers: the
    executor keeps them alive and reads and writes them in place, like the per-op path does.
    ``threads`` threads run each frame (the caller and threads - 1 pool workers); results are the
    same for any thread count. Not thread-safe (one frame at a time); ``run()`` says so if misused.
    """
    cdef hbnn_frame *f
    cdef object keep
    cdef bint busy

    def __cinit__(self):
        self.f = NULL

    def __init__(self, steps, int threads, bint adaptive=True):
        if threads < 1:
            raise ValueError(f"Expected threads >= 1, got {threads}")
        self.keep = list(steps)
        self.f = hbnn_frame_create(_backend, threads)
        if self.f == NULL:
            raise MemoryError("frame executor")
        cdef hbnn_step st
        for op in self.keep:
            memset(&st, 0, sizeof(st))
            self._describe(op, &st)
            if hbnn_frame_add(self.f, &st) != 0:
                raise MemoryError("frame executor step")
        cdef int rc
        with nogil:
            rc = hbnn_frame_finish(self.f)
        if rc != 0:
            raise MemoryError("frame executor buffers")
        hbnn_frame_set_adaptive(self.f, adaptive)

    cdef _describe(self, op, hbnn_step *st):
        cdef BoundPool bp
        cdef BoundSoftmax bs
        cdef PreparedOp po
        cdef ConvPlan p
        cdef hbnn_epilogue ep
        if isinstance(op, BoundPool):
            bp = <BoundPool>op
            st.kind = HBNN_STEP_POOL
            st.x, st.out = bp.xp, bp.op
            st.batch, st.h, st.w, st.c, st.k, st.s, st.avg = bp.b, bp.h, bp.w, bp.c, bp.k, bp.s, bp.avg
            st.oh, st.ow = (bp.h - bp.k) // bp.s + 1, (bp.w - bp.k) // bp.s + 1
            return
        if isinstance(op, BoundSoftmax):
            bs = <BoundSoftmax>op
            st.kind = HBNN_STEP_SOFTMAX
            st.x, st.out, st.rows, st.n = bs.xp, bs.op, bs.rows, bs.n
            return
        desc = getattr(op, "frame_step", None)
        if not isinstance(desc, tuple) or not desc:
            raise TypeError(f"Expected a runtime step (BoundPool, BoundSoftmax or an op with frame_step), "
                            f"got {type(op).__name__}")
        kind = desc[0]
        if kind == "relu" and len(desc) == 3:
            x, out = _f32_buffer(desc[1], "relu x"), _f32_buffer(desc[2], "relu out")
            if x.size != out.size:
                raise ValueError(f"Expected relu x and out of one size, got {x.shape} and {out.shape}")
            st.kind = HBNN_STEP_RELU
            st.x, st.out, st.n = _fptr(x), _wptr(out), x.size
        elif kind == "affine" and len(desc) == 5:
            x, out = _f32_buffer(desc[1], "affine x"), _f32_buffer(desc[2], "affine out")
            scale, bias = _f32_buffer(desc[3], "affine scale"), _f32_buffer(desc[4], "affine bias")
            n = x.shape[x.ndim - 1]
            if out.shape != x.shape or scale.size != n or bias.size != n:
                raise ValueError(f"Expected affine x, out of one shape and scale, bias of its last axis, got "
                                 f"{x.shape}, {out.shape}, {scale.shape}, {bias.shape}")
            st.kind = HBNN_STEP_AFFINE
            st.x, st.out, st.scale, st.bias, st.n, st.rows = _fptr(x), _wptr(out), _fptr(scale), _fptr(bias), n, x.size // n
        elif kind == "layer" and len(desc) == 4 and isinstance(desc[1], PreparedOp):
            po = <PreparedOp>desc[1]
            x, out = _f32_buffer(desc[2], "layer x"), _f32_buffer(desc[3], "layer out")
            if x.shape != po.input_shape or out.shape != po.output_shape or not out.flags.writeable:
                raise ValueError(f"Expected layer x {po.input_shape} and a writable out {po.output_shape}, got "
                                 f"{x.shape} and {out.shape}")
            p = po.plan
            ep.scale, ep.bias, ep.relu = po.outs_p, po.outb_p, po.relu
            st.x, st.out = _fptr(x), _wptr(out)
            st.in_scale, st.in_bias = po.ins_p, po.inb_p
            st.batch, st.h, st.w, st.c = p.b, p.h, p.w, p.c
            st.kh, st.kw, st.stride, st.pad, st.oh, st.ow = p.kh, p.kw, p.stride, p.pad, p.oh, p.ow
            st.seg_a = p.seg_a
            if p.path_id == 4:  # integer scales, short blocks
                st.kind = HBNN_STEP_INT8
                st.gi = p.gi
                st.gi.out, st.gi.ep = st.out, ep
                st.acts8, st.cols8, st.inv_act = p.acts8_p, p.cols8_p, p.inv_act
            elif p.path_id == 2 or p.path_id == 3:  # xor; 3: integer scales (gx, cg carry the levels)
                st.gx = p.gx
                st.gx.out, st.gx.ep = st.out, ep
                if p.is_direct:
                    st.kind = HBNN_STEP_XOR_DENSE
                    st.batch = p.p  # rows of c: a dense layer, or a 1x1 conv over every pixel
                else:
                    st.kind = HBNN_STEP_XOR_CONV
                    st.cg = p.cg
                    st.cg.x, st.cg.in_scale, st.cg.in_bias = st.x, st.in_scale, st.in_bias
            else:
                st.binarize, st.acts, st.cols, st.row_len = p.binarize_acts, p.acts_p, p.cols_p, p.row_len
                if p.path_id == 1:
                    st.kind = HBNN_STEP_SIGN
                    st.gs = p.gs
                    st.gs.out, st.gs.ep = st.out, ep
                else:
                    st.kind = HBNN_STEP_FLOAT
                    st.gd = p.gd
                    st.gd.out, st.gd.ep = st.out, ep
        else:
            raise TypeError(f"Expected frame_step ('layer', PreparedOp, x, out), ('affine', x, out, scale, bias) "
                            f"or ('relu', x, out), got {desc[:1]!r} with {len(desc)} items")

    def run(self):
        """One frame: every step, in order, on the executor's threads. Allocates nothing."""
        if self.busy:
            raise RuntimeError("Expected one frame at a time on this executor (one Interpreter per thread), "
                               "got a call while another frame runs")
        self.busy = True
        try:
            with nogil:
                hbnn_frame_run(self.f)
        finally:
            self.busy = False

    def info(self):
        """Threads asked for and started, ops and tiles per frame, frames run (with the workers)."""
        cdef hbnn_frame_info i
        hbnn_frame_get_info(self.f, &i)
        return {"threads": i.threads, "pool_threads": i.pool_threads, "ops": i.nops,
                "parallel_ops": i.parallel_ops, "tiles": i.tiles, "frames": i.frames,
                "parallel_frames": i.parallel_frames, "adaptive": bool(i.adaptive)}

    def op_times(self):
        """Per op, in frame order: (tiles, the calling thread's latest mean microseconds per tile)."""
        cdef hbnn_frame_info i
        hbnn_frame_get_info(self.f, &i)
        tiles = np.zeros(i.nops, dtype=np.int64)
        us = np.zeros(i.nops, dtype=np.float64)
        hbnn_frame_op_times(self.f, <int64_t *>_data(tiles, I64, True), <double *>_data(us, F64, True))
        return list(zip(tiles.tolist(), us.tolist()))

    def __dealloc__(self):
        if self.f != NULL:
            with nogil:
                hbnn_frame_destroy(self.f)
            self.f = NULL


def frame_executor(steps, int threads, bint adaptive=True):
    """A FrameExecutor for these plan ops, or None when one of them is not a step it knows
    (e.g. a plan built on other kernels): the caller then runs the ops one by one."""
    for op in steps:
        if not isinstance(op, (BoundPool, BoundSoftmax)):
            desc = getattr(op, "frame_step", None)
            if not isinstance(desc, tuple) or not desc or (desc[0] == "layer" and not isinstance(desc[1], PreparedOp)):
                return None
    return FrameExecutor(steps, threads, adaptive)

# cython: language_level=3
"""Cython front end of the xHBNN kernels.

api.py validates every argument; the functions here trust their inputs. Each
(weights, input shape, betas, stride, padding) combination gets a *plan*, built
once and cached on the PackedWeights: the path to take, the weights re-laid out
for that path, and every scratch buffer. A call then packs, runs im2col and the
GEMM with the GIL released and allocates nothing.

Paths (see docs/DESIGN.md):
  xor   both sides binarized, blocks of >= 8 bits: XOR + popcount GEMM on packed im2col
  sign  float activations (beta_a = 1, or activations binarized to floats when their
        blocks are too short for bit packing) against packed +-1 weights: adds/subtracts
  float full-precision weights: the backend's float GEMM on float im2col
  int-xor / int8  integer-scale weights (levels x factors, docs/DESIGN.md section 9): the xor path
        with int16 block levels and int32 sums, or for blocks below 8 bits an int8 GEMM
"""
import os
import threading
from math import gcd

import numpy as np

from libc.stdint cimport int8_t, int16_t, int64_t, uint64_t

from . import reference_int as _ref_int


cdef extern from "ndarray_data.h":
    void *hbnn_ndarray_data(object a)


cdef object F32 = np.dtype(np.float32)
cdef object U64 = np.dtype(np.uint64)
cdef object I16 = np.dtype(np.int16)
cdef object I8 = np.dtype(np.int8)
cdef object I64 = np.dtype(np.int64)
cdef object F64 = np.dtype(np.float64)


cdef void *_data(object a, object dtype, bint writable=False) except NULL:
    """Data address of a C-contiguous ndarray of ``dtype`` (checked, as a typed memoryview would):
    read from NumPy's object layout (src/ndarray_data.h), not through the buffer protocol, so the
    module builds against the Limited API of CPython 3.9 (one abi3 wheel for 3.9 and later)."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"Expected a numpy.ndarray, got {type(a).__name__}")
    d = a.dtype
    if not (d is dtype or d == dtype) or not a.flags.c_contiguous or (writable and not a.flags.writeable):
        raise ValueError(f"Expected a {'writable ' if writable else ''}C-contiguous {dtype} array, got "
                         f"{d} {a.shape}{'' if a.flags.c_contiguous else ' (not C-contiguous)'}")
    return hbnn_ndarray_data(a)


def _check_layout():
    """NumPy's array layout is what src/ndarray_data.h reads (checked once, at import)."""
    probe = np.arange(3, dtype=np.float32)
    if <size_t>hbnn_ndarray_data(probe) != <size_t>probe.__array_interface__["data"][0]:
        raise ImportError(f"Expected NumPy arrays to start with PyObject_HEAD and the data pointer, got another "
                          f"layout (NumPy {np.__version__}): cy_kernels cannot read array addresses")


_check_layout()


cdef extern from "xhbnn.h":
    ctypedef struct hbnn_epilogue:
        const float *scale
        const float *bias
        int relu
    ctypedef struct hbnn_xor_args:
        const uint64_t *a
        const float *as_ "as"
        int64_t m
        const uint64_t *b
        const float *bs
        int64_t n
        int64_t kwords
        int64_t nblk
        int L
        const float *len
        float *out
        int64_t ldo
        hbnn_epilogue ep
        int64_t run
        int64_t nrun
        const float *run_len
        int16_t *aq
        const int16_t *bq
        const int16_t *qlen
        const float *col_scale
        float inv_act
    ctypedef struct hbnn_int8_args:
        const int8_t *a
        int64_t m
        int64_t k
        int64_t kpad
        const int8_t *w
        int64_t n
        const float *col_scale
        float *out
        int64_t ldo
        hbnn_epilogue ep
    ctypedef struct hbnn_sign_args:
        const float *f
        int64_t m
        int64_t k
        int64_t kpad
        const uint64_t *bits
        int64_t nwords
        const float *scales
        int64_t nseg
        int64_t seg
        int64_t n
        float *out
        int64_t ldo
        hbnn_epilogue ep
        const float *panels
    ctypedef struct hbnn_dense_args:
        const float *f
        int64_t m
        int64_t k
        const float *wpanel
        int64_t n
        float *out
        int64_t ldo
        hbnn_epilogue ep
    ctypedef struct hbnn_backend:
        const char *name
    int HBNN_ROW_WORDS
    int HBNN_FLOAT_PAD
    const hbnn_backend *hbnn_select_backend(int force_portable) nogil
    const hbnn_backend *hbnn_backend_named(const char *name) nogil
    const char *hbnn_backend_variant(const hbnn_backend *be) nogil
    int hbnn_neon_dotprod_supported() nogil
    int hbnn_neon_use_dotprod(int on) nogil
    void hbnn_xor_gemm(const hbnn_backend *be, const hbnn_xor_args *g, int threads) nogil
    void hbnn_sign_gemm(const hbnn_backend *be, const hbnn_sign_args *g, int threads) nogil
    void hbnn_dense_gemm(const hbnn_backend *be, const hbnn_dense_args *g, int threads) nogil
    int64_t hbnn_sign_panel_floats(const hbnn_sign_args *g) nogil
    int hbnn_sign_build_panels(const hbnn_backend *be, const hbnn_sign_args *g, float *out) nogil
    void hbnn_pack_rows(const hbnn_backend *be, const float *x, int64_t rows, int64_t n, int64_t xstride,
                        const float *in_scale, const float *in_bias, int64_t seg,
                        uint64_t *bits, int64_t bstride, float *scales, int64_t sstride, int L,
                        int threads) nogil
    ctypedef struct hbnn_conv_geometry:
        const float *x
        int64_t batch, h, w, c
        const float *in_scale
        const float *in_bias
        int64_t seg, pad
        uint64_t *img_bits
        float *img_scales
        int64_t pix_words, pix_blk
        int64_t kh, kw, stride, oh, ow
        int16_t *img_levels
        float inv_act
    void hbnn_int8_gemm(const hbnn_backend *be, const hbnn_int8_args *g, int threads) nogil
    void hbnn_quantize_levels(const float *s, int64_t n, float inv, int16_t *q) nogil
    void hbnn_binarize_int8(const float *x, int64_t rows, int64_t n, const float *in_scale, const float *in_bias,
                            int64_t seg, float inv, int8_t *out) nogil
    void hbnn_im2col_int8_rows(const int8_t *x, int64_t batch, int64_t h, int64_t w, int64_t c, int64_t kh,
                               int64_t kw, int64_t stride, int64_t pad, int64_t oh, int64_t ow, int8_t *dst,
                               int64_t row_len, int64_t by0, int64_t by1) nogil
    int HBNN_INT8_PAD
    void hbnn_conv_xor(const hbnn_backend *be, const hbnn_conv_geometry *cg, const hbnn_xor_args *g,
                       int threads) nogil
    void hbnn_im2col_float(const float *x, int64_t batch, int64_t h, int64_t w, int64_t c,
                           const float *in_scale, const float *in_bias, int64_t kh, int64_t kw,
                           int64_t stride, int64_t pad, int64_t oh, int64_t ow, float *dst,
                           int64_t row_len, int threads) nogil
    void hbnn_binarize_float(const float *x, int64_t rows, int64_t n, const float *in_scale,
                             const float *in_bias, int64_t seg, float *out) nogil
    void hbnn_pool2d(const float *x, int64_t batch, int64_t h, int64_t w, int64_t c, int64_t k, int64_t s,
                     int avg, float *out) nogil
    void hbnn_softmax(const float *x, int64_t rows, int64_t n, float *out) nogil


BACKEND_NAMES = ("avx512", "avx2", "neon", "portable")  # best first


def available_backends():
    """The backends this build has and this CPU can run, best first."""
    return [n for n in BACKEND_NAMES if hbnn_backend_named(n.encode()) != NULL]


cdef const hbnn_backend *_startup_backend() except NULL:
    # HBNN_FORCE_PORTABLE=1 (triage) wins; HBNN_BACKEND=<name> picks one (e.g. avx2 to compare).
    if os.environ.get("HBNN_FORCE_PORTABLE", "") not in ("", "0"):
        return hbnn_select_backend(1)
    want = os.environ.get("HBNN_BACKEND", "")
    if want:
        if want not in available_backends():
            raise ImportError(f"HBNN_BACKEND={want!r}: expected one of {available_backends()} "
                              f"(the backends this build and CPU support), or unset it for the best one")
        return hbnn_backend_named(want.encode())
    return hbnn_select_backend(0)


cdef const hbnn_backend *_backend = _startup_backend()

MAX_PLANS_PER_WEIGHTS = 8
# Sign path: prebuild every filter panel when a call has at most this many rows (a dense layer at
# batch 1 would otherwise rebuild each panel to use it once), up to this many bytes per layer; and
# for any row count when all panels take at most PREBUILT_PANEL_SMALL_BYTES (LeNet's conv2 rebuilt
# 130 KB of panels per frame, ~10 % of its time).
PREBUILT_PANEL_MAX_ROWS = 8
PREBUILT_PANEL_MAX_BYTES = 16 << 20
PREBUILT_PANEL_SMALL_BYTES = 1 << 20


def backend_name():
    return (<bytes>_backend.name).decode()


def kernel_variant():
    """The backend's name, or its variant on this CPU: "neon-dotprod" when the NEON integer-scale
    int8 GEMM runs on SDOT (aarch64 cores with the dot product, e.g. Cortex-A76); "avx512-simde" in
    the emulated test build (setup.py: HBNN_SIMDE_AVX512=1)."""
    return (<bytes>hbnn_backend_variant(_backend)).decode()


def dotprod_supported():
    """Whether this CPU has the Armv8.2 dot product and this build its kernels (aarch64 only)."""
    return bool(hbnn_neon_dotprod_supported())


def _use_dotprod(on):
    """Test hook: the NEON int8 GEMM on SDOT (True) or on SMULL/SMLAL (False); returns the state."""
    cdef int state = hbnn_neon_use_dotprod(1 if on else 0)
    if state < 0:
        raise ValueError("SDOT kernels are not available here: aarch64 build on a CPU with the dot product only")
    return bool(state)


def _use_backend(name):
    """Test hook: switch the kernels to the named backend (see available_backends()); returns its name."""
    global _backend
    cdef const hbnn_backend *be = hbnn_backend_named(name.encode())
    if be == NULL:
        raise ValueError(f"backend {name!r} is not available here; available: {available_backends()}")
    _backend = be
    return backend_name()


def pack_rows_blocks(rows, int64_t beta, int L):
    """Test hook: the activation packer with block scales (one float per L-bit block)."""
    cdef const float *x = <const float *>_data(rows, F32)
    cdef int64_t r = rows.shape[0], k = rows.shape[1]
    cdef int64_t seg = _seg(beta, k)
    cdef int64_t nw = (k + 63) // 64
    bits = np.empty((r, nw), dtype=np.uint64)
    scales = np.empty((r, nw * 64 // L), dtype=np.float32)
    cdef uint64_t *b = <uint64_t *>_data(bits, U64, True)
    cdef float *s = <float *>_data(scales, F32, True)
    cdef int64_t nblk = scales.shape[1]
    with nogil:
        hbnn_pack_rows(_backend, x, r, k, k, NULL, NULL, seg, b, nw, s, nblk, L, 1)
    return bits, scales


cdef inline const float *_fptr(object a) except? NULL:
    """Pointer to a float32 C-contiguous array's data, or NULL for None."""
    if a is None:
        return NULL
    return <const float *>_data(a, F32)


cdef inline float *_wptr(object a) except NULL:
    """Pointer to a writable float32 C-contiguous array's data."""
    return <float *>_data(a, F32, True)


cdef inline void _set_epilogue(hbnn_epilogue *ep, outs, outb, bint relu):
    """The fused per-output-channel scale, bias and ReLU of every GEMM path."""
    ep.scale = _fptr(outs)
    ep.bias = _fptr(outb)
    ep.relu = relu


cdef inline int64_t _seg(int64_t beta, int64_t n):
    """Segment length on a row of n elements; beta < 0 means infinity."""
    if beta < 0 or beta > n:
        return n
    return beta


def pack_rows(rows, int64_t beta):
    """Canonical packing of float rows (O, K): bits (O, ceil(K/64)) and per-segment scales."""
    cdef const float *x = <const float *>_data(rows, F32)
    cdef int64_t o = rows.shape[0], k = rows.shape[1]
    cdef int64_t seg = _seg(beta, k)
    cdef int64_t nw = (k + 63) // 64, nseg = (k + seg - 1) // seg
    bits = np.empty((o, nw), dtype=np.uint64)
    scales = np.empty((o, nseg), dtype=np.float32)
    cdef uint64_t *b = <uint64_t *>_data(bits, U64, True)
    cdef float *s = <float *>_data(scales, F32, True)
    with nogil:
        hbnn_pack_rows(_backend, x, o, k, k, NULL, NULL, seg, b, nw, s, nseg, 0, 1)
    return bits, scales


def block_width(int64_t c, int64_t seg_a, int64_t k, int64_t seg_w):
    """Widest power-of-two block (<= 64 bits) inside which both segment scales are constant.

    Activation segments restart at every pixel (every c elements, each pixel padded to whole
    words); weight segments run along the whole (kh, kw, C) row of k elements.
    """
    cdef int64_t L = 64, e
    for e in range(seg_a, c, seg_a):
        L = gcd(L, e)
    for e in range(seg_w, k, seg_w):
        L = gcd(L, e % c)
    return L


def run_words(int64_t c, int64_t seg_a, int64_t k, int64_t seg_w):
    """Words per run for 64-bit blocks: the largest R such that every scale change of either operand
    falls on a multiple of R words (see xhbnn.h, hbnn_xor_args.run).

    Each pixel is ceil(c / 64) words and starts a new activation segment; activation segments of a
    multiple of 64 elements restart inside it, weight segments run along the whole row.
    """
    cdef int64_t wc = (c + 63) // 64, r = wc, e
    for e in range(seg_a, c, seg_a):
        r = gcd(r, e // 64)
    for e in range(seg_w, k, seg_w):
        r = gcd(r, (e // c) * wc + (e % c) // 64)
    return r


def _run_lengths(lens, int64_t run, int64_t nrun):
    """Real elements per run: the block lengths summed over each run's words."""
    return np.ascontiguousarray(lens[:run * nrun].reshape(nrun, run).sum(axis=1), dtype=np.float32)


def _unpack_rows(bits, int64_t k):
    """Canonical packed rows -> bool (O, k), True where negative."""
    as_bytes = np.ascontiguousarray(bits.astype("<u8", copy=False)).view(np.uint8)
    return np.unpackbits(as_bytes, axis=1, bitorder="little")[:, :k].astype(bool)


def _pack_bool(neg):
    """bool (O, nbits) with nbits a multiple of 64 -> uint64 words (O, nbits / 64)."""
    packed = np.packbits(neg, axis=1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def _xor_weights(pw, int64_t c, int64_t L, int64_t row_words, values=None):
    """Weights re-laid out for the xor path: pixels padded to whole words, block scales, lengths.

    ``values``: per-segment values to expand per block instead of the scales (integer levels)."""
    o = pw.shape[0]
    k = pw.row_length
    npix = k // c
    wc = (c + 63) // 64
    pix_blk = wc * 64 // L
    row_blk = row_words * 64 // L
    neg = _unpack_rows(pw.bits, k).reshape(o, npix, c)
    padded = np.zeros((o, row_words * 64), dtype=bool)
    padded[:, :npix * wc * 64].reshape(o, npix, wc * 64)[:, :, :c] = neg
    wbits = _pack_bool(padded)
    # block (pixel p, block t of the pixel) starts at element p*c + t*L; blocks past c are padding
    t = np.arange(pix_blk)
    start_in_pixel = t * L
    real = start_in_pixel < c
    elem = (np.arange(npix)[:, None] * c + np.minimum(start_in_pixel, c - 1)[None, :]).reshape(-1)
    seg_w = pw.row_length if pw.beta_w is None else min(pw.beta_w, k)
    values = pw.scales if values is None else values
    sw = np.zeros((o, row_blk), dtype=values.dtype)
    sw[:, :npix * pix_blk] = values[:, elem // seg_w] * np.tile(real, npix)[None, :].astype(values.dtype)
    lens = np.zeros(row_blk, dtype=np.float32)
    lens[:npix * pix_blk] = np.tile(np.clip(c - start_in_pixel, 0, L), npix)
    return wbits, sw, lens


def _dequantized(pw):
    """Binarized weights as floats (O, K): scale * sign."""
    k = pw.row_length
    neg = _unpack_rows(pw.bits, k)
    seg = k if pw.beta_w is None else min(pw.beta_w, k)
    sc = np.repeat(pw.scales, seg, axis=1)[:, :k]
    return np.where(neg, -sc, sc).astype(np.float32)


def _dense_panel(wmat):
    """Float weights (O, K) -> panels of 16 filters, (ceil(O/16), K, 16), zero past O."""
    o, k = wmat.shape
    npan = (o + 15) // 16
    padded = np.zeros((npan * 16, k), dtype=np.float32)
    padded[:o] = wmat
    return np.ascontiguousarray(padded.reshape(npan, 16, k).transpose(0, 2, 1))


cdef class ConvPlan:
    """Everything one conv/linear call shape needs, allocated once."""
    cdef public str path
    cdef public object lock
    cdef int64_t b, h, w, c, o, kh, kw, stride, pad, oh, ow, p
    cdef int64_t seg_a, seg_w, L, wc, pix_blk, row_words, row_blk, kpad, k
    cdef int binarize_acts
    cdef object wbits, wscales, lens, abits, ascales, img_bits, img_scales, cols, acts, wpanel, direct
    cdef object pw_bits, pw_scales, panels, run_len
    # integer scales: block levels, lengths and column scales (int-xor); int8 rows and weights (int8)
    cdef object aq, wq, qlen, col_scale, img_levels, acts8, cols8, w8
    cdef public float inv_act
    cdef int64_t kpad8
    cdef hbnn_int8_args gi
    cdef int16_t *aq_p
    cdef int8_t *acts8_p
    cdef int8_t *cols8_p
    # C arguments filled once by _bind (every internal buffer's address); a call sets x, out, epilogue
    cdef int path_id
    cdef bint is_direct
    cdef hbnn_xor_args gx
    cdef hbnn_conv_geometry cg
    cdef hbnn_sign_args gs
    cdef hbnn_dense_args gd
    cdef float *acts_p
    cdef float *cols_p
    cdef uint64_t *abits_p
    cdef float *ascales_p
    cdef int64_t row_len

    def __init__(self, pw, tuple xshape, int64_t beta_a, int64_t stride, int64_t pad):
        self.lock = threading.Lock()
        self.b, self.h, self.w, self.c = xshape
        self.o = pw.shape[0]
        self.kh, self.kw = (pw.shape[1], pw.shape[2]) if len(pw.shape) == 4 else (1, 1)
        self.stride, self.pad = stride, pad
        self.oh = (self.h + 2 * pad - self.kh) // stride + 1
        self.ow = (self.w + 2 * pad - self.kw) // stride + 1
        self.p = self.b * self.oh * self.ow
        self.k = pw.row_length
        self.kpad = (self.k + HBNN_FLOAT_PAD - 1) // HBNN_FLOAT_PAD * HBNN_FLOAT_PAD
        self.seg_a = _seg(beta_a, self.c)
        self.binarize_acts = 0
        self.seg_w = self.k if pw.beta_w is None else min(pw.beta_w, self.k)
        self.direct = self.kh == 1 and self.kw == 1 and stride == 1 and pad == 0
        bw = pw.beta_w
        if pw.levels is not None:
            self._plan_int(pw)
        elif bw == 1:
            self._plan_float(pw, beta_a != 1)
        elif beta_a == 1:
            self._plan_sign(pw, False)
        else:
            self.L = block_width(self.c, self.seg_a, self.k, self.seg_w)
            if self.L >= 8:
                self._plan_xor(pw)
            elif self.seg_a <= self.seg_w:
                self._plan_sign(pw, True)   # activations have the short segments: make them floats
            else:
                self.wpanel = _dense_panel(_dequantized(pw))
                self._plan_float(None, True)
        self._bind()

    def _plan_int(self, pw):
        """Integer scales: the xor path on levels for blocks of 8 bits or more (levels every 16 bits at
        most: wider blocks are split, same sums), else the int8 GEMM."""
        self.inv_act = float(_ref_int.inverse_factor(pw.act_factor))
        self.col_scale = _ref_int.column_scales(pw.factors, pw.act_factor)
        L = min(block_width(self.c, self.seg_a, self.k, self.seg_w), 16)
        if L >= 8:
            self.L = L
            self._plan_xor(pw, np.ascontiguousarray(pw.levels, dtype=np.int16))
            return
        self.path = "int8"
        self.kpad8 = (self.k + HBNN_INT8_PAD - 1) // HBNN_INT8_PAD * HBNN_INT8_PAD
        neg = _unpack_rows(pw.bits, self.k)
        q = np.repeat(np.asarray(pw.levels, dtype=np.int8), self.seg_w, axis=1)[:, :self.k]
        self.w8 = np.zeros((self.o, self.kpad8), dtype=np.int8)
        self.w8[:, :self.k] = np.where(neg, -q, q)
        self.acts8 = np.zeros((self.b, self.h, self.w, self.c), dtype=np.int8)
        self.cols8 = np.zeros((self.p, self.kpad8), dtype=np.int8)

    def _plan_float(self, pw, bint binarize_acts):
        self.path = "float"
        self.binarize_acts = binarize_acts
        if pw is not None:
            self.wpanel = _dense_panel(pw.dense.reshape(self.o, -1))
        self.cols = np.empty((self.p, self.k), dtype=np.float32)
        if binarize_acts:
            self.acts = np.empty((self.b, self.h, self.w, self.c), dtype=np.float32)

    def _plan_sign(self, pw, bint binarize_acts):
        self.path = "sign"
        self.binarize_acts = binarize_acts
        self.pw_bits, self.pw_scales = pw.bits, pw.scales
        self.cols = np.zeros((self.p, self.kpad), dtype=np.float32)
        self._build_panels()
        if binarize_acts:
            self.acts = np.empty((self.b, self.h, self.w, self.c), dtype=np.float32)

    def _plan_xor(self, pw, levels=None):
        """The xor path; ``levels`` (int16 per segment): integer scales, block levels instead of scales."""
        self.path = "xor" if levels is None else "int-xor"
        self.wc = (self.c + 63) // 64
        self.pix_blk = self.wc * 64 // self.L
        raw_words = self.kh * self.kw * self.wc
        self.row_words = (raw_words + HBNN_ROW_WORDS - 1) // HBNN_ROW_WORDS * HBNN_ROW_WORDS
        self.row_blk = self.row_words * 64 // self.L
        self.run_len = None
        if levels is None:
            self.wbits, self.wscales, self.lens = _xor_weights(pw, self.c, self.L, self.row_words)
            if self.L == 64:
                run = run_words(self.c, self.seg_a, self.k, self.seg_w)
                self.run_len = _run_lengths(self.lens, run, raw_words // run)
        else:
            self.wbits, self.wq, lens = _xor_weights(pw, self.c, self.L, self.row_words, levels)
            self.qlen = np.ascontiguousarray(lens, dtype=np.int16)
            self.aq = np.zeros((self.p, self.row_blk), dtype=np.int16)
        self.abits = np.zeros((self.p, self.row_words), dtype=np.uint64)
        # float block scales: the packer's output (with integer scales, quantized to levels after it)
        self.ascales = np.zeros((self.p, self.row_blk), dtype=np.float32)
        if not self.direct:
            hp, wp = self.h + 2 * self.pad, self.w + 2 * self.pad
            # zero border = zero padding after binarization; only the interior is ever written
            self.img_bits = np.zeros((self.b, hp, wp, self.wc), dtype=np.uint64)
            self.img_scales = np.zeros((self.b, hp, wp, self.pix_blk), dtype=np.float32)
            if levels is not None:
                self.img_levels = np.zeros((self.b, hp, wp, self.pix_blk), dtype=np.int16)

    cdef void _sign_args(self, hbnn_sign_args *g):
        """Everything of the sign GEMM's arguments that does not change between calls."""
        g.m = self.p
        g.k = self.k
        g.kpad = self.kpad
        g.bits = <const uint64_t *>_data(self.pw_bits, U64)
        g.nwords = self.pw_bits.shape[1]
        g.scales = <const float *>_data(self.pw_scales, F32)
        g.nseg = self.pw_scales.shape[1]
        g.seg = self.seg_w
        g.n = self.o
        g.panels = NULL
        if self.panels is not None:
            g.panels = <float *>_data(self.panels, F32, True)

    cdef void _build_panels(self):
        """Prebuild the sign GEMM's filter panels (few rows per call), if the backend reads them."""
        cdef hbnn_sign_args g
        cdef int64_t count
        self.panels = None
        self._sign_args(&g)
        count = (self.o + 15) // 16 * hbnn_sign_panel_floats(&g)
        if count * 4 > PREBUILT_PANEL_MAX_BYTES or (self.p > PREBUILT_PANEL_MAX_ROWS
                                                    and count * 4 > PREBUILT_PANEL_SMALL_BYTES):
            return
        raw = np.zeros(count + 8, dtype=np.float32)
        start = (-raw.ctypes.data % 32) // 4  # 32-byte aligned view
        panels = raw[start:start + count]
        if hbnn_sign_build_panels(_backend, &g, <float *>_data(panels, F32, True)):
            self.panels = panels

    cdef void _bind(self):
        """Fill the C arguments that never change: shapes and the addresses of the plan's own buffers
        (held by this object, so the addresses stay valid). A call then only sets x, out and the
        epilogue: no memoryview, no allocation, which matters for layers of a few microseconds."""
        cdef float *cv
        cdef int8_t *c8v
        self.acts_p = NULL
        self.cols_p = NULL
        self.gx.aq, self.gx.bq, self.gx.qlen, self.gx.col_scale = NULL, NULL, NULL, NULL
        self.cg.img_levels = NULL
        if self.path == "int8":
            self.path_id = 4
            c8v = <int8_t *>_data(self.cols8, I8, True)
            self.acts8_p, self.cols8_p = <int8_t *>_data(self.acts8, I8, True), c8v
            self.gi.a, self.gi.m, self.gi.k, self.gi.kpad = c8v, self.p, self.k, self.kpad8
            self.gi.w, self.gi.n, self.gi.ldo = <const int8_t *>_data(self.w8, I8), self.o, self.o
            self.gi.col_scale = <const float *>_data(self.col_scale, F32)
            return
        if self.acts is not None:
            self.acts_p = <float *>_data(self.acts, F32, True)
        if self.path == "float":
            self.path_id = 0
            cv = <float *>_data(self.cols, F32, True)
            self.cols_p, self.row_len = cv, self.k
            self.gd.f, self.gd.m, self.gd.k = cv, self.p, self.k
            self.gd.wpanel = <const float *>_data(self.wpanel, F32)
            self.gd.n, self.gd.ldo = self.o, self.o
        elif self.path == "sign":
            self.path_id = 1
            cv = <float *>_data(self.cols, F32, True)
            self.cols_p, self.row_len = cv, self.kpad
            self._sign_args(&self.gs)
            self.gs.f, self.gs.ldo = cv, self.o
        else:
            self.path_id = 3 if self.path == "int-xor" else 2
            self.is_direct = bool(self.direct)
            self.abits_p = <uint64_t *>_data(self.abits, U64, True)
            self.ascales_p = <float *>_data(self.ascales, F32, True)
            self.gx.a, self.gx.as_, self.gx.m = self.abits_p, self.ascales_p, self.p
            self.gx.b, self.gx.n = <const uint64_t *>_data(self.wbits, U64), self.o
            self.gx.kwords, self.gx.nblk, self.gx.L = self.row_words, self.row_blk, <int>self.L
            if self.path_id == 3:
                self.aq_p = <int16_t *>_data(self.aq, I16, True)
                self.gx.aq, self.gx.bq = self.aq_p, <const int16_t *>_data(self.wq, I16)
                self.gx.qlen = <const int16_t *>_data(self.qlen, I16)
                self.gx.col_scale = <const float *>_data(self.col_scale, F32)
                self.gx.inv_act = self.inv_act
                self.gx.bs, self.gx.len = NULL, NULL
            else:
                self.gx.bs, self.gx.len = <const float *>_data(self.wscales, F32), <const float *>_data(self.lens, F32)
            self.gx.run, self.gx.nrun, self.gx.run_len = 0, 0, NULL
            if self.run_len is not None:
                self.gx.nrun, self.gx.run_len = self.run_len.shape[0], <const float *>_data(self.run_len, F32)
                self.gx.run = self.kh * self.kw * self.wc // self.gx.nrun
            self.gx.ldo = self.o
            if not self.direct:
                self.cg.batch, self.cg.h, self.cg.w, self.cg.c = self.b, self.h, self.w, self.c
                self.cg.seg, self.cg.pad = self.seg_a, self.pad
                self.cg.img_bits = <uint64_t *>_data(self.img_bits, U64, True)
                self.cg.img_scales = <float *>_data(self.img_scales, F32, True)
                self.cg.pix_words, self.cg.pix_blk = self.wc, self.pix_blk
                self.cg.kh, self.cg.kw, self.cg.stride, self.cg.oh, self.cg.ow = \
                    self.kh, self.kw, self.stride, self.oh, self.ow
                if self.path_id == 3:
                    self.cg.img_levels = <int16_t *>_data(self.img_levels, I16, True)
                    self.cg.inv_act = self.inv_act

    cdef void run_ptr(self, const float *x, float *out, const float *ins, const float *inb, const float *outs,
                      const float *outb, bint relu, int threads) noexcept nogil:
        """One call on raw pointers (x and out of this plan's shapes; ins..outb NULL when absent)."""
        cdef const float *src = x
        cdef hbnn_epilogue ep
        ep.scale, ep.bias, ep.relu = outs, outb, relu
        if self.path_id == 4:
            hbnn_binarize_int8(x, self.b * self.h * self.w, self.c, ins, inb, self.seg_a, self.inv_act, self.acts8_p)
            hbnn_im2col_int8_rows(self.acts8_p, self.b, self.h, self.w, self.c, self.kh, self.kw, self.stride,
                                  self.pad, self.oh, self.ow, self.cols8_p, self.kpad8, 0, self.b * self.oh)
            self.gi.out, self.gi.ep = out, ep
            hbnn_int8_gemm(_backend, &self.gi, threads)
            return
        if self.path_id == 2 or self.path_id == 3:
            self.gx.out, self.gx.ep = out, ep
            if self.is_direct:
                # a dense layer: its rows are already the GEMM's rows, no image and no im2col
                hbnn_pack_rows(_backend, x, self.p, self.c, self.c, ins, inb, self.seg_a, self.abits_p,
                               self.row_words, self.ascales_p, self.row_blk, <int>self.L, threads)
                if self.path_id == 3:
                    hbnn_quantize_levels(self.ascales_p, self.p * self.row_blk, self.inv_act, self.aq_p)
                hbnn_xor_gemm(_backend, &self.gx, threads)
            else:
                self.cg.x, self.cg.in_scale, self.cg.in_bias = x, ins, inb
                hbnn_conv_xor(_backend, &self.cg, &self.gx, threads)
            return
        if self.binarize_acts:
            # the affine goes into the binarization; the im2col then copies plain floats
            hbnn_binarize_float(x, self.b * self.h * self.w, self.c, ins, inb, self.seg_a, self.acts_p)
            src, ins, inb = self.acts_p, NULL, NULL
        hbnn_im2col_float(src, self.b, self.h, self.w, self.c, ins, inb, self.kh, self.kw, self.stride, self.pad,
                          self.oh, self.ow, self.cols_p, self.row_len, threads)
        if self.path_id == 1:
            self.gs.out, self.gs.ep = out, ep
            hbnn_sign_gemm(_backend, &self.gs, threads)
        else:
            self.gd.out, self.gd.ep = out, ep
            hbnn_dense_gemm(_backend, &self.gd, threads)

    def run(self, x, ins, inb, outs, outb, bint relu, result, int threads):
        cdef const float *xp = _fptr(x)
        cdef float *op = _wptr(result)
        cdef const float *s = _fptr(ins)
        cdef const float *bias = _fptr(inb)
        cdef const float *os = _fptr(outs)
        cdef const float *ob = _fptr(outb)
        with nogil:
            self.run_ptr(xp, op, s, bias, os, ob, relu, threads)


def _plan_for(pw, tuple xshape, int64_t beta_a, int64_t stride, int64_t pad):
    key = (xshape, beta_a, stride, pad)
    plans = pw._prepared
    plan = plans.get(key)
    if plan is None:
        if len(plans) >= MAX_PLANS_PER_WEIGHTS:
            plans.clear()
        plan = ConvPlan(pw, xshape, beta_a, stride, pad)
        plans[key] = plan
    return plan


def _run(pw, x, tuple xshape, int64_t beta_a, int64_t stride, int64_t pad, int threads,
         ins, inb, outs, outb, bint relu, result):
    plan = _plan_for(pw, xshape, beta_a, stride, pad)
    if plan.lock.acquire(False):
        try:
            plan.run(x, ins, inb, outs, outb, relu, result, threads)
        finally:
            plan.lock.release()
    else:
        # the cached plan is busy in another thread: use a private one (allocates)
        ConvPlan(pw, xshape, beta_a, stride, pad).run(x, ins, inb, outs, outb, relu, result, threads)


def conv2d(x, pw, int64_t beta_a, int64_t stride, int64_t padding, int threads, ins, inb, outs, outb,
           bint relu, result):
    _run(pw, x, x.shape, beta_a, stride, padding, threads, ins, inb, outs, outb, relu, result)


def linear(x, pw, int64_t beta_a, int threads, ins, inb, outs, outb, bint relu, result):
    m, k = x.shape
    # a dense layer is a 1x1 conv over M one-pixel images of K channels
    _run(pw, x.reshape(m, 1, 1, k), (m, 1, 1, k), beta_a, 1, 0, threads, ins, inb, outs, outb, relu, result)


cdef class PreparedOp:
    """One conv/linear bound to its weights, input shape, epilogue and buffers.

    Built by cy_kernels.prepare_conv2d / prepare_linear after full validation; a call only
    checks that x and out are the expected float32 C-contiguous arrays, then runs. Calling again
    with the very same x and out arrays (what an interpreter does every frame) skips even that
    and reuses their addresses: do not resize them in place between calls. Not thread-safe: give
    each thread its own PreparedOp.
    """
    cdef ConvPlan plan
    cdef readonly tuple input_shape
    cdef readonly tuple output_shape
    cdef tuple conv_shape
    cdef object ins, inb, outs, outb
    cdef const float *ins_p
    cdef const float *inb_p
    cdef const float *outs_p
    cdef const float *outb_p
    cdef bint relu
    cdef int threads
    cdef object last_x, last_out    # the arrays of the last call, and their data addresses
    cdef const float *last_xp
    cdef float *last_outp

    def __init__(self, pw, tuple input_shape, tuple conv_shape, tuple output_shape, int64_t beta_a,
                 int64_t stride, int64_t padding, int threads, ins, inb, outs, outb, bint relu):
        self.plan = ConvPlan(pw, conv_shape, beta_a, stride, padding)
        self.input_shape, self.conv_shape, self.output_shape = input_shape, conv_shape, output_shape
        self.threads = threads
        self.ins, self.inb, self.outs, self.outb, self.relu = ins, inb, outs, outb, relu
        self.ins_p, self.inb_p, self.outs_p, self.outb_p = _fptr(ins), _fptr(inb), _fptr(outs), _fptr(outb)

    @property
    def path(self):
        """Which kernel path runs: "xor", "sign", "float", or with integer scales "int-xor" or "int8"."""
        return self.plan.path

    def __call__(self, x, out=None):
        if x is self.last_x and out is self.last_out and x.shape == self.input_shape \
                and out.shape == self.output_shape:
            with nogil:
                self.plan.run_ptr(self.last_xp, self.last_outp, self.ins_p, self.inb_p, self.outs_p, self.outb_p,
                                  self.relu, self.threads)
            return out
        if type(x) is not np.ndarray or x.dtype != np.float32 or x.shape != self.input_shape \
                or not x.flags.c_contiguous:
            raise ValueError(f"Expected x as a C-contiguous float32 array of shape {self.input_shape}, got "
                             f"{getattr(x, 'dtype', type(x).__name__)} {getattr(x, 'shape', '')}")
        given = out is not None
        if not given:
            out = np.empty(self.output_shape, dtype=np.float32)
        elif type(out) is not np.ndarray or out.dtype != np.float32 or out.shape != self.output_shape \
                or not out.flags.c_contiguous or not out.flags.writeable:
            raise ValueError(f"Expected out as a writable C-contiguous float32 array of shape {self.output_shape}")
        cdef const float *xp = _fptr(x)
        cdef float *op = _wptr(out)
        with nogil:
            self.plan.run_ptr(xp, op, self.ins_p, self.inb_p, self.outs_p, self.outb_p, self.relu, self.threads)
        if given:
            self.last_x, self.last_out, self.last_xp, self.last_outp = x, out, xp, op
        return out


cdef class BoundPool:
    """Max/avg pooling from one fixed float32 NHWC array into another (a runtime step, no arguments)."""
    cdef object x, out
    cdef const float *xp
    cdef float *op
    cdef int64_t b, h, w, c, k, s
    cdef int avg

    def __init__(self, str kind, x, out, int64_t k, int64_t s):
        if kind not in ("maxpool", "avgpool"):
            raise ValueError(f"Expected kind 'maxpool' or 'avgpool', got {kind!r}")
        _check_f32(x, "x", 4)
        _check_f32(out, "out", 4)
        b, h, w, c = x.shape
        if k < 1 or s < 1 or k > h or k > w:
            raise ValueError(f"Expected a window 1 <= k <= {min(h, w)} and a stride >= 1 on {x.shape}, got k={k}, s={s}")
        if out.shape != (b, (h - k) // s + 1, (w - k) // s + 1, c):
            raise ValueError(f"Expected out of shape {(b, (h - k) // s + 1, (w - k) // s + 1, c)} for a {k}x{k} "
                             f"window, stride {s}, on {x.shape}; got {out.shape}")
        self.x, self.out, self.k, self.s, self.avg = x, out, k, s, kind == "avgpool"
        self.b, self.h, self.w, self.c = b, h, w, c
        self.xp, self.op = _fptr(x), _wptr(out)

    def __call__(self):
        with nogil:
            hbnn_pool2d(self.xp, self.b, self.h, self.w, self.c, self.k, self.s, self.avg, self.op)


cdef class BoundSoftmax:
    """Softmax over the last axis from one fixed float32 array into another (a runtime step)."""
    cdef object x, out
    cdef const float *xp
    cdef float *op
    cdef int64_t rows, n

    def __init__(self, x, out):
        _check_f32(x, "x", 0)
        _check_f32(out, "out", 0)
        if out.shape != x.shape or x.size == 0:
            raise ValueError(f"Expected x and out of the same non-empty shape, got {x.shape} and {out.shape}")
        self.x, self.out = x, out
        self.n = x.shape[x.ndim - 1]  # (wraparound is off in this module: no negative indices)
        self.rows = x.size // self.n
        self.xp, self.op = _fptr(x), _wptr(out)

    def __call__(self):
        with nogil:
            hbnn_softmax(self.xp, self.rows, self.n, self.op)


cdef _check_f32(a, str name, int ndim):
    if type(a) is not np.ndarray or a.dtype != np.float32 or not a.flags.c_contiguous or (ndim and a.ndim != ndim):
        raise ValueError(f"Expected {name} as a C-contiguous float32 array" + (f" of {ndim} dimensions" if ndim else "")
                         + f", got {getattr(a, 'dtype', type(a).__name__)} {getattr(a, 'shape', '')}")


include "_frame.pxi"

"""Validation and dispatch for the public kernel API.

Everything a caller can get wrong is checked here, once, with a message naming
what was expected; the compiled kernels (``_xhbnn``) then trust their inputs.
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from . import reference as ref
from .packed import PackedWeights  # re-exported: part of the public API
from .reference import Beta, format_beta, normalize_beta

try:
    from . import _xhbnn as _ext
except ImportError as exc:  # pragma: no cover - only on a source tree that was never built
    raise ImportError(
        "cy_kernels._xhbnn is not built. Build it with `make build` (or `pip install -e .`, or "
        "`python setup.py build_ext --inplace`) from the repository root."
    ) from exc


def backend_name() -> str:
    """The kernel family in use: "avx512", "avx2", "neon" or "portable".

    The best one this CPU runs is picked at import; ``HBNN_BACKEND=<name>`` picks another that
    ``available_backends()`` lists, and ``HBNN_FORCE_PORTABLE=1`` forces the portable C loops.
    """
    return _ext.backend_name()


def available_backends() -> List[str]:
    """The kernel families this build has and this CPU can run, best first."""
    return list(_ext.available_backends())


def _require_float32(a, name, ndim):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"Expected {name} to be a float32 numpy.ndarray, got {type(a).__name__}")
    if a.dtype != np.float32:
        raise TypeError(f"Expected {name} of dtype float32, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"Expected {name} of rank {ndim}, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"Expected a non-empty {name}, got shape {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"Expected {name} to be C-contiguous (use numpy.ascontiguousarray)")
    return a


def _require_vector(v, name, n):
    if v is None:
        return None
    v = _require_float32(v, name, 1)
    if v.shape[0] != n:
        raise ValueError(f"Expected {name} of shape ({n},), got {v.shape}")
    return v


def _threads(threads) -> int:
    if isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1:
        raise ValueError(f"Expected threads to be an int >= 1, got {threads!r}")
    return int(threads)


def pack_weights(w: np.ndarray, beta_w: Beta, *, act_factor=None) -> PackedWeights:
    """Pack float weights (O, K) or (O, kh, kw, C) once; reuse the result for every call.

    ``act_factor`` (a float > 0): integer scales (docs/DESIGN.md, section 9): the weights become
    levels x per-filter factors (``reference_int.pack_rows_int``) and every call quantizes the
    activation scales against this factor; the layer's integer sums are then exact.
    """
    beta = normalize_beta(beta_w, "beta_w")
    if not isinstance(w, np.ndarray) or w.ndim not in (2, 4):
        raise ValueError(f"Expected w as a float32 array of shape (O, K) or (O, kh, kw, C), got "
                         f"{getattr(w, 'shape', type(w).__name__)}")
    w = _require_float32(w, "w", w.ndim)
    rows = w.reshape(w.shape[0], -1)
    if act_factor is not None:
        from . import reference_int as ref_int

        if beta == 1:
            raise ValueError("Expected beta_w > 1 for integer scales, got 1 (full precision)")
        bits, levels, factors = ref_int.pack_rows_int(rows, beta)
        return PackedWeights.from_packed_int(bits, levels, factors, act_factor, w.shape, beta)
    if beta == 1:
        return PackedWeights(w.shape, 1, None, None, dense=w.copy())
    bits, scales = _ext.pack_rows(rows, -1 if beta is None else beta)
    return PackedWeights(w.shape, beta, bits, scales)


def _as_packed(w, beta_w, ndim: int) -> PackedWeights:
    beta = normalize_beta(beta_w, "beta_w")
    if isinstance(w, PackedWeights):
        if w.beta_w != beta:
            raise ValueError(f"Expected beta_w={format_beta(w.beta_w)} (the packed weights' beta_w), "
                             f"got {format_beta(beta)}")
        if len(w.shape) != ndim:
            raise ValueError(f"Expected packed weights of rank {ndim}, got shape {w.shape}")
        return w
    _require_float32(w, "w", ndim)
    return pack_weights(w, beta)


def _check_pair(beta_w: Optional[int], beta_a: Optional[int], pw: Optional[PackedWeights] = None) -> None:
    ref.check_betas(beta_w, beta_a)
    if pw is not None and pw.int_scales and beta_a == 1:
        raise ValueError("Expected beta_a > 1 with integer-scale weights (the activations are quantized too), got 1")


def _epilogue_args(n_in, n_out, in_scale, in_bias, out_scale, out_bias):
    return (_require_vector(in_scale, "in_scale", n_in), _require_vector(in_bias, "in_bias", n_in),
            _require_vector(out_scale, "out_scale", n_out), _require_vector(out_bias, "out_bias", n_out))


def _output(out, shape) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape \
            or not out.flags.c_contiguous:
        raise ValueError(f"Expected out as a C-contiguous float32 array of shape {shape}, got "
                         f"{getattr(out, 'dtype', type(out).__name__)} {getattr(out, 'shape', '')}")
    return out


def hbnn_linear(x: np.ndarray, w, beta_w: Beta, beta_a: Beta, threads: int = 1, *,
                in_scale=None, in_bias=None, out_scale=None, out_bias=None, relu: bool = False,
                out: Optional[np.ndarray] = None) -> np.ndarray:
    """binarize_rows(x, beta_a) @ binarize_rows(w, beta_w).T for x (M, K), w (N, K) -> (M, N)."""
    bw, ba = normalize_beta(beta_w, "beta_w"), normalize_beta(beta_a, "beta_a")
    _check_pair(bw, ba)
    x = _require_float32(x, "x", 2)
    pw = _as_packed(w, bw, 2)
    _check_pair(bw, ba, pw)
    m, k = x.shape
    if pw.row_length != k:
        raise ValueError(f"Expected w with K={k} columns (x is {x.shape}), got weights of shape {pw.shape}")
    ins, inb, outs, outb = _epilogue_args(k, pw.rows, in_scale, in_bias, out_scale, out_bias)
    result = _output(out, (m, pw.rows))
    _ext.linear(x, pw, -1 if ba is None else ba, _threads(threads), ins, inb, outs, outb, bool(relu), result)
    return result


def conv_output_shape(x_shape: Tuple[int, ...], w_shape: Tuple[int, ...], stride: int, padding: int):
    b, h, w_, _ = x_shape
    _, kh, kw, _ = w_shape
    return (b, ref.conv_output_size(h, kh, stride, padding), ref.conv_output_size(w_, kw, stride, padding),
            w_shape[0])


def hbnn_conv2d(x: np.ndarray, w, beta_w: Beta, beta_a: Beta, stride: int = 1, padding: int = 0,
                threads: int = 1, *, in_scale=None, in_bias=None, out_scale=None, out_bias=None,
                relu: bool = False, out: Optional[np.ndarray] = None) -> np.ndarray:
    """xHBNN conv: x NHWC (B, H, W, C), w (O, kh, kw, C) -> (B, H', W', O), zero padding."""
    bw, ba = normalize_beta(beta_w, "beta_w"), normalize_beta(beta_a, "beta_a")
    _check_pair(bw, ba)
    x = _require_float32(x, "x", 4)
    pw = _as_packed(w, bw, 4)
    _check_pair(bw, ba, pw)
    for name, v in (("stride", stride), ("padding", padding)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"Expected {name} to be an int, got {type(v).__name__}")
    if stride < 1:
        raise ValueError(f"Expected stride >= 1, got {stride}")
    if padding < 0:
        raise ValueError(f"Expected padding >= 0, got {padding}")
    o, kh, kw, c = pw.shape
    if x.shape[3] != c:
        raise ValueError(f"Expected x with C={c} channels (weights {pw.shape}), got x of shape {x.shape}")
    if x.shape[1] + 2 * padding < kh or x.shape[2] + 2 * padding < kw:
        raise ValueError(f"Expected a padded input of at least {kh}x{kw}, got {x.shape[1]}x{x.shape[2]} "
                         f"with padding {padding}")
    shape = conv_output_shape(x.shape, pw.shape, int(stride), int(padding))
    ins, inb, outs, outb = _epilogue_args(c, o, in_scale, in_bias, out_scale, out_bias)
    result = _output(out, shape)
    _ext.conv2d(x, pw, -1 if ba is None else ba, int(stride), int(padding), _threads(threads),
                ins, inb, outs, outb, bool(relu), result)
    return result


def prepare_conv2d(w, beta_w: Beta, beta_a: Beta, input_shape, stride: int = 1, padding: int = 0,
                   threads: int = 1, *, in_scale=None, in_bias=None, out_scale=None, out_bias=None,
                   relu: bool = False):
    """Validate once and bind a conv to one input shape: returns a callable ``op(x, out=None)``.

    Per call, the op only checks that ``x``/``out`` are float32 C-contiguous arrays of the bound
    shapes; every buffer is allocated here. Use it for per-frame inference (the runtime does).
    """
    shape = tuple(int(s) for s in input_shape)
    probe = np.zeros(shape, dtype=np.float32)
    # run the public checks once on a zero input of the right shape (also builds nothing twice:
    # the probe's plan lives on the PackedWeights cache, the op gets its own)
    bw, ba = normalize_beta(beta_w, "beta_w"), normalize_beta(beta_a, "beta_a")
    pw = _as_packed(w, bw, 4)
    out = hbnn_conv2d(probe, pw, bw, ba, stride, padding, threads, in_scale=in_scale, in_bias=in_bias,
                      out_scale=out_scale, out_bias=out_bias, relu=relu)
    pw._prepared.clear()
    return _ext.PreparedOp(pw, shape, shape, out.shape, -1 if ba is None else ba, int(stride), int(padding),
                           _threads(threads), in_scale, in_bias, out_scale, out_bias, bool(relu))


def prepare_linear(w, beta_w: Beta, beta_a: Beta, batch: int, threads: int = 1, *, in_scale=None,
                   in_bias=None, out_scale=None, out_bias=None, relu: bool = False):
    """Like prepare_conv2d for a dense layer with inputs of shape (batch, K)."""
    bw, ba = normalize_beta(beta_w, "beta_w"), normalize_beta(beta_a, "beta_a")
    pw = _as_packed(w, bw, 2)
    shape = (int(batch), pw.row_length)
    out = hbnn_linear(np.zeros(shape, dtype=np.float32), pw, bw, ba, threads, in_scale=in_scale,
                      in_bias=in_bias, out_scale=out_scale, out_bias=out_bias, relu=relu)
    pw._prepared.clear()
    return _ext.PreparedOp(pw, shape, (shape[0], 1, 1, shape[1]), out.shape, -1 if ba is None else ba, 1, 0,
                           _threads(threads), in_scale, in_bias, out_scale, out_bias, bool(relu))


def frame_executor(ops, threads: int = 1, adaptive: bool = True):
    """Run prepared steps (``prepare_*`` ops bound to their buffers, pooling, softmax, affine, ReLU:
    see ``_xhbnn.FrameExecutor``) as one C call per frame on ``threads`` threads; ``.run()`` runs a
    frame. Returns None when a step is not one the executor knows (run the ops one by one then).

    ``adaptive``: when the other threads do not pay (another process holds their cores), frames
    fall back to the calling thread alone for a while; results are the same either way.
    """
    return _ext.frame_executor(list(ops), _threads(threads), bool(adaptive))


__all__ = ["PackedWeights", "available_backends", "backend_name", "frame_executor", "hbnn_conv2d", "hbnn_linear", "pack_weights", "prepare_conv2d",
           "prepare_linear"]

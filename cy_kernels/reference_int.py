"""NumPy ground truth of the integer-scale mode (docs/DESIGN.md, section 9).

Every scale is a 7-bit level ``q`` (0..127) times a float32 factor: one per output filter for the
weights (stored), one per layer for the activations (trained, stored). The dot product of a layer is
then an exact integer,

    acc[i][j] = sum_e (qa[i][seg(e)] * sign(a[i][e])) * (qw[j][seg(e)] * sign(w[j][e]))

computed here as an int64 matrix product of the expanded integers, and the output is the one float
multiply ``float32(acc) * float32(fa * fw[j])``. The kernels are bit-exact to these functions.
Like ``reference``, plain and slow on purpose, and it needs no compiled extension.
"""
from __future__ import annotations

from typing import Tuple

import numpy as np

from . import reference as ref
from .reference import Beta

LEVEL_MAX = 127                      # levels are 0..127: q * sign is a signed byte
# |acc| <= 127 * 127 * K must fit int32: the largest row length of an integer-scale layer.
MAX_INT_K = (2 ** 31 - 1) // (LEVEL_MAX * LEVEL_MAX)   # 133,144


def check_k(k: int) -> int:
    """Refuse a row length whose integer sums could overflow int32."""
    if k > MAX_INT_K:
        raise ValueError(f"Expected at most K={MAX_INT_K} elements per row for integer scales "
                         f"(127 * 127 * K must fit int32), got K={k}")
    return k


def inverse_factor(factor) -> np.float32:
    """``1.0f / factor`` in float32 (one IEEE division: every kernel computes the same value)."""
    f = np.float32(factor)
    if not (np.isfinite(f) and f > 0):
        raise ValueError(f"Expected a finite factor > 0, got {factor!r}")
    with np.errstate(over="ignore"):
        return np.float32(1.0) / f


def quantize(scales: np.ndarray, inv) -> np.ndarray:
    """Levels of float32 scales: ``v = scale * inv`` (float32), 0 for NaN or v <= 0, 127 for v >= 127,
    else v rounded to nearest, ties to even. ``inv`` broadcasts (one per row: shape (..., 1))."""
    s = np.asarray(scales, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        v = s * np.asarray(inv, dtype=np.float32)
        v = np.where(np.isnan(v), np.float32(0), v)
        v = np.clip(v, np.float32(0), np.float32(LEVEL_MAX))
    return np.rint(v).astype(np.uint8)   # rint: round half to even


def weight_factors(scales: np.ndarray) -> np.ndarray:
    """Per-filter factor: the filter's largest segment scale / 127 (float32), 1.0 for an all-zero filter."""
    s = np.asarray(scales, dtype=np.float32)
    top = s.max(axis=-1)
    return np.where(top > 0, top / np.float32(LEVEL_MAX), np.float32(1)).astype(np.float32)


def pack_rows_int(rows: np.ndarray, beta_w: Beta) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sign bits, levels uint8 (O, nseg), factors float32 (O,)) of weight rows (O, K): what a file stores."""
    rows = np.asarray(rows, dtype=np.float32)
    bits, scales = ref.pack_rows(rows, beta_w)
    factors = weight_factors(scales)
    inv = np.array([inverse_factor(f) for f in factors], dtype=np.float32)[:, None]
    return bits, quantize(scales, inv), factors


def expand_int(levels: np.ndarray, negative: np.ndarray, beta: Beta) -> np.ndarray:
    """int64 ``q[segment] * sign`` per element: levels (..., nseg), negative bool (..., n)."""
    n = negative.shape[-1]
    seg = ref.segment_length(beta, n)
    q = np.repeat(np.asarray(levels, dtype=np.int64), seg, axis=-1)[..., :n]
    return np.where(negative, -q, q)


def weight_ints(bits: np.ndarray, levels: np.ndarray, k: int, beta_w: Beta) -> np.ndarray:
    """The stored weights as int64 ``qw * sign`` rows (O, K)."""
    return expand_int(levels, ref.unpack_bits(bits, k), beta_w)


def activation_ints(x: np.ndarray, beta_a: Beta, act_factor) -> np.ndarray:
    """Activation rows (last axis) as int64 ``qa * sign``: float scales as section 1, then quantized."""
    x = np.asarray(x, dtype=np.float32)
    levels = quantize(ref.segment_scales(x, beta_a), inverse_factor(act_factor))
    return expand_int(levels, x < 0, beta_a)


def int_matmul(a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Exact ``a @ w.T`` of expanded integers (int64), checked against the int32 bound."""
    acc = np.asarray(a, dtype=np.int64) @ np.asarray(w, dtype=np.int64).T
    assert np.abs(acc).max(initial=0) <= 2 ** 31 - 1, "integer sum outside int32: K too large"
    return acc


def column_scales(factors: np.ndarray, act_factor) -> np.ndarray:
    """``c[j] = float32(fa * fw[j])``: the one float multiply per output."""
    return (np.float32(act_factor) * np.asarray(factors, dtype=np.float32)).astype(np.float32)


def finish(acc: np.ndarray, factors: np.ndarray, act_factor) -> np.ndarray:
    """``float32(acc) * c[j]`` (float32, round to nearest even both times)."""
    return (np.asarray(acc).astype(np.float32) * column_scales(factors, act_factor)).astype(np.float32)


def int_linear_acc(x: np.ndarray, w_int: np.ndarray, beta_a: Beta, act_factor) -> np.ndarray:
    """Integer sums of a dense layer: x (M, K) float, w_int (N, K) int64 -> (M, N) int64."""
    check_k(w_int.shape[1])
    return int_matmul(activation_ints(x, beta_a, act_factor), w_int)


def int_linear(x: np.ndarray, w_int: np.ndarray, factors: np.ndarray, beta_a: Beta, act_factor) -> np.ndarray:
    """Integer-scale dense layer: float32 (M, N)."""
    return finish(int_linear_acc(x, w_int, beta_a, act_factor), factors, act_factor)


def int_conv2d_acc(x: np.ndarray, w_int: np.ndarray, beta_a: Beta, act_factor, stride: int = 1,
                   padding: int = 0) -> np.ndarray:
    """Integer sums of a conv: x NHWC float, w_int (O, kh, kw, C) int64 -> (B, H', W', O) int64.

    Activations are quantized per pixel (rows of C channels) before zero padding: padding is level 0.
    """
    o, kh, kw, c = w_int.shape
    check_k(kh * kw * c)
    xi = activation_ints(x, beta_a, act_factor)
    cols = ref.im2col(xi, kh, kw, stride, padding)
    b, oh, ow, k = cols.shape
    return int_matmul(cols.reshape(-1, k), w_int.reshape(o, -1)).reshape(b, oh, ow, o)


def int_conv2d(x: np.ndarray, w_int: np.ndarray, factors: np.ndarray, beta_a: Beta, act_factor,
               stride: int = 1, padding: int = 0) -> np.ndarray:
    """Integer-scale conv: float32 (B, H', W', O)."""
    return finish(int_conv2d_acc(x, w_int, beta_a, act_factor, stride, padding), factors, act_factor)


def act_factor_for(x: np.ndarray, beta_a: Beta) -> np.float32:
    """A calibration helper for tests and post-training conversion: the largest activation segment
    scale of ``x`` (rows on the last axis) / 127, so nothing saturates on ``x``."""
    top = float(np.max(ref.segment_scales(np.asarray(x, dtype=np.float32), beta_a), initial=0.0))
    return np.float32(top / LEVEL_MAX) if top > 0 else np.float32(1.0)

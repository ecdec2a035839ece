"""NumPy ground truth for HadaNet inference (see docs/DESIGN.md).

Slow and obvious on purpose: every optimized kernel, the PyTorch layers and the
runtime are checked against these functions. Nothing here is tuned; where a
choice exists, the plainest formulation wins.

Conventions
-----------
* A *row* is binarized in segments of ``beta`` consecutive elements (the last
  one may be shorter). ``beta=1`` is full precision, ``beta=None`` (or
  ``math.inf``) is one segment per row.
* ``scale = mean(|x|)`` per segment, computed in float64 and stored as float32.
* ``sign(x) = -1 if x < 0 else +1``; the packed bit is 1 iff ``x < 0``, least
  significant bit first in little-endian uint64 words; padding bits are 0.
  NaN is not ``< 0``, so it packs as +1 (its segment's scale is NaN).
* Conv tensors are NHWC; conv weights are ``(O, kh, kw, C)``, one row per
  output filter flattened in (kh, kw, C) order. Activation rows are the C
  channels of one pixel; zero padding is applied *after* binarization.
"""
from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np

Beta = Union[int, float, None]

WORD_BITS = 64


def normalize_beta(beta: Beta, name: str = "beta") -> Optional[int]:
    """Return ``beta`` as a positive int, or None for infinity; reject the rest."""
    if beta is None:
        return None
    if isinstance(beta, bool):
        raise TypeError(f"Expected {name} to be an int >= 1, None or math.inf, got {beta!r}")
    if isinstance(beta, float):
        if math.isinf(beta) and beta > 0:
            return None
        if not beta.is_integer():
            raise ValueError(f"Expected {name} to be an int >= 1, None or math.inf, got {beta!r}")
        beta = int(beta)
    if not isinstance(beta, (int, np.integer)):
        raise TypeError(f"Expected {name} to be an int >= 1, None or math.inf, got {type(beta).__name__}")
    if beta < 1:
        raise ValueError(f"Expected {name} >= 1 (or None/math.inf for one segment per row), got {beta}")
    return int(beta)


def format_beta(beta: Optional[int]) -> str:
    """A normalized beta as people write it: "16", or "inf" for one segment per row (None)."""
    return "inf" if beta is None else str(beta)


def segment_length(beta: Beta, n: int) -> int:
    """Segment length actually used on a row of ``n`` elements."""
    b = normalize_beta(beta)
    return n if b is None else min(b, n)


def segment_scales(x: np.ndarray, beta: Beta) -> np.ndarray:
    """Mean |x| over each segment of the last axis: shape (..., ceil(n / beta))."""
    x = np.asarray(x)
    n = x.shape[-1]
    seg = segment_length(beta, n)
    nseg = -(-n // seg)
    absx = np.abs(x.astype(np.float64))
    out = np.empty(x.shape[:-1] + (nseg,), dtype=np.float64)
    for s in range(nseg):
        part = absx[..., s * seg:(s + 1) * seg]
        out[..., s] = part.sum(axis=-1) / part.shape[-1]
    return out.astype(np.float32)


def signs(x: np.ndarray) -> np.ndarray:
    """+1 / -1 as float32; zero and NaN are +1."""
    return np.where(np.asarray(x) < 0, np.float32(-1), np.float32(1))


def binarize_rows(x: np.ndarray, beta: Beta) -> np.ndarray:
    """Hadamard binarization of each row (last axis): scale[segment] * sign(x)."""
    x = np.asarray(x, dtype=np.float32)
    b = normalize_beta(beta)
    if b == 1:
        return x.copy()
    n = x.shape[-1]
    seg = segment_length(b, n)
    scales = segment_scales(x, b)
    expanded = np.repeat(scales, seg, axis=-1)[..., :n]
    return (expanded * signs(x)).astype(np.float32)


def pack_bits(x: np.ndarray) -> np.ndarray:
    """Sign bits of the last axis packed into uint64 words, LSB first, zero padded."""
    x = np.asarray(x)
    n = x.shape[-1]
    nwords = -(-n // WORD_BITS)
    bits = (x < 0).astype(np.uint64)
    out = np.zeros(x.shape[:-1] + (nwords,), dtype=np.uint64)
    for j in range(n):
        out[..., j // WORD_BITS] |= bits[..., j] << np.uint64(j % WORD_BITS)
    return out


def unpack_bits(words: np.ndarray, n: int) -> np.ndarray:
    """Inverse of pack_bits: bool array (..., n), True where the element was negative."""
    words = np.asarray(words, dtype=np.uint64)
    out = np.zeros(words.shape[:-1] + (n,), dtype=bool)
    for j in range(n):
        out[..., j] = (words[..., j // WORD_BITS] >> np.uint64(j % WORD_BITS)) & np.uint64(1)
    return out


def pack_rows(rows: np.ndarray, beta: Beta) -> tuple:
    """(sign bits, segment scales) of each row of ``rows`` (O, K): what a model file stores."""
    rows = np.asarray(rows, dtype=np.float32)
    return pack_bits(rows), segment_scales(rows, beta)


def unpack_rows(bits: np.ndarray, scales: np.ndarray, n: int, beta: Beta) -> np.ndarray:
    """Inverse of pack_rows: float32 rows (O, n) of ``scale[segment] * sign``.

    Binarizing these rows again with the same beta gives back the same bits and scales, so the
    reference functions run packed weights exactly as the packer saw them.
    """
    seg = segment_length(beta, n)
    negative = unpack_bits(bits, n)
    expanded = np.repeat(np.asarray(scales, dtype=np.float32), seg, axis=-1)[..., :n]
    return np.where(negative, -expanded, expanded).astype(np.float32)


def check_betas(beta_w: Beta, beta_a: Beta) -> tuple:
    """Normalize a (beta_w, beta_a) pair; one must divide the other (inf divides nothing but pairs with all)."""
    bw = normalize_beta(beta_w, "beta_w")
    ba = normalize_beta(beta_a, "beta_a")
    if bw is not None and ba is not None and bw % ba and ba % bw:
        raise ValueError(f"Expected beta_w and beta_a where one divides the other, got ({bw}, {ba})")
    return bw, ba


def xhbnn_dot(w: np.ndarray, a: np.ndarray, beta_w: Beta, beta_a: Beta) -> float:
    """One dot product by the xHBNN block formula (XOR + popcount per block).

    A block is a maximal run of elements over which both segment scales are
    constant. Used to show the block formula equals binarize(w) . binarize(a).
    """
    w = np.asarray(w, dtype=np.float32).ravel()
    a = np.asarray(a, dtype=np.float32).ravel()
    bw, ba = check_betas(beta_w, beta_a)
    if bw == 1 or ba == 1:
        return float(np.dot(binarize_rows(w, bw).astype(np.float64), binarize_rows(a, ba).astype(np.float64)))
    n = w.size
    sw, sa = segment_scales(w, bw), segment_scales(a, ba)
    segw, sega = segment_length(bw, n), segment_length(ba, n)
    wneg, aneg = w < 0, a < 0
    total, start = 0.0, 0
    while start < n:
        end = min((start // segw + 1) * segw, (start // sega + 1) * sega, n)
        mismatches = int(np.count_nonzero(wneg[start:end] ^ aneg[start:end]))
        total += float(sw[start // segw]) * float(sa[start // sega]) * ((end - start) - 2 * mismatches)
        start = end
    return total


def hbnn_linear(x: np.ndarray, w: np.ndarray, beta_w: Beta, beta_a: Beta) -> np.ndarray:
    """binarize_rows(x, beta_a) @ binarize_rows(w, beta_w).T, accumulated in float64."""
    check_betas(beta_w, beta_a)
    xb = binarize_rows(x, beta_a).astype(np.float64)
    wb = binarize_rows(w, beta_w).astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return (xb @ wb.T).astype(np.float32)


def im2col(x: np.ndarray, kh: int, kw: int, stride: int, padding: int) -> np.ndarray:
    """NHWC (B, H, W, C) -> (B, H', W', kh*kw*C) patches in (kh, kw, C) order, zero padded."""
    b, h, w_, c = x.shape
    xp = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    oh = (h + 2 * padding - kh) // stride + 1
    ow = (w_ + 2 * padding - kw) // stride + 1
    cols = np.empty((b, oh, ow, kh * kw * c), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            patch = xp[:, i * stride:i * stride + kh, j * stride:j * stride + kw, :]
            cols[:, i, j, :] = patch.reshape(b, -1)
    return cols


def conv_output_size(size: int, k: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - k) // stride + 1


def hbnn_conv2d(x: np.ndarray, w: np.ndarray, beta_w: Beta, beta_a: Beta,
                stride: int = 1, padding: int = 0) -> np.ndarray:
    """xHBNN convolution: x NHWC (B, H, W, C), w (O, kh, kw, C) -> (B, H', W', O)."""
    check_betas(beta_w, beta_a)
    x = np.asarray(x, dtype=np.float32)
    w = np.asarray(w, dtype=np.float32)
    o, kh, kw, c = w.shape
    xb = binarize_rows(x, beta_a)               # per pixel, over C
    cols = im2col(xb, kh, kw, stride, padding)  # padding after binarization: exact zeros
    wb = binarize_rows(w.reshape(o, -1), beta_w)
    with np.errstate(invalid="ignore", over="ignore"):
        out = cols.astype(np.float64) @ wb.astype(np.float64).T
    return out.astype(np.float32)


# ---- full-precision layers (first and last layers stay float) -----------------

def conv2d_float(x: np.ndarray, w: np.ndarray, bias: Optional[np.ndarray] = None,
                 stride: int = 1, padding: int = 0) -> np.ndarray:
    """Float conv, NHWC input, (O, kh, kw, C) weights."""
    o, kh, kw, c = w.shape
    cols = im2col(np.asarray(x, dtype=np.float32), kh, kw, stride, padding)
    out = cols.astype(np.float64) @ np.asarray(w, dtype=np.float64).reshape(o, -1).T
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)
    return out.astype(np.float32)


def dense_float(x: np.ndarray, w: np.ndarray, bias: Optional[np.ndarray] = None) -> np.ndarray:
    """Float dense: x (M, K), w (N, K)."""
    out = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64).T
    if bias is not None:
        out += np.asarray(bias, dtype=np.float64)
    return out.astype(np.float32)


def epilogue(y: np.ndarray, scale: Optional[np.ndarray] = None, bias: Optional[np.ndarray] = None,
             relu: bool = False) -> np.ndarray:
    """Per-output-channel ``y * scale + bias`` then optional ReLU (last axis is the channel)."""
    out = np.asarray(y, dtype=np.float32)
    if scale is not None:
        out = out * np.asarray(scale, dtype=np.float32)
    if bias is not None:
        out = out + np.asarray(bias, dtype=np.float32)
    if relu:
        out = np.maximum(out, np.float32(0))
    return out.astype(np.float32)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(np.asarray(x, dtype=np.float32), np.float32(0))


def _pool(x: np.ndarray, k: int, stride: Optional[int], reduce) -> np.ndarray:
    stride = k if stride is None else stride
    b, h, w, c = x.shape
    oh, ow = (h - k) // stride + 1, (w - k) // stride + 1
    out = np.empty((b, oh, ow, c), dtype=np.float32)
    for i in range(oh):
        for j in range(ow):
            window = x[:, i * stride:i * stride + k, j * stride:j * stride + k, :]
            out[:, i, j, :] = reduce(window.reshape(b, -1, c), axis=1)
    return out


def max_pool2d(x: np.ndarray, k: int, stride: Optional[int] = None) -> np.ndarray:
    """Max pool over NHWC, no padding (floor mode)."""
    return _pool(np.asarray(x, dtype=np.float32), k, stride, np.max)


def avg_pool2d(x: np.ndarray, k: int, stride: Optional[int] = None) -> np.ndarray:
    """Average pool over NHWC, no padding (floor mode)."""
    return _pool(np.asarray(x, dtype=np.float32), k, stride, np.mean)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum over ``axis``, computed in float64; float32 out unless ``x`` is float64."""
    x = np.asarray(x)
    z = x.astype(np.float64)
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.result_type(x.dtype, np.float32))

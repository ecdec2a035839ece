"""Packed weights: the sign bits and segment scales of a weight tensor, as the kernels consume them.

Plain Python and NumPy, no compiled code: a model file is read and checked into these without
the extension (the kernels attach their prepared layouts later, in ``_prepared``).
"""
from __future__ import annotations

import numpy as np

from . import reference as ref
from .reference import format_beta, normalize_beta


class PackedWeights:
    """Weights packed once at load time: sign bits + per-segment float32 scales.

    ``bits``: uint64 (O, ceil(K/64)), rows in (kh, kw, C) order for conv weights,
    exactly ``reference.pack_bits(w.reshape(O, -1))``. ``scales``: float32
    (O, ceil(K/beta_w)). ``shape``: the float weight shape, (O, K) or (O, kh, kw, C).
    For beta_w = 1 (full precision) ``bits`` is None and ``dense`` holds the floats.
    """

    __slots__ = ("shape", "beta_w", "bits", "scales", "dense", "_prepared")

    def __init__(self, shape, beta_w, bits, scales, dense=None):
        self.shape = tuple(int(s) for s in shape)
        self.beta_w = normalize_beta(beta_w, "beta_w")
        self.bits = bits
        self.scales = scales
        self.dense = dense
        self._prepared = {}

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def row_length(self) -> int:
        return int(np.prod(self.shape[1:]))

    @classmethod
    def from_packed(cls, bits, scales, shape, beta_w) -> "PackedWeights":
        """Wrap bits and scales read from a model file; validates every shape, copies nothing."""
        beta = normalize_beta(beta_w, "beta_w")
        shape = tuple(int(s) for s in shape)
        if len(shape) not in (2, 4) or min(shape) < 1:
            raise ValueError(f"Expected a weight shape (O, K) or (O, kh, kw, C) of positive sizes, got {shape}")
        if beta == 1:
            raise ValueError("Expected beta_w > 1 for packed weights (beta_w = 1 is full precision: pass floats)")
        o, k = shape[0], int(np.prod(shape[1:]))
        bits = _require_array(bits, "bits", np.uint64, (o, -(-k // 64)))
        nseg = -(-k // ref.segment_length(beta, k))
        scales = _require_array(scales, "scales", np.float32, (o, nseg))
        return cls(shape, beta, bits, scales)

    def nbytes(self) -> int:
        """Bytes of the packed representation (signs + scales)."""
        if self.bits is None:
            return int(self.dense.nbytes)
        return int(self.bits.nbytes + self.scales.nbytes)

    def __repr__(self) -> str:
        return f"PackedWeights(shape={self.shape}, beta_w={format_beta(self.beta_w)}, bytes={self.nbytes()})"


def _require_array(a, name, dtype, shape):
    if not isinstance(a, np.ndarray):
        raise TypeError(f"Expected {name} to be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise TypeError(f"Expected {name} of dtype {np.dtype(dtype).name}, got {a.dtype}")
    if a.shape != tuple(shape):
        raise ValueError(f"Expected {name} of shape {tuple(shape)}, got {a.shape}")
    if not a.flags.c_contiguous:
        raise ValueError(f"Expected {name} to be C-contiguous")
    return a

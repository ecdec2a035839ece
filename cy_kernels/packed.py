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

    Integer scales (docs/DESIGN.md, section 9): ``levels`` uint8 (O, nseg) in 0..127 replace
    ``scales`` (None then), ``factors`` float32 (O,) are the filters' factors and ``act_factor``
    the layer's activation factor (a float32 > 0): every call of these weights runs integer sums.
    """

    __slots__ = ("shape", "beta_w", "bits", "scales", "dense", "levels", "factors", "act_factor", "_prepared")

    def __init__(self, shape, beta_w, bits, scales, dense=None, levels=None, factors=None, act_factor=None):
        self.shape = tuple(int(s) for s in shape)
        self.beta_w = normalize_beta(beta_w, "beta_w")
        self.bits = bits
        self.scales = scales
        self.dense = dense
        self.levels = levels
        self.factors = factors
        self.act_factor = None if act_factor is None else np.float32(act_factor)
        self._prepared = {}

    @property
    def int_scales(self) -> bool:
        """True for integer-scale weights (levels x factors)."""
        return self.levels is not None

    @property
    def rows(self) -> int:
        return self.shape[0]

    @property
    def row_length(self) -> int:
        return int(np.prod(self.shape[1:]))

    @classmethod
    def from_packed(cls, bits, scales, shape, beta_w, check_scales: bool = True) -> "PackedWeights":
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
        if check_scales:
            scales = _require_array(scales, "scales", np.float32, (o, nseg))
        return cls(shape, beta, bits, scales)

    @classmethod
    def from_packed_int(cls, bits, levels, factors, act_factor, shape, beta_w) -> "PackedWeights":
        """Wrap integer-scale weights: bits, levels uint8 (O, nseg) in 0..127, factors float32 (O,) > 0,
        and the activation factor (> 0); validates every shape and value, copies nothing."""
        from .reference_int import LEVEL_MAX, check_k

        pw = cls.from_packed(bits, np.zeros((1, 1), np.float32), shape, beta_w, check_scales=False)
        o, k = pw.rows, pw.row_length
        check_k(k)
        nseg = -(-k // ref.segment_length(pw.beta_w, k))
        if not isinstance(levels, np.ndarray) or levels.dtype != np.uint8 or levels.shape != (o, nseg):
            raise ValueError(f"Expected levels as a uint8 array of shape {(o, nseg)}, got "
                             f"{getattr(levels, 'dtype', type(levels).__name__)} {getattr(levels, 'shape', '')}")
        if levels.size and int(levels.max()) > LEVEL_MAX:
            raise ValueError(f"Expected levels in 0..{LEVEL_MAX}, got {int(levels.max())}")
        factors = _require_array(factors, "factors", np.float32, (o,))
        if not (np.isfinite(factors).all() and (factors > 0).all()):
            raise ValueError(f"Expected finite factors > 0, got {factors[~(np.isfinite(factors) & (factors > 0))][:3]}")
        act = np.float32(act_factor)
        if not (np.isfinite(act) and act > 0):
            raise ValueError(f"Expected a finite act_factor > 0, got {act_factor!r}")
        return cls(pw.shape, pw.beta_w, pw.bits, None, levels=levels, factors=factors, act_factor=act)

    def nbytes(self) -> int:
        """Bytes of the packed representation (signs + scales, or signs + levels + factors)."""
        if self.bits is None:
            return int(self.dense.nbytes)
        if self.int_scales:
            return int(self.bits.nbytes + self.levels.nbytes + self.factors.nbytes + 4)
        return int(self.bits.nbytes + self.scales.nbytes)

    def __repr__(self) -> str:
        mode = ", int_scales=True" if self.int_scales else ""
        return f"PackedWeights(shape={self.shape}, beta_w={format_beta(self.beta_w)}{mode}, bytes={self.nbytes()})"


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

"""Integer-scale layers in .hbn files: the file layout of sign bits, 7-bit levels and factors.

Format 1.2 (written now) stores them compactly: sign bits as each row's bytes (ceil(K/8), no
word padding) and the levels as one stream of 7-bit fields, rows one after another, least
significant bit first. Format 1.1 files (sign bits in U64 words, one level byte per segment in
U64 words) still load. Either way the reader hands the kernels the same arrays: sign words
(O, ceil(K/64)) uint64 and levels (O, nseg) uint8, decoded once at load (kilobytes).
"""
from __future__ import annotations

import math
from typing import Dict

import numpy as np

from cy_kernels import reference as ref
from cy_kernels.reference_int import LEVEL_MAX, MAX_INT_K, pack_rows_int

from .errors import ModelFormatError
from .format_graph import int_tensor_names

LEVEL_BITS = 7  # levels are 0..127 (docs/DESIGN.md, section 9)
_WEIGHTS = (1 << np.arange(LEVEL_BITS)).astype(np.uint8)


def pack_levels(levels: np.ndarray) -> np.ndarray:
    """Levels 0..127 (any shape, row-major) -> the 7-bit stream as uint8, zero padding bits."""
    flat = np.ascontiguousarray(levels, dtype=np.uint8).reshape(-1)
    if flat.size and int(flat.max()) > LEVEL_MAX:
        raise ValueError(f"Expected levels in 0..{LEVEL_MAX}, got {int(flat.max())}")
    bits = ((flat[:, None] >> np.arange(LEVEL_BITS, dtype=np.uint8)) & 1).astype(np.uint8)
    return np.packbits(bits.reshape(-1), bitorder="little")


def unpack_levels(stream: np.ndarray, rows: int, nseg: int, name: str) -> np.ndarray:
    """The 7-bit stream -> levels (rows, nseg) uint8; padding bits past the last level must be 0."""
    n = rows * nseg
    bits = np.unpackbits(np.asarray(stream, dtype=np.uint8), bitorder="little")
    if bits[n * LEVEL_BITS:].any():
        raise ModelFormatError(f"Expected zero padding bits past {n} levels in {name}, got ones")
    fields = bits[:n * LEVEL_BITS].reshape(n, LEVEL_BITS)
    return (fields @ _WEIGHTS.astype(np.uint16)).astype(np.uint8).reshape(rows, nseg)


def int_arrays(layer: dict, w: np.ndarray, act: np.ndarray, where: str) -> Dict[str, np.ndarray]:
    """An integer-scale layer's file tensors (format 1.2) from its float weights and activation factor
    (one float32 > 0, the trained range / 127): levels and factors by reference_int.pack_rows_int."""
    rank = 4 if layer["type"] == "conv2d" else 2
    if w.ndim != rank:
        raise ModelFormatError(f"Expected {where} weight of rank {rank}, got shape {w.shape}")
    k = w.size // w.shape[0]
    if k > MAX_INT_K:  # before packing: the graph check would say the same after a long pack
        raise ModelFormatError(f"Expected at most K={MAX_INT_K} weights per output in {where} with integer scales "
                               f"(127 * 127 * K must fit int32), got K={k}")
    levels_name, factors_name, act_name = int_tensor_names(layer)
    act = np.asarray(act, dtype=np.float32).reshape(-1)
    if act.shape != (1,) or not act[0] > 0:
        raise ModelFormatError(f"Expected {act_name!r} as one float > 0 (the activation factor), got {act}")
    bits, levels, factors = pack_rows_int(w.reshape(w.shape[0], -1), layer["beta_w"])
    row_bytes = np.ascontiguousarray(bits, dtype="<u8").view(np.uint8)[:, :-(-k // 8)]
    return {layer["weight"] + ".bits": np.ascontiguousarray(row_bytes),
            levels_name: pack_levels(levels),
            factors_name: np.ascontiguousarray(factors, dtype=np.float32),
            act_name: np.ascontiguousarray(act, dtype=np.float32)}


def _sign_words(row_bytes: np.ndarray, k: int, name: str) -> np.ndarray:
    """Format 1.2 sign bytes (O, ceil(K/8)) -> the kernels' words (O, ceil(K/64)) uint64."""
    if k % 8 and row_bytes.size and (row_bytes[:, -1] >> np.uint8(k % 8)).any():
        raise ModelFormatError(f"Expected zero padding bits past K={k} in {name}, got ones")
    words = np.zeros((row_bytes.shape[0], -(-k // 64) * 8), dtype=np.uint8)
    words[:, :row_bytes.shape[1]] = row_bytes
    return words.view("<u8").astype(np.uint64)


def int_weights(layer: dict, tensors: Dict[str, np.ndarray], compact: bool):
    """Validate an integer-scale layer's tensors (``compact``: format 1.2, else 1.1) and wrap them
    as PackedWeights: levels 0..127, zero padding, factors > 0."""
    from cy_kernels.packed import PackedWeights  # pure Python: reading a model needs no extension

    levels_name, factors_name, act_name = int_tensor_names(layer)
    bits_name = layer["weight"] + ".bits"
    factors, act = tensors[factors_name], tensors[act_name]
    rows, k = layer["weight_shape"][0], math.prod(layer["weight_shape"][1:])
    nseg = -(-k // ref.segment_length(layer["beta_w"], k))
    if compact:
        bits = _sign_words(tensors[bits_name], k, bits_name)
        levels = unpack_levels(tensors[levels_name], rows, nseg, levels_name)
    else:
        bits, words = tensors[bits_name], tensors[levels_name]
        raw = words.view(np.uint8).reshape(words.shape[0], -1)  # little-endian words: byte s is segment s
        levels = raw[:, :nseg]
        if levels.size and int(levels.max()) > LEVEL_MAX:
            raise ModelFormatError(f"Expected integer-scale levels in 0..{LEVEL_MAX} in {levels_name}, got "
                                   f"{int(levels.max())}")
        if raw[:, nseg:].any():
            raise ModelFormatError(f"Expected zero padding bytes past {nseg} levels in {levels_name}, got nonzero")
        if k % 64 and (bits[:, -1] >> np.uint64(k % 64)).any():
            raise ModelFormatError(f"Expected zero padding bits past K={k} in {bits_name}, got ones")
    if not (factors > 0).all() or not act[0] > 0:
        raise ModelFormatError(f"Expected integer-scale factors > 0 in {factors_name} and {act_name}, got "
                               f"{float(factors.min()) if factors.size else '-'} and {float(act[0])}")
    try:
        return PackedWeights.from_packed_int(bits, levels, factors, act[0], layer["weight_shape"], layer["beta_w"])
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"Expected packed weights for {layer['name']}, got: {exc}") from None

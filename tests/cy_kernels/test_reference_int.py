"""The integer-scale contract in NumPy (docs/DESIGN.md, section 9), checked against its definition."""
import math

import numpy as np
import pytest

from cy_kernels import reference as ref
from cy_kernels import reference_int as ri


def rand(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_levels_round_half_to_even_saturate_and_map_nan_to_zero():
    inv = np.float32(1.0)
    s = np.array([0.0, 0.49, 0.5, 1.5, 2.5, 126.5, 126.6, 127.0, 500.0, np.inf, np.nan, 1e-30],
                 dtype=np.float32)
    np.testing.assert_array_equal(ri.quantize(s, inv), [0, 0, 0, 2, 2, 126, 127, 127, 127, 127, 0, 0])
    assert ri.quantize(s, inv).dtype == np.uint8


def test_inverse_factor_is_one_float32_division():
    for f in (0.1, 3.0, 1e-3, 7.123):
        assert ri.inverse_factor(f) == np.float32(1) / np.float32(f)
    for bad in (0.0, -1.0, math.inf, math.nan):
        with pytest.raises(ValueError, match="factor > 0"):
            ri.inverse_factor(bad)


def test_weight_levels_put_each_filters_largest_segment_at_127():
    w = rand((6, 100), 1)
    w[5] = 0.0
    bits, levels, factors = ri.pack_rows_int(w, 16)
    np.testing.assert_array_equal(bits, ref.pack_bits(w))
    scales = ref.segment_scales(w, 16)
    assert levels.shape == scales.shape and levels.dtype == np.uint8
    np.testing.assert_array_equal(levels[:5].max(axis=1), 127)
    assert factors[5] == 1.0 and not levels[5].any()
    # each level is the nearest point of the grid: |q * f - s| <= f / 2 (plus float rounding)
    err = np.abs(levels[:5] * factors[:5, None].astype(np.float64) - scales[:5])
    assert (err <= factors[:5, None] * 0.5001).all()


@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 2), (64, 64), (None, None), (2, 8), (1000, 2)])
def test_integer_sums_are_the_block_formula(bw, ba):
    """acc = sum over blocks of qa * qw * (len - 2 * popcount(xor)): the XOR form the kernels use."""
    x, w = rand((3, 100), 2), rand((4, 100), 3)
    act = ri.act_factor_for(x, ba)
    bits, levels, factors = ri.pack_rows_int(w, bw)
    acc = ri.int_linear_acc(x, ri.weight_ints(bits, levels, 100, bw), ba, act)
    qa = ri.quantize(ref.segment_scales(x, ba), ri.inverse_factor(act)).astype(np.int64)
    segw, sega = ref.segment_length(bw, 100), ref.segment_length(ba, 100)
    for i in range(3):
        for j in range(4):
            total, start = 0, 0
            while start < 100:
                end = min((start // segw + 1) * segw, (start // sega + 1) * sega, 100)
                mism = int(np.count_nonzero((x[i, start:end] < 0) ^ (w[j, start:end] < 0)))
                total += int(qa[i, start // sega]) * int(levels[j, start // segw]) * ((end - start) - 2 * mism)
                start = end
            assert acc[i, j] == total


def test_outputs_approximate_the_float_contract():
    """With factors matched to the data, integer scales stay within the grid's rounding of float scales."""
    x, w = rand((8, 512), 4), rand((16, 512), 5)
    for bw, ba in ((16, 16), (16, 2)):
        bits, levels, factors = ri.pack_rows_int(w, bw)
        out = ri.int_linear(x, ri.weight_ints(bits, levels, 512, bw), factors, ba, ri.act_factor_for(x, ba))
        exact = ref.hbnn_linear(x, w, bw, ba)
        mag = np.abs(ref.binarize_rows(x, ba)).astype(np.float64) @ np.abs(ref.binarize_rows(w, bw)).T
        assert np.abs(out - exact).max() <= 0.05 * mag.max()


def test_output_is_one_float_multiply_of_the_integer_sum():
    x, w = rand((2, 64), 6), rand((3, 64), 7)
    bits, levels, factors = ri.pack_rows_int(w, 16)
    ints = ri.weight_ints(bits, levels, 64, 16)
    act = np.float32(0.013)
    acc = ri.int_linear_acc(x, ints, 16, act)
    want = acc.astype(np.float32) * (np.float32(act) * factors)
    np.testing.assert_array_equal(ri.int_linear(x, ints, factors, 16, act), want)


def test_conv_pads_after_quantizing():
    x, w = rand((1, 5, 5, 3), 8), rand((2, 3, 3, 3), 9)
    bits, levels, factors = ri.pack_rows_int(w.reshape(2, -1), 9)
    ints = ri.weight_ints(bits, levels, 27, 9).reshape(w.shape)
    act = ri.act_factor_for(x, 3)
    acc = ri.int_conv2d_acc(x, ints, 3, act, 1, 1)
    xi = ri.activation_ints(x, 3, act)
    padded = np.pad(xi, ((0, 0), (1, 1), (1, 1), (0, 0)))
    assert acc[0, 0, 0, 1] == int((padded[0, 0:3, 0:3, :] * ints[1]).sum())


def test_largest_k_is_checked():
    assert ri.MAX_INT_K == 133144 and 127 * 127 * ri.MAX_INT_K <= 2 ** 31 - 1 < 127 * 127 * (ri.MAX_INT_K + 1)
    with pytest.raises(ValueError, match="at most K=133144"):
        ri.check_k(ri.MAX_INT_K + 1)
    assert ri.check_k(ri.MAX_INT_K) == ri.MAX_INT_K

"""Integer scales on every backend: bit-exact to cy_kernels.reference_int (the integer sums, and so
the float outputs after the one fixed multiply), at the awkward sizes of test_kernels.py."""
import numpy as np
import pytest

import cy_kernels as ck
from cy_kernels import reference as ref
from cy_kernels import reference_int as ri

WIDTHS = [1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000]
# (beta_w, beta_a): int-xor with 16-, 8- and split 32/64-bit blocks, and int8 for blocks below 8 bits
PAIRS = [(16, 16), (16, 8), (8, 16), (32, 32), (64, 64), (None, None), (16, 2), (2, 2), (4, 16), (16, 4), (8, 2)]


def rand(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def int_weights(w, bw, act_factor):
    """Packed integer-scale weights and the reference's view of them (int64 level * sign, factors)."""
    pw = ck.pack_weights(w, bw, act_factor=act_factor)
    ints = ri.weight_ints(pw.bits, pw.levels, pw.row_length, bw).reshape(w.shape)
    return pw, ints


def expected_linear(x, ints, pw, ba):
    return ri.int_linear(x, ints, pw.factors, ba, pw.act_factor)


def expected_conv(x, ints, pw, ba, stride, padding):
    return ri.int_conv2d(x, ints, pw.factors, ba, pw.act_factor, stride, padding)


def test_pack_weights_int_matches_the_reference_packer():
    w = rand((7, 100), 1)
    pw = ck.pack_weights(w, 16, act_factor=0.02)
    bits, levels, factors = ri.pack_rows_int(w, 16)
    np.testing.assert_array_equal(pw.bits, bits)
    np.testing.assert_array_equal(pw.levels, levels)
    np.testing.assert_array_equal(pw.factors, factors)
    assert pw.int_scales and pw.scales is None and int(levels.max()) == ri.LEVEL_MAX
    assert pw.nbytes() < ck.pack_weights(w, 16).nbytes()


@pytest.mark.parametrize("k", WIDTHS)
@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 2), (64, 64), (None, None), (8, 32)])
def test_int_linear_widths_bit_exact(backend, k, bw, ba):
    x, w = rand((3, k), 1), rand((4, k), 2)
    act = ri.act_factor_for(x, ba)
    pw, ints = int_weights(w, bw, act)
    out = ck.hbnn_linear(x, pw, bw, ba)
    np.testing.assert_array_equal(out, expected_linear(x, ints, pw, ba))


@pytest.mark.parametrize("bw,ba", PAIRS)
def test_int_linear_every_pair_bit_exact(backend, bw, ba):
    x, w = rand((5, 1000), 4), rand((19, 1000), 5)
    # a factor below the data's range: the largest scales saturate at 127, as the contract says
    act = ri.act_factor_for(x, ba) * np.float32(0.6)
    pw, ints = int_weights(w, bw, act)
    np.testing.assert_array_equal(ck.hbnn_linear(x, pw, bw, ba), expected_linear(x, ints, pw, ba))


CONV_CASES = [
    # (B, H, W, C, O, k, stride, pad)
    (1, 12, 12, 20, 50, 5, 1, 0),     # LeNet's conv2
    (2, 9, 7, 3, 5, 3, 1, 1),
    (1, 8, 8, 64, 17, 3, 2, 1),
    (1, 6, 6, 130, 3, 3, 1, 1),
    (1, 5, 5, 16, 33, 1, 1, 0),
    (1, 7, 7, 48, 8, 3, 1, 2),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 2), (8, 8), (None, None), (16, 4), (2, 2)])
def test_int_conv_bit_exact(backend, case, bw, ba):
    b, h, w_, c, o, k, stride, pad = case
    x, w = rand((b, h, w_, c), 7), rand((o, k, k, c), 8)
    pw, ints = int_weights(w, bw, ri.act_factor_for(x, ba))
    out = ck.hbnn_conv2d(x, pw, bw, ba, stride, pad)
    np.testing.assert_array_equal(out, expected_conv(x, ints, pw, ba, stride, pad))


@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 2)])
def test_int_conv_epilogue_affine_and_threads(backend, bw, ba):
    x, w = rand((2, 10, 10, 32), 9), rand((40, 3, 3, 32), 10)
    ins, inb = rand((32,), 11, 0.5) + 1, rand((32,), 12, 0.2)
    bias, relu_scale = rand((40,), 13), np.abs(rand((40,), 14)) + 0.5
    pw, ints = int_weights(w, bw, ri.act_factor_for(x * ins + inb, ba))
    y = expected_conv(x * ins + inb, ints, pw, ba, 1, 1)
    want = ref.epilogue(y, relu_scale, bias, relu=True)
    for threads in (1, 2, 3):
        out = ck.hbnn_conv2d(x, pw, bw, ba, 1, 1, threads, in_scale=ins, in_bias=inb, out_scale=relu_scale,
                             out_bias=bias, relu=True)
        np.testing.assert_array_equal(out, want)


def test_int_paths_and_prepared_ops(backend):
    # C = 32: 16-bit blocks at (16, 16); LeNet's C = 20 would give 4-bit blocks (the int8 path)
    x, w = rand((1, 12, 12, 32), 15), rand((50, 5, 5, 32), 16)
    for (bw, ba), path in (((16, 16), "int-xor"), ((16, 2), "int8")):
        pw, ints = int_weights(w, bw, ri.act_factor_for(x, ba))
        op = ck.prepare_conv2d(pw, bw, ba, x.shape)
        assert op.path == path
        out = np.empty(op.output_shape, np.float32)
        op(x, out)
        op(x, out)  # the bound fast path
        np.testing.assert_array_equal(out, expected_conv(x, ints, pw, ba, 1, 0))
    xd, wd = rand((3, 800), 17), rand((500, 800), 18)
    for bw, ba in ((16, 16), (16, 2)):
        pw, ints = int_weights(wd, bw, ri.act_factor_for(xd, ba))
        op = ck.prepare_linear(pw, bw, ba, 3)
        np.testing.assert_array_equal(op(xd), expected_linear(xd, ints, pw, ba))


def test_int_frame_executor_matches_per_op(backend):
    """The whole-frame executor runs integer-scale layers with the same kernels and tiles."""
    from cy_kernels import _xhbnn

    x = rand((1, 16, 16, 64), 19)
    w1, w2 = rand((64, 3, 3, 64), 20), rand((10, 16 * 16 * 64), 21)
    pw1, i1 = int_weights(w1, 16, ri.act_factor_for(x, 16))
    h = np.empty((1, 16, 16, 64), np.float32)
    y = np.empty((1, 10), np.float32)
    op1 = ck.prepare_conv2d(pw1, 16, 16, x.shape, 1, 1, relu=True)
    mid = ref.relu(expected_conv(x, i1, pw1, 16, 1, 1))
    pw2, i2 = int_weights(w2, 16, ri.act_factor_for(mid.reshape(1, -1), 2))
    op2 = ck.prepare_linear(pw2, 16, 2, 1)
    flat = h.reshape(1, -1)

    class Step:
        def __init__(self, desc):
            self.frame_step = desc

    for threads in (1, 2):
        ex = _xhbnn.frame_executor([Step(("layer", op1, x, h)), Step(("layer", op2, flat, y))], threads)
        assert ex is not None
        ex.run()
        np.testing.assert_array_equal(h, mid)
        np.testing.assert_array_equal(y, expected_linear(mid.reshape(1, -1), i2, pw2, 2))


def test_saturation_nan_and_inf_follow_the_contract(backend):
    x = rand((4, 64), 22)
    x[1, :8] = np.inf
    x[2, 5] = np.nan
    x[3] *= 1000  # far above the factor's range: saturates at 127
    w = rand((6, 64), 23)
    pw, ints = int_weights(w, 16, np.float32(0.01))
    for ba in (16, 2):
        out = ck.hbnn_linear(x, pw, 16, ba)
        np.testing.assert_array_equal(out, expected_linear(x, ints, pw, ba))
        assert np.isfinite(out).all()


def test_int_weights_need_quantized_activations():
    w = rand((4, 32), 24)
    pw = ck.pack_weights(w, 16, act_factor=0.1)
    with pytest.raises(ValueError, match="beta_a > 1"):
        ck.hbnn_linear(rand((2, 32), 25), pw, 16, 1)
    with pytest.raises(ValueError, match="beta_w > 1"):
        ck.pack_weights(w, 1, act_factor=0.1)
    with pytest.raises(ValueError, match="act_factor > 0"):
        ck.pack_weights(w, 16, act_factor=0.0)

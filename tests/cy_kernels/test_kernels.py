"""Every backend against the NumPy reference: bits bit-exact, floats within 1e-5 of the magnitude."""
import math

import numpy as np
import pytest

import cy_kernels as ck
from cy_kernels import _xhbnn
from cy_kernels import reference as ref

from kernel_checks import assert_close, conv_magnitude, magnitude

WIDTHS = [1, 3, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1000]
POW2 = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, None]
PAIRS = [(bw, ba) for bw in POW2 for ba in POW2]  # powers of two always divide one way


def rand(shape, seed=0, scale=1.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


# ---- packing -------------------------------------------------------------------------------

@pytest.mark.parametrize("n", WIDTHS)
@pytest.mark.parametrize("beta", [2, 16, 64, None])
def test_pack_weights_bit_exact(backend, n, beta):
    w = rand((5, n), seed=n)
    w[0, : n // 2] = 0.0            # zero packs as +1
    w[1, ::3] = -0.0                # so does negative zero
    pw = ck.pack_weights(w, beta)
    np.testing.assert_array_equal(pw.bits, ref.pack_bits(w))   # includes zero padding bits
    np.testing.assert_array_equal(pw.scales, ref.segment_scales(w, beta))


@pytest.mark.parametrize("n", [1, 7, 64, 65, 129])
def test_one_hot_probe(backend, n):
    for j in {0, n // 2, n - 1}:
        w = np.ones((1, n), dtype=np.float32)
        w[0, j] = -2.0
        bits = ck.pack_weights(w, None).bits
        expected = np.zeros_like(bits)
        expected[0, j // 64] = np.uint64(1) << np.uint64(j % 64)
        np.testing.assert_array_equal(bits, expected)


# Blocks never straddle segments: pairs where they would are not a case of the kernels.
BLOCK_CASES = [(n, beta, L) for n in [8, 17, 64, 100, 128, 200]
               for beta, L in [(8, 8), (16, 16), (16, 8), (32, 32), (64, 64), (None, 64), (2, 2), (4, 4)]
               if beta is None or beta >= n or beta % L == 0]


@pytest.mark.parametrize("n,beta,L", BLOCK_CASES)
def test_activation_block_scales(backend, n, beta, L):
    x = rand((4, n), seed=3)
    bits, blocks = _xhbnn.pack_rows_blocks(x, -1 if beta is None else beta, L)
    np.testing.assert_array_equal(bits, ref.pack_bits(x))
    seg = ref.segment_length(beta, n)
    scales = ref.segment_scales(x, beta)
    starts = np.arange(blocks.shape[1]) * L
    expected = np.where(starts < n, scales[:, np.minimum(starts, n - 1) // seg], 0)
    np.testing.assert_array_equal(blocks, expected.astype(np.float32))


# ---- linear --------------------------------------------------------------------------------

@pytest.mark.parametrize("k", WIDTHS)
@pytest.mark.parametrize("bw,ba", [(16, 16), (64, 64), (None, None), (16, 2), (16, 1), (1, 8), (1, 1), (8, 32)])
def test_linear_widths(backend, k, bw, ba):
    x, w = rand((3, k), 1), rand((4, k), 2)
    out = ck.hbnn_linear(x, w, bw, ba)
    mag = magnitude(ref.binarize_rows(x, ba), ref.binarize_rows(w, bw))
    assert_close(out, ref.hbnn_linear(x, w, bw, ba), mag)


@pytest.mark.parametrize("bw,ba", PAIRS)
def test_linear_every_beta_pair(backend, bw, ba):
    x, w = rand((5, 1000), 4), rand((3, 1000), 5)
    out = ck.hbnn_linear(x, w, bw, ba)
    assert_close(out, ref.hbnn_linear(x, w, bw, ba), magnitude(ref.binarize_rows(x, ba), ref.binarize_rows(w, bw)))


# ---- conv ----------------------------------------------------------------------------------

def check_conv(x, w, bw, ba, stride, padding, **kw):
    out = ck.hbnn_conv2d(x, w, bw, ba, stride=stride, padding=padding, **kw)
    expected = ref.hbnn_conv2d(x, w, bw, ba, stride=stride, padding=padding)
    assert_close(out, expected, conv_magnitude(x, w, bw, ba, stride, padding))
    return out


@pytest.mark.parametrize("c", WIDTHS[:-1])
@pytest.mark.parametrize("bw,ba", [(16, 16), (64, 64), (None, None), (16, 2), (16, 1), (32, 8)])
def test_conv_channel_widths(backend, c, bw, ba):
    check_conv(rand((1, 5, 6, c), c), rand((3, 3, 3, c), c + 1), bw, ba, 1, 1)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("hw", [(7, 7), (9, 6), (5, 11)])
@pytest.mark.parametrize("bw,ba", [(16, 16), (None, None), (16, 1), (4, 4)])
def test_conv_geometry(backend, stride, padding, hw, bw, ba):
    check_conv(rand((2,) + hw + (24,), 11), rand((4, 3, 3, 24), 12), bw, ba, stride, padding)


@pytest.mark.parametrize("bw,ba", PAIRS)
def test_conv_every_beta_pair(backend, bw, ba):
    check_conv(rand((1, 6, 5, 64), 21), rand((3, 3, 3, 64), 22), bw, ba, 1, 1)


@pytest.mark.parametrize("bw,ba", [(16, 2), (16, 16), (None, None), (8, 1), (2, 16)])
def test_conv_lenet_shape(backend, bw, ba):
    check_conv(rand((1, 12, 12, 20), 31), rand((50, 5, 5, 20), 32), bw, ba, 1, 0)


# 64-bit blocks: runs of words sharing one scale pair (pixels of 1-5 words, segments of 1-8 words, runs
# that are odd, that straddle pixels or not), patch and filter counts that leave every tile a tail
@pytest.mark.parametrize("c", [64, 100, 128, 192, 256, 320, 512])
@pytest.mark.parametrize("bw,ba", [(None, None), (64, 64), (128, None), (None, 128), (256, 64), (512, None),
                                   (None, 64)])
@pytest.mark.parametrize("o", [1, 3, 6])
@pytest.mark.parametrize("hw", [(1, 1), (5, 3)])
def test_conv_runs_of_words(backend, c, bw, ba, o, hw):
    check_conv(rand((1,) + hw + (c,), c), rand((o, 3, 3, c), o), bw, ba, 1, 1)


@pytest.mark.parametrize("k", [64, 200, 4096, 8192])
@pytest.mark.parametrize("bw,ba", [(None, None), (128, None), (None, 256), (64, 64)])
@pytest.mark.parametrize("m,o", [(1, 1), (2, 7), (5, 4)])
def test_linear_runs_of_words(backend, k, bw, ba, m, o):
    x, w = rand((m, k), 6), rand((o, k), 7)
    mag = magnitude(ref.binarize_rows(x, ba), ref.binarize_rows(w, bw))
    assert_close(ck.hbnn_linear(x, w, bw, ba), ref.hbnn_linear(x, w, bw, ba), mag)


@pytest.mark.parametrize("c,seg_a,k,seg_w,run", [
    (128, 128, 1152, 1152, 2),   # beta = inf: one pixel (2 words) per run
    (512, 512, 4608, 4608, 8),
    (192, 192, 1728, 128, 1),    # weight segments of 2 words against pixels of 3
    (256, 128, 2304, 2304, 2),   # activation segments inside a pixel
    (256, 256, 2304, 512, 4),    # weight segments over two pixels
    (8192, 8192, 8192, 8192, 128),  # a dense row
    (1000, 1000, 1000, 1000, 16),
])
def test_run_words(c, seg_a, k, seg_w, run):
    assert _xhbnn.run_words(c, seg_a, k, seg_w) == run


def test_conv_kernel_larger_than_input_with_padding(backend):
    check_conv(rand((1, 2, 2, 16), 1), rand((2, 3, 3, 16), 2), 16, 16, 1, 1)


# ---- the sign path's filter panels: prebuilt at prepare time, or built inside each call ---------
# _xhbnn prebuilds them for calls of at most PREBUILT_PANEL_MAX_ROWS rows, or when all panels fit in
# PREBUILT_PANEL_SMALL_BYTES; both code paths are checked here, at every shape, not only by models.

@pytest.fixture(params=["prebuilt", "per-call"])
def panels(request, monkeypatch):
    limit = 1 << 40 if request.param == "prebuilt" else 0
    monkeypatch.setattr(_xhbnn, "PREBUILT_PANEL_MAX_BYTES", limit)
    monkeypatch.setattr(_xhbnn, "PREBUILT_PANEL_SMALL_BYTES", limit)
    return request.param


@pytest.mark.parametrize("m", [1, 8, 9, 33])
@pytest.mark.parametrize("k,bw,ba", [(70, 16, 1), (1000, 64, 1), (129, 16, 2), (64, None, 1)])
def test_sign_linear_with_and_without_prebuilt_panels(backend, panels, m, k, bw, ba):
    x, w = rand((m, k), m), rand((37, k), k)
    assert ck.prepare_linear(w, bw, ba, m).path in ("sign", "xor")
    assert_close(ck.hbnn_linear(x, w, bw, ba), ref.hbnn_linear(x, w, bw, ba),
                 magnitude(ref.binarize_rows(x, ba), ref.binarize_rows(w, bw)))


@pytest.mark.parametrize("hw", [(1, 1), (3, 3), (6, 5)])
@pytest.mark.parametrize("c,bw,ba", [(20, 16, 1), (3, 1, 16), (50, 16, 2)])
def test_sign_conv_with_and_without_prebuilt_panels(backend, panels, hw, c, bw, ba):
    check_conv(rand((2,) + hw + (c,), c), rand((17, 3, 3, c), c + 1), bw, ba, 1, 1)


@pytest.mark.parametrize("m", [8, 9])
def test_prebuilt_panel_row_threshold_at_its_real_values(backend, m):
    """8 rows prebuild, 9 do not (the panels of 300 x 1024 weights exceed the small-layer limit)."""
    assert _xhbnn.PREBUILT_PANEL_MAX_ROWS == 8 and 300 * 1024 * 4 > _xhbnn.PREBUILT_PANEL_SMALL_BYTES
    x, w = rand((m, 1024), 3), rand((300, 1024), 4)
    assert_close(ck.hbnn_linear(x, w, 16, 1), ref.hbnn_linear(x, w, 16, 1),
                 magnitude(ref.binarize_rows(x, 1), ref.binarize_rows(w, 16)))


# ---- fused extras, threads, reuse -----------------------------------------------------------

@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 1), (1, 1), (16, 2), (1, 16)])
def test_fused_affine_and_epilogue(backend, bw, ba):
    x, w = rand((1, 6, 6, 32), 41), rand((8, 3, 3, 32), 42)
    ins, inb = rand((32,), 43), rand((32,), 44)
    outs, outb = rand((8,), 45), rand((8,), 46)
    out = ck.hbnn_conv2d(x, w, bw, ba, padding=1, in_scale=ins, in_bias=inb, out_scale=outs, out_bias=outb,
                         relu=True)
    xa = (x * ins + inb).astype(np.float32)
    y = ref.hbnn_conv2d(xa, w, bw, ba, padding=1)
    expected = ref.epilogue(y, outs, outb, relu=True)
    mag = conv_magnitude(xa, w, bw, ba, 1, 1) * np.abs(outs) + np.abs(outb)
    assert_close(out, expected, mag)
    assert (out >= 0).all()


def test_threads_give_identical_results(backend):
    x, w = rand((2, 16, 16, 128), 51), rand((64, 3, 3, 128), 52)
    for bw, ba in [(16, 16), (16, 1), (None, None)]:
        one = ck.hbnn_conv2d(x, w, bw, ba, padding=1, threads=1)
        two = ck.hbnn_conv2d(x, w, bw, ba, padding=1, threads=2)
        np.testing.assert_array_equal(one, two)


def test_packed_weights_reused_across_calls_and_shapes(backend):
    w = rand((6, 3, 3, 40), 61)
    pw = ck.pack_weights(w, 8)
    for seed, shape in enumerate([(1, 8, 8, 40), (2, 5, 7, 40), (1, 8, 8, 40)]):
        x = rand(shape, seed)
        out = np.full(ck.api.conv_output_shape(shape, w.shape, 1, 1), np.nan, dtype=np.float32)
        res = ck.hbnn_conv2d(x, pw, 8, 8, padding=1, out=out)
        assert res is out
        assert_close(out, ref.hbnn_conv2d(x, w, 8, 8, padding=1), conv_magnitude(x, w, 8, 8, 1, 1))


def test_from_packed_equals_pack_weights(backend):
    w = rand((7, 2, 2, 30), 71)
    pw = ck.pack_weights(w, 16)
    again = ck.PackedWeights.from_packed(pw.bits, pw.scales, w.shape, 16)
    x = rand((1, 4, 4, 30), 72)
    np.testing.assert_array_equal(ck.hbnn_conv2d(x, pw, 16, 16), ck.hbnn_conv2d(x, again, 16, 16))
    assert again.bits is pw.bits  # no copy


# ---- special values -------------------------------------------------------------------------

@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 1), (None, None), (1, 1), (16, 2)])
def test_huge_and_tiny_magnitudes(backend, bw, ba):
    x = rand((1, 5, 5, 48), 81, scale=1e20)
    w = rand((4, 3, 3, 48), 82, scale=1e-20)
    check_conv(x, w, bw, ba, 1, 1)
    check_conv(rand((1, 5, 5, 48), 83, scale=1e-18), rand((4, 3, 3, 48), 84, scale=1e-3), bw, ba, 1, 1)


@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 1), (None, None), (16, 2)])
def test_zeros(backend, bw, ba):
    x = np.zeros((1, 4, 4, 32), dtype=np.float32)
    out = ck.hbnn_conv2d(x, rand((3, 3, 3, 32), 1), bw, ba, padding=1)
    np.testing.assert_array_equal(out, np.zeros_like(out))


@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 1), (None, None), (1, 1), (64, 8)])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_inputs_poison_exactly_the_outputs_that_read_them(backend, bw, ba, bad):
    """Documented contract: an output is non-finite iff the reference's is (NaN/Inf propagate
    through the segment's scale to every output that reads that segment)."""
    x = rand((1, 7, 7, 32), 91)
    x[0, 3, 2, 5] = bad
    w = rand((4, 3, 3, 32), 92)
    out = ck.hbnn_conv2d(x, w, bw, ba, padding=1)
    expected = ref.hbnn_conv2d(x, w, bw, ba, padding=1)
    np.testing.assert_array_equal(np.isfinite(out), np.isfinite(expected))
    assert not np.isfinite(out).all()
    fin = np.isfinite(expected)
    assert_close(out[fin], expected[fin], conv_magnitude(np.nan_to_num(x), w, bw, ba, 1, 1)[fin])


# ---- bad input ------------------------------------------------------------------------------

def test_bad_inputs_raise_clear_errors():
    x, w = rand((2, 8)), rand((3, 8))
    cases = [
        (lambda: ck.hbnn_linear(x.astype(np.float64), w, 16, 16), TypeError, "float32"),
        (lambda: ck.hbnn_linear(x[:, ::2], w[:, :4], 16, 16), ValueError, "contiguous"),
        (lambda: ck.hbnn_linear(x[None], w, 16, 16), ValueError, "rank 2"),
        (lambda: ck.hbnn_linear(x, rand((3, 9)), 16, 16), ValueError, "K=8"),
        (lambda: ck.hbnn_linear(x, w, 0, 16), ValueError, "beta_w >= 1"),
        (lambda: ck.hbnn_linear(x, w, 16, -2), ValueError, "beta_a >= 1"),
        (lambda: ck.hbnn_linear(x, w, 1.5, 1), ValueError, "beta_w"),
        (lambda: ck.hbnn_linear(x, w, 6, 4), ValueError, "divides"),
        (lambda: ck.hbnn_linear(np.zeros((0, 8), np.float32), w, 16, 16), ValueError, "non-empty"),
        (lambda: ck.hbnn_linear(x, w, 16, 16, threads=0), ValueError, "threads"),
        (lambda: ck.hbnn_linear(x, ck.pack_weights(w, 8), 16, 16), ValueError, "packed weights' beta_w"),
        (lambda: ck.hbnn_linear(x, w, 16, 16, out=np.empty((2, 2), np.float32)), ValueError, "out"),
        (lambda: ck.hbnn_linear(x, w, 16, 16, out_bias=np.ones(4, np.float32)), ValueError, "out_bias"),
        (lambda: ck.hbnn_linear([[1.0]], w, 16, 16), TypeError, "ndarray"),
        (lambda: ck.hbnn_conv2d(rand((1, 4, 4, 3)), rand((2, 3, 3, 4)), 4, 4), ValueError, "C=4"),
        (lambda: ck.hbnn_conv2d(rand((1, 4, 4, 3)), rand((2, 3, 3, 3)), 4, 4, stride=0), ValueError, "stride"),
        (lambda: ck.hbnn_conv2d(rand((1, 4, 4, 3)), rand((2, 3, 3, 3)), 4, 4, padding=-1), ValueError, "padding"),
        (lambda: ck.hbnn_conv2d(rand((1, 2, 2, 3)), rand((2, 3, 3, 3)), 4, 4), ValueError, "at least 3x3"),
        (lambda: ck.hbnn_conv2d(rand((1, 4, 4, 3)), rand((2, 3, 3, 3)), 4, 4, padding=1.0), TypeError, "padding"),
        (lambda: ck.pack_weights(rand((2, 3, 3)), 4), ValueError, "shape"),
        (lambda: ck.PackedWeights.from_packed(np.zeros((2, 1), np.uint64), np.zeros((2, 3), np.float32),
                                              (2, 8), 4), ValueError, "scales"),
    ]
    for fn, exc, words in cases:
        with pytest.raises(exc, match=words):
            fn()


def test_backend_name():
    assert ck.backend_name() in ("avx512", "avx2", "neon", "portable")
    x, w = rand((2, 70)), rand((3, 70))
    np.testing.assert_array_equal(ck.hbnn_linear(x, w, math.inf, None), ck.hbnn_linear(x, w, None, None))


def test_read_only_inputs_are_accepted(backend):
    """Weights mapped read-only from a model file and frozen inputs must work on every path."""
    w = rand((4, 3, 3, 16), 101)
    pw = ck.pack_weights(w, 16)
    frozen = ck.PackedWeights.from_packed(pw.bits.copy(), pw.scales.copy(), w.shape, 16)
    frozen.bits.flags.writeable = False
    frozen.scales.flags.writeable = False
    x = rand((1, 5, 5, 16), 102)
    x.flags.writeable = False
    s = np.ones(16, np.float32)
    s.flags.writeable = False
    for ba in (16, 1, 2):
        out = ck.hbnn_conv2d(x, frozen, 16, ba, padding=1, in_scale=s)
        assert_close(out, ref.hbnn_conv2d(x, w, 16, ba, padding=1), conv_magnitude(x, w, 16, ba, 1, 1))
    dense = ck.pack_weights(w, 1)
    dense.dense.flags.writeable = False
    assert_close(ck.hbnn_conv2d(x, dense, 1, 1), ref.hbnn_conv2d(x, w, 1, 1), conv_magnitude(x, w, 1, 1, 1, 0))


@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 1), (1, 1), (16, 2), (None, None)])
def test_prepared_ops_match_one_shot_calls(backend, bw, ba):
    w = rand((6, 3, 3, 24), 111)
    ins, outb = rand((24,), 112), rand((6,), 113)
    op = ck.prepare_conv2d(w, bw, ba, (1, 7, 7, 24), stride=2, padding=1, in_scale=ins, out_bias=outb, relu=True)
    assert op.output_shape == (1, 4, 4, 6)
    out = np.empty(op.output_shape, np.float32)
    for seed in range(3):
        x = rand((1, 7, 7, 24), 120 + seed)
        assert op(x, out) is out
        np.testing.assert_array_equal(out, ck.hbnn_conv2d(x, w, bw, ba, stride=2, padding=1, in_scale=ins,
                                                          out_bias=outb, relu=True))
    lin = ck.prepare_linear(w.reshape(6, -1), bw, ba, batch=2)
    x = rand((2, 216), 130)
    np.testing.assert_array_equal(lin(x), ck.hbnn_linear(x, w.reshape(6, -1), bw, ba))
    with pytest.raises(ValueError, match="shape"):
        op(rand((1, 7, 7, 23)))
    with pytest.raises(ValueError, match="out"):
        op(rand((1, 7, 7, 24)), np.empty((1, 4, 4, 5), np.float32))
    with pytest.raises(ValueError, match="C=24"):
        ck.prepare_conv2d(w, bw, ba, (1, 7, 7, 3))

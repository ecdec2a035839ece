"""The NumPy reference agrees with itself: packing, bit order, and the xHBNN block formula."""
import math

import numpy as np
import pytest

from cy_kernels import reference as ref

POW2 = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, None]


def test_one_hot_bit_order():
    for j in [0, 1, 7, 8, 63, 64, 65, 127, 128, 199]:
        x = np.ones(200, dtype=np.float32)
        x[j] = -1
        words = ref.pack_bits(x)
        assert words.shape == (4,)
        expected = np.zeros(4, dtype=np.uint64)
        expected[j // 64] = np.uint64(1) << np.uint64(j % 64)
        np.testing.assert_array_equal(words, expected)


def test_zero_and_nan_pack_as_plus_one():
    x = np.array([0.0, -0.0, np.nan, -np.nan, -1e-45, -np.inf, np.inf], dtype=np.float32)
    bits = ref.unpack_bits(ref.pack_bits(x), x.size)
    np.testing.assert_array_equal(bits, [False, False, False, False, True, True, False])
    assert ref.signs(x).tolist() == [1, 1, 1, 1, -1, -1, 1]


@pytest.mark.parametrize("n", [1, 3, 63, 64, 65, 130])
def test_pack_unpack_round_trip(n):
    x = np.random.default_rng(n).standard_normal((3, n)).astype(np.float32)
    np.testing.assert_array_equal(ref.unpack_bits(ref.pack_bits(x), n), x < 0)


def test_scales_use_true_segment_length():
    x = np.array([1, -3, 2, 2, -5], dtype=np.float32)  # segments of 2: [1,-3], [2,2], [-5]
    np.testing.assert_allclose(ref.segment_scales(x, 2), [2.0, 2.0, 5.0])
    np.testing.assert_allclose(ref.binarize_rows(x, 2), [2, -2, 2, 2, -5])
    np.testing.assert_allclose(ref.segment_scales(x, None), [13 / 5])


def test_beta_one_is_identity_and_inf_is_xnor():
    x = np.random.default_rng(1).standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_array_equal(ref.binarize_rows(x, 1), x)
    xnor = np.abs(x).mean(axis=1, keepdims=True) * np.where(x < 0, -1, 1)
    np.testing.assert_allclose(ref.binarize_rows(x, math.inf), xnor, rtol=1e-6)


@pytest.mark.parametrize("beta", [0, -1, 1.5, "4", True])
def test_bad_beta(beta):
    with pytest.raises((ValueError, TypeError)):
        ref.normalize_beta(beta)


def test_pairs_must_divide():
    with pytest.raises(ValueError, match="divides"):
        ref.check_betas(3, 2)
    assert ref.check_betas(None, 4) == (None, 4)


@pytest.mark.parametrize("bw", POW2)
@pytest.mark.parametrize("ba", POW2)
def test_block_formula_equals_binarized_dot(bw, ba):
    rng = np.random.default_rng(7)
    n = 300
    w, a = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    expected = float(np.dot(ref.binarize_rows(w, bw).astype(np.float64), ref.binarize_rows(a, ba).astype(np.float64)))
    assert ref.xhbnn_dot(w, a, bw, ba) == pytest.approx(expected, rel=1e-6, abs=1e-6)


def test_conv_matches_direct_loops():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 5, 6, 3)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    out = ref.hbnn_conv2d(x, w, 4, 1, stride=2, padding=1)
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    wb = ref.binarize_rows(w.reshape(2, -1), 4).reshape(w.shape)
    for i in range(out.shape[1]):
        for j in range(out.shape[2]):
            patch = xp[0, 2 * i:2 * i + 3, 2 * j:2 * j + 3, :]
            for o in range(2):
                assert out[0, i, j, o] == pytest.approx(float((patch * wb[o]).sum()), rel=1e-5, abs=1e-5)


def test_pools():
    x = np.arange(2 * 4 * 4 * 3, dtype=np.float32).reshape(2, 4, 4, 3)
    mp = ref.max_pool2d(x, 2)
    assert mp.shape == (2, 2, 2, 3)
    assert mp[0, 0, 0, 0] == x[0, :2, :2, 0].max()
    ap = ref.avg_pool2d(x, 2)
    assert ap[1, 1, 1, 2] == pytest.approx(x[1, 2:, 2:, 2].mean())


@pytest.mark.parametrize("k, beta", [(1, 2), (63, 16), (64, None), (65, 4), (200, 3), (800, 16), (129, 64)])
def test_pack_rows_equals_the_c_packer_and_unpacks_to_the_same_bits(k, beta):
    """Model files are packed with pack_rows; the kernels pack with C: the two must agree bit for bit."""
    import cy_kernels

    w = np.random.default_rng(k).normal(size=(7, k)).astype(np.float32)
    w[0, : k // 2] = 0.0  # zeros pack as +1
    bits, scales = ref.pack_rows(w, beta)
    pw = cy_kernels.pack_weights(w, beta)
    np.testing.assert_array_equal(bits, pw.bits)
    np.testing.assert_array_equal(scales, pw.scales)
    again = ref.pack_rows(ref.unpack_rows(bits, scales, k, beta), beta)
    np.testing.assert_array_equal(again[0], bits)
    np.testing.assert_array_equal(again[1], scales)


def test_softmax_and_format_beta():
    p = ref.softmax(np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]], np.float32))
    assert p.dtype == np.float32 and np.allclose(p.sum(axis=1), 1) and p[1, 0] == 1
    assert ref.softmax(np.zeros(4)).dtype == np.float64
    assert [ref.format_beta(b) for b in (None, 1, 16)] == ["inf", "1", "16"]

"""Preprocessing: exact normalization, crop/resize/colour maths, and clear errors for bad frames."""
from __future__ import annotations

import numpy as np
import pytest

from edge.preprocess import BadFrameError, InputSpecError, Preprocessor

FMNIST = {"shape": [28, 28, 1], "layout": "NHWC", "pixel_scale": 1 / 255, "mean": [0.2860], "std": [0.3530]}


def test_identity_size_applies_the_spec_formula():
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    x = Preprocessor(FMNIST)(frame)
    assert x.shape == (1, 28, 28, 1) and x.dtype == np.float32
    want = (frame.astype(np.float64) / 255 - 0.2860) / 0.3530
    np.testing.assert_allclose(x[0, :, :, 0], want, rtol=1e-5, atol=1e-5)


def test_per_channel_mean_std_rgb():
    spec = {"shape": [2, 2, 3], "pixel_scale": 1.0, "mean": [1, 2, 3], "std": [1, 2, 4]}
    frame = np.full((2, 2, 3), 10, np.uint8)
    x = Preprocessor(spec)(frame)
    np.testing.assert_allclose(x[0, 0, 0], [9, 4, 1.75])


def test_box_downscale_is_the_block_mean():
    frame = np.random.default_rng(1).integers(0, 256, (56, 56), dtype=np.uint8)
    pre = Preprocessor({"shape": [28, 28, 1], "pixel_scale": 1.0, "mean": [0], "std": [1]})
    want = frame.reshape(28, 2, 28, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(pre(frame)[0, :, :, 0], want, rtol=1e-6)


def test_non_integer_downscale_averages_every_pixel_once():
    frame = np.ones((30, 45), np.uint8) * 200
    pre = Preprocessor({"shape": [7, 7, 1], "pixel_scale": 1.0}, crop="none")
    np.testing.assert_allclose(pre(frame), 200.0)  # a flat image stays flat


def test_upscale_is_nearest_neighbour():
    frame = np.array([[0, 100], [200, 255]], np.uint8)
    pre = Preprocessor({"shape": [4, 4, 1], "pixel_scale": 1.0})
    want = np.repeat(np.repeat(frame, 2, 0), 2, 1)
    np.testing.assert_array_equal(pre(frame)[0, :, :, 0], want)


def test_center_crop_keeps_aspect_ratio():
    # 4x8 frame: left and right quarters are 0, the centre 4x4 is 255 -> a square model sees only 255.
    frame = np.zeros((4, 8), np.uint8)
    frame[:, 2:6] = 255
    pre = Preprocessor({"shape": [2, 2, 1], "pixel_scale": 1.0})
    np.testing.assert_array_equal(pre(frame), 255.0)
    squash = Preprocessor({"shape": [2, 2, 1], "pixel_scale": 1.0}, crop="none")
    np.testing.assert_array_equal(squash(frame)[0, :, :, 0], [[127.5, 127.5], [127.5, 127.5]])


def test_rgb_to_gray_uses_bt601_luma():
    frame = np.zeros((2, 2, 3), np.uint8)
    frame[..., 0], frame[..., 1], frame[..., 2] = 100, 50, 200
    pre = Preprocessor({"shape": [2, 2, 1], "pixel_scale": 1.0})
    np.testing.assert_allclose(pre(frame), 0.299 * 100 + 0.587 * 50 + 0.114 * 200, rtol=1e-6)


def test_gray_to_rgb_and_alpha_dropped():
    pre = Preprocessor({"shape": [2, 2, 3], "pixel_scale": 1.0})
    np.testing.assert_array_equal(pre(np.full((2, 2), 9, np.uint8)), 9.0)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 3] = 255
    np.testing.assert_array_equal(pre(rgba), 0.0)


def test_float_frames_are_pixels_and_buffer_is_reused():
    pre = Preprocessor(FMNIST)
    a = pre(np.full((28, 28), 255.0, np.float32))
    b = pre(np.full((28, 28), 255, np.uint8))
    assert a is b  # one buffer, no per-frame allocation of the output
    np.testing.assert_allclose(b, (1 - 0.2860) / 0.3530, rtol=1e-6)


def test_batch():
    pre = Preprocessor(FMNIST)
    frames = [np.zeros((28, 28), np.uint8), np.full((56, 56), 255, np.uint8)]
    x = pre.batch(frames)
    assert x.shape == (2, 28, 28, 1)
    np.testing.assert_allclose(x[1], (1 - 0.2860) / 0.3530, rtol=1e-6)


@pytest.mark.parametrize("frame, match", [
    (np.zeros((28, 28, 2), np.uint8), "shape"),
    (np.zeros((2, 28, 28, 1), np.uint8), "shape"),
    (np.zeros((0, 28), np.uint8), "shape"),
    (np.zeros((28,), np.uint8), "shape"),
    (np.zeros((28, 28), np.int64), "dtype int64"),
    (np.zeros((28, 28), bool), "dtype bool"),
    (np.full((28, 28), np.nan, np.float32), "NaN"),
    (np.full((28, 28), np.inf), "NaN or inf"),
    ([[0] * 28] * 28, "NumPy array"),
    (None, "NoneType"),
])
def test_bad_frames_raise_frame_error(frame, match):
    with pytest.raises(BadFrameError, match=match):
        Preprocessor(FMNIST)(frame)


@pytest.mark.parametrize("spec, match", [
    ({"shape": [28, 28]}, "shape"),
    ({"shape": [28, 28, 2]}, "1 or 3"),
    ({"shape": [28, 28, 1], "layout": "NCHW"}, "NHWC"),
    ({"shape": [28, 28, 1], "std": [0]}, "non-zero"),
    ({"shape": [28, 28, 3], "mean": [0, 0]}, "mean"),
])
def test_bad_specs(spec, match):
    with pytest.raises(InputSpecError, match=match):
        Preprocessor(spec)

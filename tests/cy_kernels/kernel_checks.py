"""Comparison helpers shared by the kernel tests."""
from __future__ import annotations

import numpy as np

from cy_kernels import reference as ref


def magnitude(a_bin: np.ndarray, w_bin: np.ndarray) -> np.ndarray:
    """sum |a| |w| per output: the scale against which float error is judged."""
    return np.abs(a_bin.astype(np.float64)) @ np.abs(w_bin.astype(np.float64)).T


def assert_close(out: np.ndarray, expected: np.ndarray, mag: np.ndarray, rtol: float = 1e-5) -> None:
    """Within rtol of the outputs' magnitude (sum of |terms|): relative error that stays
    meaningful when terms cancel and the result itself is near zero."""
    assert out.shape == expected.shape, (out.shape, expected.shape)
    assert out.dtype == np.float32
    err = np.abs(out.astype(np.float64) - expected.astype(np.float64))
    bound = rtol * (mag + np.abs(expected.astype(np.float64))) + 1e-30
    worst = np.unravel_index(np.argmax(err / bound), err.shape)
    assert np.all(err <= bound), f"max error {err[worst]} > bound {bound[worst]} at {worst}"


def conv_magnitude(x, w, beta_w, beta_a, stride, padding):
    o, kh, kw, _ = w.shape
    cols = ref.im2col(ref.binarize_rows(x, beta_a), kh, kw, stride, padding)
    return magnitude(cols.reshape(-1, cols.shape[-1]), ref.binarize_rows(w.reshape(o, -1), beta_w)).reshape(
        cols.shape[:-1] + (o,))

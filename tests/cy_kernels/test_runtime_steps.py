"""The runtime's small C steps (pooling, softmax), the prepared ops' bound fast path, backend choice."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import cy_kernels as ck
from cy_kernels import _xhbnn


def _pool_ref(x, k, s, kind):
    b, h, w, c = x.shape
    oh, ow = (h - k) // s + 1, (w - k) // s + 1
    out = np.empty((b, oh, ow, c), np.float32)
    for oy in range(oh):
        for ox in range(ow):
            win = x[:, oy * s:oy * s + k, ox * s:ox * s + k, :]
            out[:, oy, ox] = win.max(axis=(1, 2)) if kind == "maxpool" else win.mean(axis=(1, 2))
    return out


@pytest.mark.parametrize("kind", ["maxpool", "avgpool"])
@pytest.mark.parametrize("shape,k,s", [((1, 4, 4, 3), 2, 2), ((2, 7, 5, 17), 3, 2), ((1, 6, 6, 1), 3, 1),
                                       ((3, 5, 5, 64), 2, 2), ((1, 1, 1, 5), 1, 1), ((2, 7, 6, 32), 3, 2),
                                       ((1, 5, 5, 16), 3, 1)])  # channels % 16 == 0: the register path
def test_pool_matches_reference(kind, shape, k, s):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    want = _pool_ref(x, k, s, kind)
    out = np.full(want.shape, np.nan, np.float32)
    _xhbnn.BoundPool(kind, x, out, k, s)()
    np.testing.assert_allclose(out, want, rtol=1e-6, atol=1e-6)
    x[:] = 1.0  # bound to the arrays: a second call reads the new contents
    _xhbnn.BoundPool(kind, x, out, k, s)()
    np.testing.assert_allclose(out, np.ones_like(out))


@pytest.mark.parametrize("c", [2, 16, 48])
def test_maxpool_propagates_nan_like_numpy(c):
    x = np.zeros((1, 4, 4, c), np.float32)
    x[0, 0, 1, 0] = np.nan
    x[0, 3, 3, 1] = np.inf
    out = np.empty((1, 2, 2, c), np.float32)
    _xhbnn.BoundPool("maxpool", x, out, 2, 2)()
    assert np.isnan(out[0, 0, 0, 0]) and not np.isnan(out[0, 0, 0, 1])
    assert out[0, 1, 1, 1] == np.inf
    assert np.isnan(out).sum() == 1


@pytest.mark.parametrize("bad", [
    dict(kind="minpool"), dict(x=np.zeros((1, 4, 4, 3), np.float64)), dict(out=np.zeros((1, 3, 3, 3), np.float32)),
    dict(x=np.zeros((4, 4, 3), np.float32)), dict(k=5), dict(s=0)])
def test_pool_rejects_bad_arguments(bad):
    args = dict(kind="maxpool", x=np.zeros((1, 4, 4, 3), np.float32), out=np.zeros((1, 2, 2, 3), np.float32), k=2, s=2)
    args.update(bad)
    with pytest.raises(ValueError, match="Expected"):
        _xhbnn.BoundPool(args["kind"], args["x"], args["out"], args["k"], args["s"])


@pytest.mark.parametrize("shape", [(1, 10), (4, 3), (2, 1), (1, 1000)])
def test_softmax_matches_reference(shape):
    x = (np.random.default_rng(1).standard_normal(shape) * 30).astype(np.float32)
    out = np.empty_like(x)
    _xhbnn.BoundSoftmax(x, out)()
    e = np.exp(x.astype(np.float64) - x.max(axis=-1, keepdims=True))
    np.testing.assert_allclose(out, e / e.sum(axis=-1, keepdims=True), rtol=1e-5, atol=1e-7)


def test_softmax_nan_row_stays_nan_and_bad_shapes_are_refused():
    x = np.array([[1.0, np.nan, 2.0], [1.0, 2.0, 3.0]], np.float32)
    out = np.empty_like(x)
    _xhbnn.BoundSoftmax(x, out)()
    assert np.isnan(out[0]).all() and np.isfinite(out[1]).all()
    with pytest.raises(ValueError, match="same non-empty shape"):
        _xhbnn.BoundSoftmax(x, np.empty((2, 4), np.float32))


@pytest.mark.parametrize("bw,ba", [(16, 16), (16, 2), (1, 1), (None, None)])
def test_prepared_op_reuses_bound_arrays_and_sees_new_contents(bw, ba):
    rng = np.random.default_rng(2)
    w = rng.standard_normal((8, 3, 3, 16)).astype(np.float32)
    op = ck.prepare_conv2d(w, bw, ba, (1, 6, 6, 16), 1, 1, 1, relu=True)
    x = rng.standard_normal((1, 6, 6, 16)).astype(np.float32)
    out = np.empty(op.output_shape, np.float32)
    for _ in range(3):  # the first call binds x and out; later calls take the fast path
        x[:] = rng.standard_normal(x.shape)
        assert op(x, out) is out
        np.testing.assert_array_equal(out, ck.hbnn_conv2d(x, w, bw, ba, padding=1, relu=True))
    other = np.empty_like(out)
    op(x, other)  # another out array: validated and bound anew
    np.testing.assert_array_equal(other, out)
    fresh = op(x)  # no out: a new array each call
    assert fresh is not op(x)
    with pytest.raises(ValueError, match="Expected x"):
        op(x.astype(np.float64), out)


def test_available_backends_lists_the_selected_one_and_portable_last():
    names = ck.available_backends()
    assert ck.backend_name() in names and names[-1] == "portable"
    assert set(names) <= {"avx512", "avx2", "neon", "portable"}
    with pytest.raises(ValueError, match="not available"):
        _xhbnn._use_backend("sse9")


@pytest.mark.no_emulation
def test_hbnn_backend_env_picks_or_explains():
    code = "import cy_kernels; print(cy_kernels.backend_name())"
    env = dict(os.environ, HBNN_BACKEND="portable")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "portable"
    env["HBNN_BACKEND"] = "sse9"
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "HBNN_BACKEND='sse9'" in done.stderr

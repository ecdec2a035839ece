"""The PyTorch layers compute exactly the reference math, and their gradients follow Eqns 5-6."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the [train] extra; absent on boards and under QEMU


import cy_kernels
from cy_kernels import reference as ref
from converters.layers import Binarize, HadaConv2d, HadaLinear, SignSTE, binarize, segment_scales

BETA_PAIRS = [(1, 1), (16, 2), (2, 16), (4, 4), (8, 1), (1, 8), (None, None), (None, 4), (4, None),
              (3, 9), (None, 1), (5, 5)]


def _nhwc(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().numpy().transpose(0, 2, 3, 1))


@pytest.mark.parametrize("beta", [1, 2, 3, 7, 16, 100, None, math.inf])
def test_binarize_equals_reference_rows(beta):
    x = np.random.default_rng(1).standard_normal((5, 3, 37)).astype(np.float32)
    x[0, 0, :4] = 0.0  # zero packs as +1
    got = binarize(torch.from_numpy(x), beta).numpy()
    np.testing.assert_allclose(got, ref.binarize_rows(x, beta), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(segment_scales(torch.from_numpy(x), ref.normalize_beta(beta)).numpy(),
                               ref.segment_scales(x, beta), rtol=1e-6)


def test_binarize_along_channel_dim_matches_per_pixel_rows():
    x = torch.randn(2, 6, 4, 5)
    got = Binarize(4, dim=1)(x).permute(0, 2, 3, 1).numpy()
    np.testing.assert_allclose(got, ref.binarize_rows(_nhwc(x), 4), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("bw,ba", BETA_PAIRS)
@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1)])
def test_conv_forward_equals_reference_and_kernels(bw, ba, stride, padding):
    torch.manual_seed(0)
    conv = HadaConv2d(6, 7, 3, stride=stride, padding=padding, bias=True, beta_w=bw, beta_a=ba)
    x = torch.randn(2, 6, 9, 8)
    y = _nhwc(conv(x))
    w = np.ascontiguousarray(conv.weight.detach().numpy().transpose(0, 2, 3, 1))
    b = conv.bias.detach().numpy()
    want = ref.hbnn_conv2d(_nhwc(x), w, bw, ba, stride, padding) + b
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=2e-5)
    got_k = cy_kernels.hbnn_conv2d(_nhwc(x), w, bw, ba, stride, padding, out_bias=b)
    np.testing.assert_allclose(y, got_k, rtol=1e-5, atol=2e-5)


@pytest.mark.parametrize("bw,ba", BETA_PAIRS)
def test_linear_forward_equals_reference_and_kernels(bw, ba):
    torch.manual_seed(1)
    lin = HadaLinear(45, 9, beta_w=bw, beta_a=ba)
    x = torch.randn(6, 45)
    y = lin(x).detach().numpy()
    w, b = lin.weight.detach().numpy(), lin.bias.detach().numpy()
    want = ref.hbnn_linear(x.numpy(), w, bw, ba) + b
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(y, cy_kernels.hbnn_linear(x.numpy(), w, bw, ba, out_bias=b), rtol=1e-5, atol=2e-5)


def test_conv_padding_is_applied_after_binarization():
    # With padding, a pixel row near the border must not see the padded zeros in its scale.
    conv = HadaConv2d(4, 2, 3, padding=2, bias=False, beta_w=None, beta_a=None)
    x = torch.randn(1, 4, 3, 3)
    w = np.ascontiguousarray(conv.weight.detach().numpy().transpose(0, 2, 3, 1))
    np.testing.assert_allclose(_nhwc(conv(x)), ref.hbnn_conv2d(_nhwc(x), w, None, None, 1, 2), rtol=1e-5, atol=1e-5)


def test_bad_beta_pairs_are_rejected():
    with pytest.raises(ValueError, match="one divides the other"):
        HadaLinear(8, 2, beta_w=4, beta_a=6)
    with pytest.raises(ValueError, match=">= 1"):
        HadaConv2d(1, 1, 3, beta_w=0, beta_a=1)


def test_sign_ste_forward_and_eqn5_backward():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5], requires_grad=True)
    y = SignSTE.apply(x)
    assert y.tolist() == [-1, -1, -1, 1, 1, 1, 1]
    y.backward(torch.ones_like(x))
    assert x.grad.tolist() == [0, 1, 1, 1, 1, 1, 0]  # 1 where |x| <= 1 (Eqn 5)


def _eqn6_closed_form(w: np.ndarray, g: np.ndarray, beta: int) -> np.ndarray:
    """dC/dw_i = sign(w_i)/n * sum_{j in seg} g_j sign(w_j) + alpha * g_i * 1{|w_i| <= 1} (Eqn 6)."""
    out = np.zeros_like(w, dtype=np.float64)
    n = w.shape[-1]
    for s in range(0, n, beta):
        sl = slice(s, min(s + beta, n))
        ws, gs = w[..., sl].astype(np.float64), g[..., sl].astype(np.float64)
        sgn = np.where(ws < 0, -1.0, 1.0)
        alpha = np.abs(ws).mean(-1, keepdims=True)
        out[..., sl] = sgn / ws.shape[-1] * (gs * sgn).sum(-1, keepdims=True) + alpha * gs * (np.abs(ws) <= 1)
    return out


@pytest.mark.parametrize("beta", [2, 4, 5, 16])
def test_gradient_through_scale_eqn6_numerically(beta):
    rng = np.random.default_rng(beta)
    w = rng.uniform(0.1, 1.6, (3, 16)) * rng.choice([-1, 1], (3, 16))  # away from 0 and +-1 kinks
    w[np.abs(np.abs(w) - 1) < 0.05] = 0.7
    g = rng.standard_normal((3, 16))
    wt = torch.tensor(w, dtype=torch.float64, requires_grad=True)
    (binarize(wt, beta) * torch.tensor(g)).sum().backward()
    autograd = wt.grad.numpy()
    np.testing.assert_allclose(autograd, _eqn6_closed_form(w, g, beta), rtol=1e-10, atol=1e-12)

    # Numerical check: the STE gradient is the exact derivative of the surrogate in which the sign's
    # value is frozen and its slope is that of hardtanh (Eqn 5), while the scale varies (Eqn 6).
    sign0 = np.where(w < 0, -1.0, 1.0)
    seg = lambda v: np.repeat(np.add.reduceat(np.abs(v), range(0, 16, beta), axis=-1)
                              / np.diff(list(range(0, 16, beta)) + [16]), np.diff(list(range(0, 16, beta)) + [16]),
                              axis=-1)

    def surrogate(v):
        return float((g * (seg(v) * sign0 + seg(w) * np.clip(v, -1, 1))).sum())

    eps = 1e-6
    numeric = np.zeros_like(w)
    for idx in np.ndindex(*w.shape):
        d = np.zeros_like(w)
        d[idx] = eps
        numeric[idx] = (surrogate(w + d) - surrogate(w - d)) / (2 * eps)
    np.testing.assert_allclose(autograd, numeric, rtol=1e-5, atol=1e-7)


def test_layer_gradients_flow_to_weights_and_inputs():
    conv = HadaConv2d(4, 3, 3, padding=1, beta_w=4, beta_a=2)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    conv(x).sum().backward()
    assert conv.weight.grad is not None and torch.isfinite(conv.weight.grad).all()
    assert conv.weight.grad.abs().sum() > 0 and x.grad.abs().sum() > 0

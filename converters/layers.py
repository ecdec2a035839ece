"""PyTorch HadaNet layers: Hadamard binarization with a straight-through sign.

A tensor row (last axis) is split into segments of ``beta`` consecutive
elements (the last may be shorter) and replaced by ``mean|x| * sign(x)`` per
segment, exactly as ``cy_kernels.reference.binarize_rows``; ``beta=1`` is full
precision and ``beta=None`` (or ``math.inf``) is one segment per row.

Rows follow the runtime's layout so the board computes what training computed:
conv weights are rows of ``w.permute(0, 2, 3, 1).reshape(O, -1)`` ((kh, kw, C)
order); conv activations are binarized per pixel over its C channels, *before*
zero padding; dense activations are binarized over the whole feature vector.

Gradients (paper Eqns 5-6): the sign passes the gradient straight through where
``|x| <= 1`` and blocks it elsewhere; the segment scale is an ordinary
differentiable mean, so autograd adds the ``sign(x_i)/n * sum_j g_j sign(x_j)``
term of Eqn 6.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from cy_kernels.reference import Beta, check_betas, format_beta, normalize_beta


class SignSTE(torch.autograd.Function):
    """sign(x) with -1 for x < 0 and +1 otherwise (zero is +1, as in the kernels); Eqn 5 backward."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.where(x < 0, -torch.ones_like(x), torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def segment_scales(x: torch.Tensor, beta: Optional[int]) -> torch.Tensor:
    """mean|x| over each segment of the last axis: shape (..., ceil(n / seg))."""
    n = x.shape[-1]
    seg = n if beta is None else min(beta, n)
    nseg = -(-n // seg)
    pad = nseg * seg - n
    absx = x.abs()
    if pad:
        absx = F.pad(absx, (0, pad))
    sums = absx.reshape(*x.shape[:-1], nseg, seg).sum(dim=-1)
    counts = torch.full((nseg,), float(seg), dtype=x.dtype, device=x.device)
    counts[-1] = n - (nseg - 1) * seg
    return sums / counts


def binarize(x: torch.Tensor, beta: Beta, dim: int = -1) -> torch.Tensor:
    """Hadamard binarization along ``dim``: segment scale * straight-through sign."""
    b = normalize_beta(beta)
    if b == 1:
        return x
    moved = x.movedim(dim, -1) if dim not in (-1, x.dim() - 1) else x
    n = moved.shape[-1]
    seg = n if b is None else min(b, n)
    scales = segment_scales(moved, b)
    nseg = scales.shape[-1]
    expanded = scales.unsqueeze(-1).expand(*scales.shape, seg).reshape(*scales.shape[:-1], nseg * seg)
    out = expanded[..., :n] * SignSTE.apply(moved)
    return out.movedim(-1, dim) if moved is not x else out


class Binarize(nn.Module):
    """Module form of :func:`binarize` (rows along ``dim``)."""

    def __init__(self, beta: Beta, dim: int = -1):
        super().__init__()
        self.beta = normalize_beta(beta, "beta")
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return binarize(x, self.beta, self.dim)

    def extra_repr(self) -> str:
        return f"beta={'inf' if self.beta is None else self.beta}, dim={self.dim}"


class _HadaMixin:
    """Shared beta handling; ``binarized=False`` runs the same weights in float (for analysis)."""

    def _init_betas(self, beta_w: Beta, beta_a: Beta) -> None:
        self.beta_w, self.beta_a = check_betas(beta_w, beta_a)
        self.binarized = True

    @property
    def full_precision(self) -> bool:
        return self.beta_w == 1 and self.beta_a == 1

    def _betas_repr(self) -> str:
        return f"beta_w={format_beta(self.beta_w)}, beta_a={format_beta(self.beta_a)}"


class HadaConv2d(nn.Conv2d, _HadaMixin):
    """Conv2d whose weights (rows in (kh, kw, C) order) and input pixels are Hadamard-binarized."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, beta_w: Beta = 1, beta_a: Beta = 1):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._init_betas(beta_w, beta_a)

    def binarized_weight(self) -> torch.Tensor:
        o, c, kh, kw = self.weight.shape
        rows = self.weight.permute(0, 2, 3, 1).reshape(o, -1)
        return binarize(rows, self.beta_w).reshape(o, kh, kw, c).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.binarized:
            return super().forward(x)
        # Binarize before F.conv2d pads: padded zeros stay exact zeros, as on the board.
        xb = binarize(x, self.beta_a, dim=1)
        return F.conv2d(xb, self.binarized_weight(), self.bias, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._betas_repr()}"


class HadaLinear(nn.Linear, _HadaMixin):
    """Linear layer whose weight rows and input feature vectors are Hadamard-binarized."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 beta_w: Beta = 1, beta_a: Beta = 1):
        super().__init__(in_features, out_features, bias=bias)
        self._init_betas(beta_w, beta_a)

    def binarized_weight(self) -> torch.Tensor:
        return binarize(self.weight, self.beta_w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.binarized:
            return super().forward(x)
        return F.linear(binarize(x, self.beta_a), self.binarized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._betas_repr()}"


def set_binarized(model: nn.Module, enabled: bool) -> None:
    """Switch every Hada layer of ``model`` between binarized and float forward passes."""
    for m in model.modules():
        if isinstance(m, _HadaMixin):
            m.binarized = enabled

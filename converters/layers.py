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

Integer scales (``int_scales=True``, docs/DESIGN.md section 9): every segment scale is rounded onto
``level * factor`` with a 7-bit level, per-filter factors for the weights and one running factor
per layer for the activations, with a straight-through gradient; in eval mode the layer computes the
integer sums exactly (float64) and one float multiply per output, as the runtime does.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from cy_kernels.reference import Beta, check_betas, format_beta, normalize_beta
from cy_kernels.reference_int import LEVEL_MAX, MAX_INT_K

ACT_RANGE_MOMENTUM = 0.1  # the running activation range, as BatchNorm's running statistics


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


def segment_scales_exact(x: torch.Tensor, beta: Optional[int]) -> torch.Tensor:
    """segment_scales summed in float64 and rounded once to float32, as cy_kernels.reference does."""
    return segment_scales(x.double(), beta).float()


def quantize_levels(scales: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Levels 0..127 of float32 scales (DESIGN.md section 9): round(scale * (1 / factor)), ties to even,
    NaN -> 0, saturating at 127. No gradient (use :func:`quantize_scales` for the straight-through form)."""
    with torch.no_grad():
        factor = factor.to(torch.float32)
        inv = torch.ones_like(factor) / factor  # one IEEE division, as 1.0f / factor in the kernels
        v = torch.nan_to_num(scales.to(torch.float32) * inv, nan=0.0, posinf=float(LEVEL_MAX))
        return torch.round(v.clamp(0.0, float(LEVEL_MAX)))  # torch.round: half to even


def quantize_scales(scales: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``level * factor`` in the forward pass; the gradient of ``scales`` passes straight through
    inside the grid and is zero where the level saturates at 127."""
    factor = factor.detach().to(scales.dtype)
    inside = torch.minimum(scales, factor * LEVEL_MAX)
    return inside + (quantize_levels(scales, factor).to(scales.dtype) * factor - inside).detach()


def weight_factors(scales: torch.Tensor) -> torch.Tensor:
    """Per-row factor (..., 1): the row's largest segment scale / 127 (1 for an all-zero row), no gradient."""
    top = scales.detach().amax(dim=-1, keepdim=True)
    return torch.where(top > 0, top / LEVEL_MAX, torch.ones_like(top))


def _expand(scales: torch.Tensor, seg: int, n: int) -> torch.Tensor:
    nseg = scales.shape[-1]
    return scales.unsqueeze(-1).expand(*scales.shape, seg).reshape(*scales.shape[:-1], nseg * seg)[..., :n]


def binarize(x: torch.Tensor, beta: Beta, dim: int = -1, factor=None) -> torch.Tensor:
    """Hadamard binarization along ``dim``: segment scale * straight-through sign.

    ``factor``: integer scales: a tensor broadcasting against the scales (..., nseg), or a callable
    that makes one from them (e.g. :func:`weight_factors`); the scales are then quantized onto
    ``level * factor`` (:func:`quantize_scales`).
    """
    b = normalize_beta(beta)
    if b == 1:
        return x
    moved = x.movedim(dim, -1) if dim not in (-1, x.dim() - 1) else x
    n = moved.shape[-1]
    seg = n if b is None else min(b, n)
    scales = segment_scales(moved, b)
    if factor is not None:
        scales = quantize_scales(scales, factor(scales) if callable(factor) else factor)
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


def int_levels_signed(x: torch.Tensor, beta: Optional[int], factor: torch.Tensor) -> torch.Tensor:
    """Rows (last axis) as float64 ``level * sign`` (exact integers): scales as the reference computes
    them (float64 sums), quantized against ``factor`` (broadcasting against (..., nseg))."""
    n = x.shape[-1]
    seg = n if beta is None else min(beta, n)
    levels = quantize_levels(segment_scales_exact(x, beta), factor).double()
    q = _expand(levels, seg, n)
    return torch.where(x < 0, -q, q)


class _HadaMixin:
    """Shared beta handling; ``binarized=False`` runs the same weights in float (for analysis)."""

    def _init_betas(self, beta_w: Beta, beta_a: Beta, int_scales: bool = False) -> None:
        self.beta_w, self.beta_a = check_betas(beta_w, beta_a)
        self.binarized = True
        self.int_scales = bool(int_scales)
        if self.int_scales:
            if self.beta_w == 1 or self.beta_a == 1:
                raise ValueError(f"Expected both betas > 1 for integer scales, got ({format_beta(self.beta_w)}, "
                                 f"{format_beta(self.beta_a)})")
            # largest activation segment scale seen in training (running average); factor = range / 127
            self.register_buffer("act_range", torch.zeros(()))

    def _check_int_k(self, k: int) -> None:
        if self.int_scales and k > MAX_INT_K:
            raise ValueError(f"Expected at most K={MAX_INT_K} weights per output for integer scales, got K={k}")

    def act_factor(self, scales: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The activation factor (range / 127); in training mode this batch's largest scale is folded
        into the running range first (no host sync: the GPU keeps going)."""
        if self.training and scales is not None:
            with torch.no_grad():
                top = scales.detach().amax().to(self.act_range.dtype)
                m = ACT_RANGE_MOMENTUM
                self.act_range.copy_(torch.where(self.act_range > 0, self.act_range * (1 - m) + top * m, top))
        elif not float(self.act_range) > 0:
            raise ValueError("Expected a trained activation range for integer scales (train the layer first), got 0")
        return (self.act_range.float() / LEVEL_MAX).detach()

    def _binarize_acts(self, x: torch.Tensor, dim: int) -> torch.Tensor:
        if not self.int_scales:
            return binarize(x, self.beta_a, dim)
        return binarize(x, self.beta_a, dim, factor=self.act_factor)

    def _int_weight(self, rows: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Weight rows (O, K) as float64 ``level * sign`` and their factors (O,), as the model file stores."""
        scales = segment_scales_exact(rows.detach(), self.beta_w)
        factors = weight_factors(scales)
        return int_levels_signed(rows.detach(), self.beta_w, factors), factors.reshape(-1)

    @property
    def full_precision(self) -> bool:
        return self.beta_w == 1 and self.beta_a == 1

    def _betas_repr(self) -> str:
        return f"beta_w={format_beta(self.beta_w)}, beta_a={format_beta(self.beta_a)}" + \
            (", int_scales=True" if self.int_scales else "")


class HadaConv2d(nn.Conv2d, _HadaMixin):
    """Conv2d whose weights (rows in (kh, kw, C) order) and input pixels are Hadamard-binarized."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = True, beta_w: Beta = 1, beta_a: Beta = 1,
                 int_scales: bool = False):
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        self._init_betas(beta_w, beta_a, int_scales)
        self._check_int_k(in_channels * self.kernel_size[0] * self.kernel_size[1])

    def binarized_weight(self) -> torch.Tensor:
        o, c, kh, kw = self.weight.shape
        rows = self.weight.permute(0, 2, 3, 1).reshape(o, -1)
        factor = weight_factors if self.int_scales else None
        return binarize(rows, self.beta_w, factor=factor).reshape(o, kh, kw, c).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.binarized:
            return super().forward(x)
        if self.int_scales and not self.training:
            return self._int_forward(x)
        # Binarize before F.conv2d pads: padded zeros stay exact zeros, as on the board.
        xb = self._binarize_acts(x, dim=1)
        return F.conv2d(xb, self.binarized_weight(), self.bias, self.stride, self.padding)

    def _int_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Eval mode, integer scales: the runtime's arithmetic (exact integer sums, one multiply per output)."""
        o, c, kh, kw = self.weight.shape
        fa = self.act_factor()
        xi = int_levels_signed(x.detach().movedim(1, -1), self.beta_a, fa).movedim(-1, 1)
        wi, fw = self._int_weight(self.weight.permute(0, 2, 3, 1).reshape(o, -1))
        wi = wi.reshape(o, kh, kw, c).permute(0, 3, 1, 2)
        acc = F.conv2d(xi, wi, None, self.stride, self.padding)
        out = acc.float() * (fa * fw).reshape(1, o, 1, 1)
        return out if self.bias is None else out + self.bias.reshape(1, o, 1, 1)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._betas_repr()}"


class HadaLinear(nn.Linear, _HadaMixin):
    """Linear layer whose weight rows and input feature vectors are Hadamard-binarized."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 beta_w: Beta = 1, beta_a: Beta = 1, int_scales: bool = False):
        super().__init__(in_features, out_features, bias=bias)
        self._init_betas(beta_w, beta_a, int_scales)
        self._check_int_k(in_features)

    def binarized_weight(self) -> torch.Tensor:
        return binarize(self.weight, self.beta_w, factor=weight_factors if self.int_scales else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.binarized:
            return super().forward(x)
        if self.int_scales and not self.training:
            fa = self.act_factor()
            wi, fw = self._int_weight(self.weight)
            acc = F.linear(int_levels_signed(x.detach(), self.beta_a, fa), wi)
            out = acc.float() * (fa * fw)
            return out if self.bias is None else out + self.bias
        return F.linear(self._binarize_acts(x, -1), self.binarized_weight(), self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, {self._betas_repr()}"


def set_binarized(model: nn.Module, enabled: bool) -> None:
    """Switch every Hada layer of ``model`` between binarized and float forward passes."""
    for m in model.modules():
        if isinstance(m, _HadaMixin):
            m.binarized = enabled

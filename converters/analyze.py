"""The paper's analysis figures as tools.

* Angle: the angle between a Gaussian vector x and its Hadamard binarization
  B(x) shrinks with the segment length beta. For beta = inf,
  cos = sum|x| / (sqrt(n) |x|) -> E|x| / sqrt(E x^2) = sqrt(2/pi), so the angle
  tends to arccos(sqrt(2/pi)) = 37.03 degrees as n grows; beta = 1 gives 0.
* Correlation (paper Fig. 2): Pearson correlation of each weighted layer's
  (pre-ReLU) output between the float and the binarized forward pass of the
  same trained weights on the same images.

matplotlib (the ``plot`` extra) is imported only when a plot is requested.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from cy_kernels.reference import Beta, format_beta, normalize_beta

from .errors import ConfigError

LIMIT_DEGREES = math.degrees(math.acos(math.sqrt(2 / math.pi)))  # 37.03


def binarize_np(x: np.ndarray, beta: Beta) -> np.ndarray:
    """Vectorized ``reference.binarize_rows`` (float64), for large Monte Carlo batches."""
    b = normalize_beta(beta)
    x = np.asarray(x, dtype=np.float64)
    if b == 1:
        return x.copy()
    n = x.shape[-1]
    seg = n if b is None else min(b, n)
    nseg = -(-n // seg)
    absx = np.zeros(x.shape[:-1] + (nseg * seg,))
    absx[..., :n] = np.abs(x)
    sums = absx.reshape(x.shape[:-1] + (nseg, seg)).sum(axis=-1)
    counts = np.full(nseg, float(seg))
    counts[-1] = n - (nseg - 1) * seg
    scales = np.repeat(sums / counts, seg, axis=-1)[..., :n]
    return np.where(x < 0, -scales, scales)


def angle_degrees(x: np.ndarray, beta: Beta) -> np.ndarray:
    """Angle between each row of ``x`` and its Hadamard binarization, in degrees."""
    bx = binarize_np(x, beta)
    cos = (x * bx).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(bx, axis=-1))
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))


def angle_table(dims: Sequence[int], betas: Sequence[Beta], trials: int = 200,
                seed: int = 0) -> Dict[Tuple[int, Optional[int]], float]:
    """Mean angle over ``trials`` Gaussian vectors for every (dimension, beta)."""
    if trials < 1 or not dims or any(d < 1 for d in dims):
        raise ConfigError(f"Expected trials >= 1 and dimensions >= 1, got trials={trials}, dims={list(dims)}")
    rng = np.random.default_rng(seed)
    table = {}
    for d in dims:
        x = rng.standard_normal((trials, d))
        for beta in betas:
            table[(d, normalize_beta(beta))] = float(angle_degrees(x, beta).mean())
    return table


def format_angle_table(table, dims, betas) -> str:
    betas = [normalize_beta(b) for b in betas]
    lines = ["angle (degrees) between x ~ N(0, I) and its Hadamard binarization; "
             f"limit for beta=inf: arccos(sqrt(2/pi)) = {LIMIT_DEGREES:.2f}",
             "dim    " + "".join(f"{'beta=' + format_beta(b):>10s}" for b in betas)]
    for d in dims:
        lines.append(f"{d:<7d}" + "".join(f"{table[(d, b)]:10.2f}" for b in betas))
    return "\n".join(lines) + "\n"


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(fig, out: str) -> None:
    from .checkpoint import atomic_write
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png"))


def plot_angles(table, dims, betas, out: str) -> None:
    plt = _pyplot()
    betas = [normalize_beta(b) for b in betas]
    xs = list(range(len(betas)))
    fig, ax = plt.subplots(figsize=(6, 4))
    for d in dims:
        ax.plot(xs, [table[(d, b)] for b in betas], marker="o", label=f"n = {d}")
    ax.axhline(LIMIT_DEGREES, ls="--", c="gray", label=f"arccos(sqrt(2/pi)) = {LIMIT_DEGREES:.2f}")
    ax.set_xticks(xs)
    ax.set_xticklabels([format_beta(b) for b in betas])
    ax.set_xlabel("beta (segment length)")
    ax.set_ylabel("angle (degrees)")
    ax.set_title("Gaussian vector vs its Hadamard binarization")
    ax.legend(fontsize=8)
    _save(fig, out)
    plt.close(fig)


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64).ravel()
    b = np.asarray(b, dtype=np.float64).ravel()
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


MODES = ("passes", "layer")


def layer_correlations(model_path: str, data_dir: str, images: int = 1000,
                       mode: str = "passes") -> List[Tuple[str, float]]:
    """(layer name, Pearson r) of float vs binarized pre-ReLU outputs on the first ``images`` test images.

    ``mode="passes"``: two whole forward passes (float weights and activations vs binarized), so
    errors accumulate layer to layer. ``mode="layer"``: each layer's float and binarized products
    on the *same* input (the binarized pass's), isolating that layer's approximation.
    """
    if model_path.endswith(".hbn"):
        raise ConfigError(f"Expected a training checkpoint (float weights are needed), got the packed model "
                          f"{model_path}")
    if images < 2:
        raise ConfigError(f"Expected --images >= 2, got {images}")
    if mode not in MODES:
        raise ConfigError(f"Expected a mode in {MODES}, got {mode!r}")
    import torch

    from .data import load_fashion_mnist
    from .export import load_model
    from .layers import set_binarized
    from .train import to_nchw

    model = load_model(model_path)
    if model.input_shape != (28, 28, 1):
        raise ConfigError(f"Expected a Fashion-MNIST model (28x28x1 input), got {model.arch}")
    img, _ = load_fashion_mnist(data_dir, "test")
    x = to_nchw(img[:images])
    if mode == "layer":
        return _same_input_correlations(model, x)
    runs = {}
    with torch.no_grad():
        for binarized in (False, True):
            set_binarized(model, binarized)
            taps: list = []
            model(x, taps=taps)
            runs[binarized] = taps
    set_binarized(model, True)
    return [(name, pearson(f.numpy(), b.numpy())) for (name, f), (_, b) in zip(runs[False], runs[True])]


def _same_input_correlations(model, x) -> List[Tuple[str, float]]:
    import torch

    from .layers import HadaConv2d, HadaLinear

    result = []

    def hook(module, inputs, output, name):
        module.binarized = False
        try:
            with torch.no_grad():
                float_out = module.forward(inputs[0])  # .forward: no hooks, so no recursion
        finally:
            module.binarized = True
        result.append((name, pearson(float_out.numpy(), output.numpy())))

    handles = [m.register_forward_hook(lambda mod, i, o, name=name: hook(mod, i, o, name))
               for name, m in model.layers.items() if isinstance(m, (HadaConv2d, HadaLinear))]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return result


def plot_correlations(result: List[Tuple[str, float]], out: str, title: str = "") -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = [n for n, _ in result]
    ax.bar(names, [r for _, r in result], color="tab:blue")
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("Pearson r (float vs binarized)")
    ax.set_title(f"Layer activation correlation {title}".strip())
    for i, (_, r) in enumerate(result):
        ax.text(i, min(r, 1.0) + 0.01, f"{r:.3f}", ha="center", fontsize=8)
    _save(fig, out)
    plt.close(fig)

"""The paper's networks: LeNet and the AlexNet-inspired CIFAR net.

Inner layers run BN -> Binarize -> Conv/Dense -> ReLU (-> MaxPool); the first
and last layers stay full precision (betas 1). The feature map is flattened
in (H, W, C) order so dense weights match the runtime's NHWC layout. Every
inner layer takes the model's (beta_w, beta_a) unless ``layer_betas`` names it.

A plan step is one of ``("conv", name, out_ch, kernel, padding)``,
``("pool", kernel)``, ``("flatten",)`` or ``("fc", name, out_features)``.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from cy_kernels.reference import Beta, check_betas

from .betas import parse_beta, parse_layer_betas  # noqa: F401  (re-exported)
from .errors import ConfigError
from .layers import HadaConv2d, HadaLinear

ARCHS: Dict[str, dict] = {
    "lenet": {
        "input": (28, 28, 1),
        "plan": [("conv", "conv1", 20, 5, 0), ("pool", 2), ("conv", "conv2", 50, 5, 0), ("pool", 2),
                 ("flatten",), ("fc", "fc1", 500), ("fc", "fc2", 10)],
    },
    "alexnet": {
        "input": (32, 32, 3),
        "plan": [("conv", "conv1", 128, 3, 1), ("conv", "conv2", 128, 3, 1), ("pool", 2),
                 ("conv", "conv3", 256, 3, 1), ("conv", "conv4", 256, 3, 1), ("pool", 2),
                 ("conv", "conv5", 512, 3, 1), ("conv", "conv6", 512, 3, 1), ("pool", 2),
                 ("flatten",), ("fc", "fc1", 1024), ("fc", "fc2", 1024), ("fc", "fc3", 10)],
    },
}

LayerBetas = Mapping[str, Tuple[Beta, Beta]]


def arch_names() -> List[str]:
    return sorted(ARCHS)


def get_arch(arch: str) -> dict:
    if arch not in ARCHS:
        raise ConfigError(f"Expected an architecture in {arch_names()}, got {arch!r}")
    return ARCHS[arch]


def layer_names(arch: str) -> List[str]:
    """Names of the weighted layers, first to last."""
    return [step[1] for step in get_arch(arch)["plan"] if step[0] in ("conv", "fc")]


def inner_layer_names(arch: str) -> List[str]:
    """The layers that are binarized (all but the first and the last)."""
    return layer_names(arch)[1:-1]


def resolve_betas(arch: str, beta_w: Beta, beta_a: Beta,
                  layer_betas: Optional[LayerBetas] = None) -> Dict[str, Tuple[Optional[int], Optional[int]]]:
    """Per-layer (beta_w, beta_a) with the first/last layers full precision; validates every pair."""
    names = layer_names(arch)
    inner = names[1:-1]
    layer_betas = dict(layer_betas or {})
    unknown = sorted(set(layer_betas) - set(inner))
    if unknown:
        raise ConfigError(f"Expected per-layer betas for inner layers of {arch} {inner}, got {unknown}")
    out = {}
    for name in names:
        pair = (1, 1) if name not in inner else layer_betas.get(name, (beta_w, beta_a))
        try:
            out[name] = check_betas(*pair)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name}: {exc}") from None
    return out


class ZooNet(nn.Module):
    """A zoo architecture built from its plan; ``forward`` takes NCHW float input, returns logits."""

    def __init__(self, arch: str, beta_w: Beta = 1, beta_a: Beta = 1,
                 layer_betas: Optional[LayerBetas] = None, int_scales: bool = False):
        super().__init__()
        spec = get_arch(arch)
        self.arch = arch
        self.int_scales = bool(int_scales)
        self.input_shape = tuple(spec["input"])
        self.betas = resolve_betas(arch, beta_w, beta_a, layer_betas)
        self.plan: List[tuple] = list(spec["plan"])
        names = layer_names(arch)
        self.first, self.last = names[0], names[-1]
        self.layers = nn.ModuleDict()
        h, w, c = self.input_shape
        features = None
        for step in self.plan:
            kind = step[0]
            if kind == "conv":
                _, name, out_ch, k, pad = step
                if name != self.first:
                    self.layers[name + "_bn"] = nn.BatchNorm2d(c)
                bw, ba = self.betas[name]
                self.layers[name] = HadaConv2d(c, out_ch, k, padding=pad, beta_w=bw, beta_a=ba,
                                               int_scales=self._int_layer(bw, ba))
                h, w, c = h + 2 * pad - k + 1, w + 2 * pad - k + 1, out_ch
            elif kind == "pool":
                h, w = h // step[1], w // step[1]
            elif kind == "flatten":
                features = h * w * c
            elif kind == "fc":
                _, name, out_f = step
                if features is None:
                    raise ConfigError(f"Expected a flatten step before {name}")
                if name != self.first:
                    self.layers[name + "_bn"] = nn.BatchNorm1d(features)
                bw, ba = self.betas[name]
                self.layers[name] = HadaLinear(features, out_f, beta_w=bw, beta_a=ba,
                                               int_scales=self._int_layer(bw, ba))
                features = out_f
        self.num_classes = features

    def _int_layer(self, beta_w, beta_a) -> bool:
        """Integer scales apply to the layers binarized on both sides (the first/last stay float)."""
        return self.int_scales and beta_w != 1 and beta_a != 1

    def forward(self, x: torch.Tensor, taps: Optional[list] = None) -> torch.Tensor:
        """Logits; when ``taps`` is a list, appends (layer name, pre-ReLU output) for each weighted layer."""
        for step in self.plan:
            kind = step[0]
            if kind in ("conv", "fc"):
                name = step[1]
                if name + "_bn" in self.layers:
                    x = self.layers[name + "_bn"](x)
                x = self.layers[name](x)
                if taps is not None:
                    taps.append((name, x))
                if name != self.last:
                    x = F.relu(x)
            elif kind == "pool":
                x = F.max_pool2d(x, step[1])
            elif kind == "flatten":
                x = x.permute(0, 2, 3, 1).flatten(1)  # (H, W, C) order, as the NHWC runtime flattens
        return x


def build_model(arch: str, beta_w: Beta = 1, beta_a: Beta = 1,
                layer_betas: Optional[LayerBetas] = None, int_scales: bool = False) -> ZooNet:
    """``int_scales``: every layer binarized on both sides trains and exports integer scales."""
    return ZooNet(arch, beta_w, beta_a, layer_betas, int_scales)


def expected_shapes(model: nn.Module) -> Dict[str, Tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def load_state_dict_checked(model: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """load_state_dict with one clear error for another arch's keys or a wrong-shape tensor."""
    want = expected_shapes(model)
    missing = sorted(set(want) - set(state))
    unexpected = sorted(set(state) - set(want))
    arch = getattr(model, "arch", type(model).__name__)
    if missing or unexpected:
        raise ConfigError(f"Expected a state dict of the {arch} architecture in {source}, got "
                          f"{len(missing)} missing keys {missing[:3]} and {len(unexpected)} unexpected keys "
                          f"{unexpected[:3]} (a checkpoint of another architecture?)")
    for key, shape in want.items():
        got = tuple(state[key].shape)
        if got != shape:
            raise ConfigError(f"Expected {key} of shape {shape} for {arch} in {source}, got {got}")
    model.load_state_dict(dict(state), strict=True)

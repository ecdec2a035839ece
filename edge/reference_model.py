"""Ground-truth forward pass of a layer graph, and random test networks.

``reference_forward`` runs a graph + float tensors with ``cy_kernels.reference``
only (float64 NumPy, no fusion), so the interpreter can be checked against it.
``random_lenet`` builds the paper's LeNet layout with random weights: used by
tests and benchmarks before (or without) a trained model.
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

import numpy as np

from cy_kernels import reference as ref

FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def reference_forward(graph: dict, tensors: Dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """Run ``graph`` on an NHWC float batch with the NumPy reference math; returns the last layer."""
    x = np.asarray(x, dtype=np.float32)
    for layer in graph["layers"]:
        kind = layer["type"]
        if kind in ("conv2d", "dense"):
            w = np.asarray(tensors[layer["weight"]], dtype=np.float32)
            bw, ba = layer["beta_w"], layer["beta_a"]
            if kind == "conv2d":
                y = ref.hbnn_conv2d(x, w, bw, ba, layer.get("stride", 1), layer.get("padding", 0))
            else:
                y = ref.hbnn_linear(x, w, bw, ba)
            bias = tensors[layer["bias"]] if layer.get("bias") else None
            x = ref.epilogue(y, None, bias, layer.get("relu", False))
        elif kind == "affine":
            x = (x * tensors[layer["scale"]] + tensors[layer["bias"]]).astype(np.float32)
        elif kind == "maxpool":
            x = ref.max_pool2d(x, layer["kernel"], layer.get("stride"))
        elif kind == "avgpool":
            x = ref.avg_pool2d(x, layer["kernel"], layer.get("stride"))
        elif kind == "relu":
            x = ref.relu(x)
        elif kind == "flatten":
            x = x.reshape(x.shape[0], -1)
        elif kind == "softmax":
            e = np.exp(x - x.max(axis=-1, keepdims=True))
            x = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
        else:
            raise ValueError(f"Expected a known layer type, got {kind!r}")
    return x


def _affine(rng, n: int) -> Tuple[np.ndarray, np.ndarray]:
    scale = rng.uniform(0.5, 2.0, n).astype(np.float32)
    bias = rng.normal(0, 0.3, n).astype(np.float32)
    return scale, bias


def random_lenet(beta_w: Optional[int] = 16, beta_a: Optional[int] = 2, seed: int = 0,
                 bn_after_flatten: bool = True, softmax: bool = True):
    """The paper's LeNet (20C5-MP2-50C5-MP2-500FC-10FC) with random weights -> (graph, tensors).

    Inner layers are BN (affine) -> binarize -> conv/dense -> ReLU; first and last full precision.
    ``bn_after_flatten`` puts the dense layer's BN after the flatten (800 features, as a BatchNorm1d)
    instead of before it (50 channels, tiled over the flatten by the runtime).
    """
    rng = np.random.default_rng(seed)
    t = {
        "conv1.weight": rng.normal(0, 0.2, (20, 5, 5, 1)), "conv1.bias": rng.normal(0, 0.1, 20),
        "conv2.weight": rng.normal(0, 0.05, (50, 5, 5, 20)), "conv2.bias": rng.normal(0, 0.1, 50),
        "fc3.weight": rng.normal(0, 0.03, (500, 800)), "fc3.bias": rng.normal(0, 0.1, 500),
        "fc4.weight": rng.normal(0, 0.05, (10, 500)), "fc4.bias": rng.normal(0, 0.1, 10),
    }
    t = {k: np.asarray(v, dtype=np.float32) for k, v in t.items()}
    t["bn2.scale"], t["bn2.bias"] = _affine(rng, 20)
    n3 = 800 if bn_after_flatten else 50
    t["bn3.scale"], t["bn3.bias"] = _affine(rng, n3)
    bn3 = {"type": "affine", "name": "bn3", "scale": "bn3.scale", "bias": "bn3.bias"}
    layers = [
        {"type": "conv2d", "name": "conv1", "weight": "conv1.weight", "bias": "conv1.bias", "stride": 1,
         "padding": 0, "beta_w": 1, "beta_a": 1, "relu": True},
        {"type": "maxpool", "kernel": 2, "stride": 2},
        {"type": "affine", "name": "bn2", "scale": "bn2.scale", "bias": "bn2.bias"},
        {"type": "conv2d", "name": "conv2", "weight": "conv2.weight", "bias": "conv2.bias", "stride": 1,
         "padding": 0, "beta_w": beta_w, "beta_a": beta_a, "relu": False},
        {"type": "relu"},
        {"type": "maxpool", "kernel": 2, "stride": 2},
    ]
    layers += [{"type": "flatten"}, bn3] if bn_after_flatten else [bn3, {"type": "flatten"}]
    layers += [
        {"type": "dense", "name": "fc3", "weight": "fc3.weight", "bias": "fc3.bias",
         "beta_w": beta_w, "beta_a": beta_a, "relu": True},
        {"type": "dense", "name": "fc4", "weight": "fc4.weight", "bias": "fc4.bias",
         "beta_w": 1, "beta_a": 1, "relu": False},
    ]
    if softmax:
        layers.append({"type": "softmax"})
    graph = {"arch": "lenet", "labels": list(FASHION_LABELS), "layers": layers,
             "input": {"shape": [28, 28, 1], "layout": "NHWC", "pixel_scale": 1 / 255,
                       "mean": [0.2860], "std": [0.3530]}}
    return graph, t

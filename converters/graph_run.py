"""Run an exported layer graph with the board's kernels (or the NumPy reference), no PyTorch.

This is the exporter's own check that a graph computes what PyTorch computed;
the deployed runtime (``edge``) runs the same graph from the packed file.
``backend="kernels"`` uses ``cy_kernels.hbnn_conv2d``/``hbnn_linear`` with the
folded BatchNorm fused as ``in_scale``/``in_bias``; ``backend="reference"``
uses ``cy_kernels.reference`` step by step.
"""
from __future__ import annotations

from typing import Dict, Iterator, Optional, Tuple

import numpy as np

from .errors import ConfigError

BACKENDS = ("kernels", "reference")


def preprocess(graph: dict, images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) or (N, H, W, C) frames -> normalized float32 NHWC per the graph's input spec."""
    spec = graph["input"]
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    scale = np.float32(spec["pixel_scale"])
    mean = np.asarray(spec["mean"], dtype=np.float32)
    std = np.asarray(spec["std"], dtype=np.float32)
    return np.ascontiguousarray((x.astype(np.float32) * scale - mean) / std, dtype=np.float32)


class GraphRunner:
    """Executes ``graph`` on float32 NHWC batches; weights are packed once at construction."""

    def __init__(self, graph: dict, tensors: Dict[str, np.ndarray], backend: str = "kernels", threads: int = 1):
        if backend not in BACKENDS:
            raise ConfigError(f"Expected a backend in {BACKENDS}, got {backend!r}")
        self.graph, self.tensors, self.backend, self.threads = graph, tensors, backend, threads
        self._packed = {}
        if backend == "kernels":
            import cy_kernels
            for layer in graph["layers"]:
                if layer["type"] in ("conv2d", "dense"):
                    self._packed[layer["name"]] = cy_kernels.pack_weights(tensors[layer["weight"]], layer["beta_w"])

    def _t(self, name: Optional[str]) -> Optional[np.ndarray]:
        return None if name is None else np.ascontiguousarray(self.tensors[name], dtype=np.float32)

    def run(self, x: np.ndarray, taps: Optional[list] = None) -> np.ndarray:
        """Output of the last layer; ``taps`` collects (name, pre-ReLU output) of weighted layers."""
        from cy_kernels import reference as ref

        pending: Optional[Tuple[np.ndarray, np.ndarray]] = None
        for layer in self.graph["layers"]:
            kind = layer["type"]
            if kind == "affine":
                pending = (self._t(layer["scale"]), self._t(layer["bias"]))
            elif kind in ("conv2d", "dense"):
                x = self._weighted(layer, x, pending, taps)
                pending = None
            elif kind == "maxpool":
                x = ref.max_pool2d(x, layer["kernel"], layer["stride"])
            elif kind == "avgpool":
                x = ref.avg_pool2d(x, layer["kernel"], layer["stride"])
            elif kind == "relu":
                x = ref.relu(x)
            elif kind == "flatten":
                x = np.ascontiguousarray(x.reshape(x.shape[0], -1))
            elif kind == "softmax":
                z = x - x.max(axis=-1, keepdims=True)
                e = np.exp(z)
                x = (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
            else:
                raise ConfigError(f"Expected a known layer type, got {kind!r}")
        return x

    def _weighted(self, layer, x, pending, taps):
        from cy_kernels import reference as ref

        bw, ba, relu = layer["beta_w"], layer["beta_a"], bool(layer["relu"])
        bias = self._t(layer["bias"])
        conv = layer["type"] == "conv2d"
        if self.backend == "kernels":
            import cy_kernels
            ins, inb = pending if pending is not None else (None, None)
            if conv:
                y = cy_kernels.hbnn_conv2d(x, self._packed[layer["name"]], bw, ba, layer["stride"],
                                           layer["padding"], self.threads, in_scale=ins, in_bias=inb,
                                           out_bias=bias)
            else:
                y = cy_kernels.hbnn_linear(x, self._packed[layer["name"]], bw, ba, self.threads,
                                           in_scale=ins, in_bias=inb, out_bias=bias)
        else:
            if pending is not None:
                x = (x * pending[0] + pending[1]).astype(np.float32)
            w = self._t(layer["weight"])
            if conv:
                y = ref.hbnn_conv2d(x, w, bw, ba, layer["stride"], layer["padding"])
            else:
                y = ref.hbnn_linear(x, w, bw, ba)
            y = ref.epilogue(y, None, bias, False)
        if taps is not None:
            taps.append((layer["name"], y))
        return ref.relu(y) if relu else y


def batches(x: np.ndarray, size: int) -> Iterator[np.ndarray]:
    for i in range(0, x.shape[0], size):
        yield np.ascontiguousarray(x[i:i + size])


def predict(graph: dict, tensors: Dict[str, np.ndarray], images: np.ndarray, backend: str = "kernels",
            batch_size: int = 500) -> np.ndarray:
    """Top-1 class indices for uint8 images, run through the graph."""
    runner = GraphRunner(graph, tensors, backend)
    x = preprocess(graph, images)
    return np.concatenate([runner.run(b).argmax(axis=1) for b in batches(x, batch_size)])


def runtime_predict(hbn_path: str, images: np.ndarray, threads: int = 1) -> np.ndarray:
    """Top-1 classes of uint8 images through the on-board runtime (``edge.Interpreter`` on cy_kernels)."""
    from edge.interpreter import Interpreter

    interp = Interpreter(hbn_path, num_threads=threads)
    return np.concatenate([interp.predict(np.ascontiguousarray(b)).argmax(axis=1)
                           for b in batches(images, 1000)])

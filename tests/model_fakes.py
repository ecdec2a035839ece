"""Random test networks, and the ground truth to check the runtime against.

``random_lenet`` builds the paper's LeNet layout with random weights (graph + float tensors for
``edge.format.write_hbn``). ``reference_forward`` runs a model file on the NumPy reference kernels.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def reference_forward(path, x: np.ndarray) -> np.ndarray:
    """The model file at ``path`` run on the NumPy reference kernels (``Interpreter(reference=True)``,
    the graph layer by layer, nothing folded) on an NHWC float batch; the last layer's output."""
    from edge.interpreter import Interpreter

    it = Interpreter(path, reference=True)
    x = np.ascontiguousarray(x, dtype=np.float32)
    it.resize_tensor_input(0, list(x.shape))
    it.set_tensor(0, x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


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


def rewritten_hbn(tmp_path, graph, tensors, edit_graph=None, edit_arrays=None, edit_meta=None,
                  version="1.0"):
    """A checksummed .hbn whose content was edited after validation (what a buggy writer makes):
    written and read back, the graph, arrays and container metadata edited, written unverified."""
    import json

    from edge.format import FORMAT_NAME, _write_container, read_hbn, write_hbn

    good = tmp_path / "good.hbn"
    write_hbn(good, graph, tensors)
    m = read_hbn(good)
    g = json.loads(json.dumps(m.graph))
    arrays = {k: np.array(v) for k, v in m.tensors.items()}
    if edit_graph:
        edit_graph(g)
    if edit_arrays:
        edit_arrays(arrays)
    meta = {"format": FORMAT_NAME, "format_version": version, "graph": json.dumps(g), "metadata": "{}"}
    if edit_meta:
        edit_meta(meta)
    path = tmp_path / "bad.hbn"
    _write_container(path, arrays, meta, verify=False)
    return path

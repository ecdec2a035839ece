"""PyTorch zoo model -> the layer graph of docs (graph.md) -> packed ``.hbn`` file.

BatchNorm layers become eval-mode ``affine`` layers (scale = gamma/sqrt(var+eps),
bias = beta - mean*scale) right before the binarized layer that consumes them
(a full-precision dense layer absorbs its BN into its weights and bias instead);
conv weights are permuted to (O, kh, kw, C); dense weights already see (H, W, C)
order because the zoo flattens NHWC. Tensors stay float32: ``edge.format``
packs them into sign bits + scales.
"""
from __future__ import annotations

import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from . import checkpoint as ckpt
from .data import CLASS_NAMES, MEAN, STD
from .errors import CheckpointError, ConfigError

_UNSET = object()

INPUT_SPECS = {
    "lenet": {"mean": [MEAN], "std": [STD], "labels": CLASS_NAMES},
    # CIFAR-10 statistics for the AlexNet-inspired net (no CIFAR data ships with the project).
    "alexnet": {"mean": [0.4914, 0.4822, 0.4465], "std": [0.2470, 0.2435, 0.2616],
                "labels": ["airplane", "automobile", "bird", "cat", "deer",
                           "dog", "frog", "horse", "ship", "truck"]},
}


def _np(t) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy().astype(np.float32))


def _fold_bn(bn) -> Tuple[np.ndarray, np.ndarray]:
    var = bn.running_var.detach().cpu().double()
    mean = bn.running_mean.detach().cpu().double()
    gamma = bn.weight.detach().cpu().double() if bn.weight is not None else 1.0
    beta = bn.bias.detach().cpu().double() if bn.bias is not None else 0.0
    scale = gamma / (var + bn.eps).sqrt()
    bias = beta - mean * scale
    return scale.float().numpy().copy(), bias.float().numpy().copy()


def model_to_graph(model) -> Tuple[dict, Dict[str, np.ndarray]]:
    """(graph, float32 tensors) for a ``zoo.ZooNet`` (eval-mode BatchNorm statistics are used)."""
    from torch import nn

    spec = INPUT_SPECS[model.arch]
    h, w, c = model.input_shape
    graph = {"arch": model.arch,
             "input": {"shape": [h, w, c], "layout": "NHWC", "pixel_scale": 1 / 255,
                       "mean": list(spec["mean"]), "std": list(spec["std"])},
             "labels": list(spec["labels"]),
             "layers": []}
    layers, tensors = graph["layers"], {}

    def add_affine(name):
        if name + "_bn" not in model.layers:
            return
        scale, bias = _fold_bn(model.layers[name + "_bn"])
        if fold_into_dense(name):
            return
        tensors[name + "_bn.scale"], tensors[name + "_bn.bias"] = scale, bias
        layers.append({"type": "affine", "name": name + "_bn", "scale": name + "_bn.scale",
                       "bias": name + "_bn.bias"})

    def fold_into_dense(name):
        # A full-precision dense layer absorbs the BN exactly: W' = W*s, b' = c + W@b.
        m = model.layers[name]
        return isinstance(m, nn.Linear) and m.beta_w == 1 and m.beta_a == 1

    def add_params(name, weight):
        m = model.layers[name]
        int_scales = bool(getattr(m, "int_scales", False))
        bias = _np(m.bias) if m.bias is not None else None
        if name + "_bn" in model.layers and fold_into_dense(name):
            scale, shift = _fold_bn(model.layers[name + "_bn"])
            w64 = weight.astype(np.float64)
            bias = ((0 if bias is None else bias.astype(np.float64)) + w64 @ shift.astype(np.float64))
            weight = np.ascontiguousarray((w64 * scale.astype(np.float64)[None, :]).astype(np.float32))
            bias = bias.astype(np.float32)
        tensors[name + ".weight"] = weight
        if bias is not None:
            tensors[name + ".bias"] = bias
        layer = {"name": name, "weight": name + ".weight",
                 "bias": name + ".bias" if bias is not None else None,
                 "beta_w": m.beta_w, "beta_a": m.beta_a, "relu": name != model.last}
        if int_scales:
            # the weights' levels and factors are derived by the writer (reference_int.pack_rows_int,
            # as the layer's eval forward does); the activation factor is the trained running range / 127
            try:
                factor = _np(m.act_factor().reshape(1))
            except ValueError as exc:
                raise CheckpointError(f"{name}: {exc}") from None
            tensors[name + ".weight.act_factor"] = factor
            layer["int_scales"] = True
        return layer

    for step in model.plan:
        kind = step[0]
        if kind == "conv":
            name = step[1]
            m = model.layers[name]
            add_affine(name)
            layer = {"type": "conv2d"}
            layer.update(add_params(name, _np(m.weight.permute(0, 2, 3, 1))))
            layer.update(stride=int(m.stride[0]), padding=int(m.padding[0]))
            layers.append(layer)
        elif kind == "pool":
            layers.append({"type": "maxpool", "kernel": int(step[1]), "stride": int(step[1])})
        elif kind == "flatten":
            layers.append({"type": "flatten"})
        elif kind == "fc":
            name = step[1]
            add_affine(name)
            layer = {"type": "dense"}
            layer.update(add_params(name, _np(model.layers[name].weight)))
            layers.append(layer)
    layers.append({"type": "softmax"})
    return graph, tensors


def _betas_from_config(config: dict, arch: str) -> Dict[str, Tuple]:
    from .zoo import layer_names

    betas = config.get("betas")
    names = layer_names(arch)
    if not isinstance(betas, dict) or sorted(betas) != sorted(names) or \
            not all(isinstance(v, list) and len(v) == 2 for v in betas.values()):
        raise CheckpointError(f"Expected per-layer betas for {names} in the checkpoint config, got {betas!r}")
    return {k: tuple(v) for k, v in betas.items()}


def load_model(path: str, arch: Optional[str] = None, beta_w=_UNSET, beta_a=_UNSET,
               layer_betas: Sequence[str] = ()):
    """A ZooNet (eval mode) from a training checkpoint or a plain float state dict.

    Checkpoint: arch and betas come from its config; ``beta_w``/``beta_a`` override the inner
    layers (post-training re-binarization). Plain state dict: ``arch``, ``beta_w`` and ``beta_a``
    are required (post-training Hadamard binarization of a float model).
    """
    from .betas import parse_layer_betas
    from .zoo import build_model, inner_layer_names, load_state_dict_checked

    is_ckpt = os.path.isdir(path) or (os.path.basename(path) == ckpt.MODEL and
                                      os.path.exists(os.path.join(os.path.dirname(os.path.abspath(path)),
                                                                  ckpt.CONFIG)))
    overrides = parse_layer_betas(layer_betas)
    if is_ckpt:
        config, state = ckpt.load_checkpoint(path)
        if arch is not None and arch != config["arch"]:
            raise ConfigError(f"Expected --arch {config['arch']} (the checkpoint's), got {arch}")
        arch = config["arch"]
        per_layer = _betas_from_config(config, arch)
        inner = inner_layer_names(arch)
        for name in inner:
            bw, ba = per_layer[name]
            per_layer[name] = (bw if beta_w is _UNSET else beta_w, ba if beta_a is _UNSET else beta_a)
        per_layer = {k: v for k, v in per_layer.items() if k in inner}
        per_layer.update(overrides)
        model = build_model(arch, 1, 1, per_layer, int_scales=bool(config.get("int_scales", False)))
        model.train_config = config
    else:
        if not os.path.exists(path):
            raise CheckpointError(f"Expected a checkpoint directory or a state dict file, got no such path {path}")
        if arch is None or beta_w is _UNSET or beta_a is _UNSET:
            raise ConfigError(f"Expected --arch, --beta-w and --beta-a for the plain float model {path}, got "
                              f"arch={arch}, beta_w={'unset' if beta_w is _UNSET else beta_w}, "
                              f"beta_a={'unset' if beta_a is _UNSET else beta_a}")
        state = ckpt.load_plain_state_dict(path)
        model = build_model(arch, beta_w, beta_a, overrides)
    # an integer-scale checkpoint re-binarized with a beta of 1 (e.g. --beta-a 1): that layer is no
    # longer an integer layer and has no activation range to load
    expected = model.state_dict()
    state = {k: v for k, v in state.items() if not k.endswith(".act_range") or k in expected}
    load_state_dict_checked(model, state, path)
    return model.eval()


def float32_bytes(graph: dict, tensors: Dict[str, np.ndarray]) -> int:
    """Bytes of the conv/dense weights and biases as plain float32: the float model the ratio compares to."""
    total = 0
    for layer in graph["layers"]:
        if layer.get("type") in ("conv2d", "dense"):
            for key in ("weight", "bias"):
                if layer.get(key):
                    total += int(np.asarray(tensors[layer[key]]).size) * 4
    return total


def write_model(out: str, graph: dict, tensors: Dict[str, np.ndarray], metadata: Optional[dict] = None) -> None:
    """Hand the graph to edge.format (packs, writes to a temp file, validates, renames)."""
    try:
        from edge.errors import ModelFormatError
        from edge.format import write_hbn
    except ImportError as exc:
        raise ConfigError(f"Expected edge.format.write_hbn (the .hbn writer), got ImportError: {exc}") from None
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ConfigError(f"Expected an existing directory for {out}, got no such directory {out_dir}")
    try:
        write_hbn(out, graph, tensors, metadata=metadata or {})
    except ModelFormatError as exc:
        raise ConfigError(f"{out}: {exc}") from None


def convert(path: str, out: str, arch: Optional[str] = None, beta_w=_UNSET, beta_a=_UNSET,
            layer_betas: Sequence[str] = (), extra_metadata: Optional[dict] = None) -> dict:
    """Write ``out`` (.hbn) from a checkpoint, a plain float zoo model, or a .tflite file.

    ``extra_metadata``: JSON-serializable keys added to the file's metadata (e.g. an evaluation)."""
    if path.lower().endswith(".tflite"):
        from .tflite_import import graph_from_tflite

        kwargs = {k: v for k, v in (("beta_w", beta_w), ("beta_a", beta_a)) if v is not _UNSET}
        graph, tensors = graph_from_tflite(path, **kwargs)
        metadata = {"source": os.path.basename(os.path.normpath(path))}
    else:
        model = load_model(path, arch, beta_w, beta_a, layer_betas)
        graph, tensors = model_to_graph(model)
        metadata = {"source": os.path.basename(os.path.normpath(path)), "arch": model.arch,
                    "betas": {k: list(v) for k, v in model.betas.items()}}
        train_info = getattr(model, "train_config", None)
        if train_info:
            keys = ("seed", "epoch", "batch_size", "lr", "augment", "test_acc",  # test_acc: older checkpoints
                    "val_size", "best_epoch", "best_val_acc", "warmup_epochs", "kd", "int_scales")
            metadata["training"] = {k: train_info.get(k) for k in keys if k in train_info}
    metadata.update(extra_metadata or {})
    write_model(out, graph, tensors, metadata)
    size = os.path.getsize(out)
    baseline = float32_bytes(graph, tensors)
    return {"layers": len(graph["layers"]), "bytes": size, "float32_bytes": baseline,
            "ratio": baseline / size if size else None}

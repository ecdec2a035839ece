"""The layer graph of a .hbn model: schema checks, defaults and shape inference.

Shared by the writer (before anything is written), the reader (on every load)
and the interpreter (which plans its buffers from :func:`infer_shapes`). The
graph contract is the one of ``docs/FORMAT.md``: NHWC activations, conv weights
(O, kh, kw, C), dense weights (N, K) with K in (H, W, C) flatten order.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Tuple

from cy_kernels import reference as ref
from cy_kernels.reference_int import MAX_INT_K

from .errors import ModelFormatError

LAYER_TYPES = ("conv2d", "dense", "affine", "maxpool", "avgpool", "relu", "flatten", "softmax")
LAYOUTS = ("NHWC",)
# A sanity bound on one sample's activations (float32 elements, 256 MiB): a
# crafted graph must not make the runtime allocate gigabytes.
MAX_ACTIVATION_ELEMENTS = 1 << 26
MAX_TOTAL_ACTIVATIONS = 1 << 28  # all layers' buffers together (1 GiB per sample)
MAX_LAYERS = 4096
# Geometry ints (input dims, weight_shape entries, kernel, stride, padding) never need to exceed the
# activation cap. Bounding each keeps every product of them small (found by fuzzing: a padding of
# 10**4000 made str() of an 8000-digit activation count raise ValueError, not ModelFormatError).
MAX_DIM = MAX_ACTIVATION_ELEMENTS
# The input spec keeps one mean and one std per channel, and a graph without labels gets one
# generated label per output: both grow with numbers the graph declares, not with the bytes of
# the file, so they are bounded (found by fuzzing: an input of 2**26 channels made a 2 KB file
# allocate 512 MiB of default means; 2**40 channels raised MemoryError). Camera frames have 1-4
# channels; class ids are uint16 on both wire formats (firmware_bridge), so 65536 classes at most.
MAX_INPUT_CHANNELS = 4096
MAX_CLASSES = 1 << 16

Shape = Tuple[int, ...]


def _fail(msg: str) -> None:
    raise ModelFormatError(msg)


def _int(value, what: str, minimum: int, maximum: int = MAX_DIM) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        _fail(f"Expected {what} to be an int in {minimum}..{maximum}, got {value!r}")
    return value


def _text(value: str, what: str) -> str:
    """Names and labels are printed and hashed as UTF-8: refuse a lone surrogate escape ("\\ud800")."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        _fail(f"Expected {what} to be valid Unicode text, got a lone surrogate escape in {value[:80]!r}")
    return value


def _number(value, what: str, positive: bool = False) -> float:
    try:
        finite = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    except OverflowError:  # an int too large for a float
        finite = False
    if not finite or (positive and value <= 0):
        kind = "a finite number > 0" if positive else "a finite number"
        _fail(f"Expected {what} to be {kind}, got {value!r}")
    return float(value)


def _name(value, what: str, optional: bool = False) -> Optional[str]:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        _fail(f"Expected {what} to be a non-empty string{' or null' if optional else ''}, got {value!r}")
    return _text(value, what)


def _beta(value, what: str) -> Optional[int]:
    if value is None:
        return None
    return _int(value, what, 1)


def _normalize_input(spec) -> dict:
    if not isinstance(spec, dict):
        _fail(f"Expected graph['input'] to be an object, got {type(spec).__name__}")
    shape = spec.get("shape")
    if not isinstance(shape, (list, tuple)) or len(shape) != 3:
        _fail(f"Expected input shape [H, W, C], got {shape!r}")
    shape = [_int(s, "each input dimension", 1) for s in shape]
    layout = spec.get("layout", "NHWC")
    if layout not in LAYOUTS:
        _fail(f"Expected input layout in {LAYOUTS}, got {layout!r}")
    c = shape[2]
    if c > MAX_INPUT_CHANNELS:
        _fail(f"Expected at most {MAX_INPUT_CHANNELS} input channels, got {c}")
    out = {"shape": shape, "layout": layout,
           "pixel_scale": _number(spec.get("pixel_scale", 1.0 / 255.0), "input pixel_scale", True)}
    for key, default, positive in (("mean", 0.0, False), ("std", 1.0, True)):
        vals = spec[key] if key in spec else [default]
        if isinstance(vals, (int, float)) and not isinstance(vals, bool):
            vals = [vals]
        if not isinstance(vals, (list, tuple)) or len(vals) not in (1, c):
            _fail(f"Expected input {key} as a list of 1 or {c} numbers, got {vals!r}")
        vals = [_number(v, f"input {key}", positive) for v in vals]
        out[key] = vals * c if len(vals) == 1 else vals
    return out


def _normalize_layer(i: int, layer) -> dict:
    if not isinstance(layer, dict):
        _fail(f"Expected layer {i} to be an object, got {type(layer).__name__}")
    kind = layer.get("type")
    if kind not in LAYER_TYPES:
        _fail(f"Expected layer {i} type in {LAYER_TYPES}, got {kind!r}")
    out = {"type": kind, "name": _name(layer.get("name", f"{kind}{i}"), f"layer {i} name")}
    where = f"layer {i} ({out['name']})"
    if kind in ("conv2d", "dense"):
        out["weight"] = _name(layer.get("weight"), f"{where} weight")
        out["bias"] = _name(layer.get("bias"), f"{where} bias", optional=True)
        for key in ("beta_w", "beta_a"):
            if key not in layer:
                _fail(f"Expected {where} to have {key} (an int >= 1, or null for infinity)")
        out["beta_w"] = _beta(layer["beta_w"], f"{where} beta_w")
        out["beta_a"] = _beta(layer["beta_a"], f"{where} beta_a")
        try:
            ref.check_betas(out["beta_w"], out["beta_a"])
        except ValueError as exc:
            _fail(f"{where}: {exc}")
        if kind == "conv2d":
            out["stride"] = _int(layer.get("stride", 1), f"{where} stride", 1)
            out["padding"] = _int(layer.get("padding", 0), f"{where} padding", 0)
        relu = layer.get("relu", False)
        if not isinstance(relu, bool):
            _fail(f"Expected {where} relu to be true or false, got {relu!r}")
        out["relu"] = relu
        int_scales = layer.get("int_scales", False)
        if not isinstance(int_scales, bool):
            _fail(f"Expected {where} int_scales to be true or false, got {int_scales!r}")
        if int_scales:  # only written when set: float-scale graphs stay byte-identical to format 1.0
            if out["beta_w"] == 1 or out["beta_a"] == 1:
                _fail(f"Expected {where} with integer scales to have beta_w and beta_a > 1, got "
                      f"({ref.format_beta(out['beta_w'])}, {ref.format_beta(out['beta_a'])})")
            out["int_scales"] = True
        ws = layer.get("weight_shape")
        if ws is not None:
            rank = 4 if kind == "conv2d" else 2
            if not isinstance(ws, (list, tuple)) or len(ws) != rank:
                _fail(f"Expected {where} weight_shape of rank {rank}, got {ws!r}")
            out["weight_shape"] = [_int(s, f"{where} weight_shape entry", 1) for s in ws]
    elif kind == "affine":
        out["scale"] = _name(layer.get("scale"), f"{where} scale")
        out["bias"] = _name(layer.get("bias"), f"{where} bias")
    elif kind in ("maxpool", "avgpool"):
        out["kernel"] = _int(layer.get("kernel"), f"{where} kernel", 1)
        stride = layer.get("stride")
        out["stride"] = out["kernel"] if stride is None else _int(stride, f"{where} stride", 1)
    return out


def normalize_graph(graph) -> dict:
    """Check the graph's structure and fill defaults; returns a new JSON-ready dict."""
    if not isinstance(graph, dict):
        _fail(f"Expected the graph to be an object, got {type(graph).__name__}")
    layers = graph.get("layers")
    if not isinstance(layers, (list, tuple)) or not layers:
        _fail(f"Expected graph['layers'] to be a non-empty list, got {type(layers).__name__}")
    if len(layers) > MAX_LAYERS:
        _fail(f"Expected at most {MAX_LAYERS} layers, got {len(layers)}")
    out = {"arch": _text(str(graph.get("arch", "custom")), "graph['arch']"),
           "input": _normalize_input(graph.get("input")),
           "layers": [_normalize_layer(i, layer) for i, layer in enumerate(layers)]}
    names = [layer["name"] for layer in out["layers"]]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        _fail(f"Expected unique layer names, got duplicates {dup}")
    labels = graph.get("labels")
    if labels is not None:
        if not isinstance(labels, (list, tuple)) or not all(isinstance(s, str) for s in labels):
            _fail(f"Expected graph['labels'] to be a list of strings, got {labels!r}")
        labels = [_text(s, "each label") for s in labels]
    out["labels"] = labels
    return out


def _count(shape: Shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


def _check_size(shape: Shape, where: str) -> Shape:
    n = _count(shape)
    if n > MAX_ACTIVATION_ELEMENTS:
        _fail(f"Expected at most {MAX_ACTIVATION_ELEMENTS} activations per sample after {where}, got {n}")
    return shape


def infer_shapes(graph: dict) -> List[Shape]:
    """Per-sample output shape of every layer of a normalized graph (weight_shape required).

    Checks that channels chain through the layers, kernels fit their inputs and
    the network ends in one score per label; sets graph['labels'] to "0".."N-1"
    when it has none.
    """
    state: Shape = tuple(graph["input"]["shape"])
    _check_size(state, "the input")
    shapes: List[Shape] = []
    for i, layer in enumerate(graph["layers"]):
        kind, where = layer["type"], f"layer {i} ({layer['name']})"
        if kind == "conv2d":
            if len(state) != 3:
                _fail(f"Expected an (H, W, C) input to {where}, got {state} (conv after flatten?)")
            o, kh, kw, c = _weight_shape(layer, where, 4)
            h, w, cin = state
            if c != cin:
                _fail(f"Expected {where} weights with C={cin} input channels, got weight_shape "
                      f"{layer['weight_shape']}")
            p, s = layer["padding"], layer["stride"]
            if h + 2 * p < kh or w + 2 * p < kw:
                _fail(f"Expected a {kh}x{kw} kernel of {where} to fit its padded {h}x{w} input "
                      f"(padding {p})")
            state = (ref.conv_output_size(h, kh, s, p), ref.conv_output_size(w, kw, s, p), o)
        elif kind == "dense":
            if len(state) != 1:
                _fail(f"Expected a flat input to {where}, got {state} (add a flatten layer)")
            n, k = _weight_shape(layer, where, 2)
            if k != state[0]:
                _fail(f"Expected {where} weights with K={state[0]} columns, got weight_shape "
                      f"{layer['weight_shape']}")
            state = (n,)
        elif kind in ("maxpool", "avgpool"):
            if len(state) != 3:
                _fail(f"Expected an (H, W, C) input to {where}, got {state}")
            k, s = layer["kernel"], layer["stride"]
            if k > state[0] or k > state[1]:
                _fail(f"Expected the {k}x{k} window of {where} to fit its {state[0]}x{state[1]} input")
            state = ((state[0] - k) // s + 1, (state[1] - k) // s + 1, state[2])
        elif kind == "flatten":
            state = (_count(state),)
        shapes.append(_check_size(state, where))
    total = sum(_count(shape) for shape in shapes)
    if total > MAX_TOTAL_ACTIVATIONS:
        _fail(f"Expected at most {MAX_TOTAL_ACTIVATIONS} activations per sample over all layers, got {total}")
    if len(state) != 1:
        _fail(f"Expected the network to end in a vector of class scores, got shape {state}")
    if state[0] > MAX_CLASSES:
        _fail(f"Expected at most {MAX_CLASSES} class scores (class ids are uint16 on the wire), got {state[0]}")
    labels = graph.get("labels")
    if labels is None:
        graph["labels"] = [str(j) for j in range(state[0])]
    elif len(labels) != state[0]:
        _fail(f"Expected {state[0]} labels (one per output), got {len(labels)}")
    return shapes


def _weight_shape(layer: dict, where: str, rank: int) -> Shape:
    ws = layer.get("weight_shape")
    if ws is None:
        _fail(f"Expected {where} to have a weight_shape")
    return tuple(ws)


def channels_before(graph: dict, shapes: List[Shape], i: int) -> int:
    """Channel count (last axis) of the input of layer i."""
    state = tuple(graph["input"]["shape"]) if i == 0 else shapes[i - 1]
    return state[-1]


def is_packed(layer: dict) -> bool:
    """conv2d/dense layers with beta_w != 1 store sign bits + scales instead of floats."""
    return layer["type"] in ("conv2d", "dense") and layer["beta_w"] != 1


def is_int_scales(layer: dict) -> bool:
    """A packed layer whose scales are 7-bit levels x float factors (docs/DESIGN.md, section 9)."""
    return is_packed(layer) and bool(layer.get("int_scales", False))


def int_tensor_names(layer: dict) -> Tuple[str, str, str]:
    """The integer-scale tensors of a layer: levels, filter factors, activation factor."""
    w = layer["weight"]
    return w + ".levels", w + ".factors", w + ".act_factor"


def int_levels_bytes(rows: int, nseg: int) -> int:
    """Bytes of the compact (format 1.2) level stream: 7 bits per level, rows one after another."""
    return -(-rows * nseg * 7 // 8)


def expected_tensors(graph: dict, shapes: List[Shape], compact_int: bool = True) -> Dict[str, Tuple[str, Shape]]:
    """File tensor name -> (safetensors dtype, shape) that the graph requires, nothing else.

    ``compact_int``: integer-scale layers in format 1.2's layout (sign bytes, a 7-bit level stream);
    False for 1.1 files (sign words, one level byte per segment in words)."""
    want: Dict[str, Tuple[str, Shape]] = {}

    def add(name: str, dtype: str, shape: Shape, where: str) -> None:
        if name in want:
            _fail(f"Expected each tensor to be used once, got {name!r} again in {where}")
        want[name] = (dtype, tuple(shape))

    for i, layer in enumerate(graph["layers"]):
        where = f"layer {i} ({layer['name']})"
        if layer["type"] in ("conv2d", "dense"):
            ws = tuple(layer["weight_shape"])
            o, k = ws[0], 1
            for d in ws[1:]:
                k *= d
            if is_int_scales(layer):
                if k > MAX_INT_K:
                    _fail(f"Expected at most K={MAX_INT_K} weights per output in {where} with integer scales "
                          f"(127 * 127 * K must fit int32), got K={k}")
                nseg = -(-k // ref.segment_length(layer["beta_w"], k))
                levels, factors, act = int_tensor_names(layer)
                if compact_int:
                    add(layer["weight"] + ".bits", "U8", (o, -(-k // 8)), where)
                    add(levels, "U8", (int_levels_bytes(o, nseg),), where)
                else:
                    add(layer["weight"] + ".bits", "U64", (o, -(-k // 64)), where)
                    add(levels, "U64", (o, -(-nseg // 8)), where)  # one byte per segment, 8 per word
                add(factors, "F32", (o,), where)
                add(act, "F32", (1,), where)
            elif is_packed(layer):
                nseg = -(-k // ref.segment_length(layer["beta_w"], k))
                add(layer["weight"] + ".bits", "U64", (o, -(-k // 64)), where)
                add(layer["weight"] + ".scales", "F32", (o, nseg), where)
            else:
                add(layer["weight"], "F32", ws, where)
            if layer["bias"] is not None:
                add(layer["bias"], "F32", (o,), where)
        elif layer["type"] == "affine":
            c = channels_before(graph, shapes, i)
            add(layer["scale"], "F32", (c,), where)
            add(layer["bias"], "F32", (c,), where)
    return want

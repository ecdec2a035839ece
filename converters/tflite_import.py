"""Import a float TFLite CNN as a layer graph + float tensors (``hbnn convert model.tflite``).

Weights and tensor shapes are read through the TFLite interpreter (ai-edge-litert, or
tflite-runtime); the operators' options (stride, padding, fused activation) through the
TFLite flatbuffer schema module that ships with ai-edge-litert. Supported: a single chain
of CONV_2D, FULLY_CONNECTED, MAX_POOL_2D, AVERAGE_POOL_2D, RELU, RESHAPE, SOFTMAX. The
first and last weighted layers stay full precision; the inner ones get ``beta_w``/``beta_a``.
Before returning, the imported graph is run in full precision and compared with the
TFLite interpreter on a random input, so a semantic mismatch is an error, not a silent
accuracy loss.
"""
from __future__ import annotations

import math
import os
from typing import Dict, List, Optional, Tuple

import numpy as np

from .errors import ConverterError

SUPPORTED = ("CONV_2D", "FULLY_CONNECTED", "MAX_POOL_2D", "AVERAGE_POOL_2D", "RELU", "RESHAPE", "SOFTMAX")
INSTALL_HINT = "install the optional peer runtime: pip install ai-edge-litert (or `pip install -e .[bench]`)"
_SAME = object()
_REQUIRED = object()


class TFLiteImportError(ConverterError):
    """A .tflite file that cannot be imported (unsupported op, quantized weights, odd padding...)."""


def _runtime():
    """(Interpreter class, OpResolverType or None, schema module), imported lazily."""
    try:
        from ai_edge_litert import interpreter as litert
        from ai_edge_litert import schema_py_generated as schema
        return litert.Interpreter, getattr(litert, "OpResolverType", None), schema
    except ImportError:
        pass
    try:  # pragma: no cover - exercised only where tflite-runtime + tensorflow's schema exist
        from tflite_runtime import interpreter as tfl
        from tensorflow.lite.python import schema_py_generated as schema
        return tfl.Interpreter, getattr(tfl, "OpResolverType", None), schema
    except ImportError:
        raise TFLiteImportError(f"Expected a TFLite runtime to read .tflite files, got none: {INSTALL_HINT}") \
            from None


def _open(path: str):
    Interpreter, resolver, schema = _runtime()
    kwargs = {}
    if resolver is not None:  # plain kernels: no XNNPACK rewrite of the op list or the weights
        kwargs["experimental_op_resolver_type"] = resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    try:
        with open(path, "rb") as f:
            blob = f.read()
        interp = Interpreter(model_content=blob, **kwargs)
        interp.allocate_tensors()
        model = schema.ModelT.InitFromPackedBuf(bytearray(blob), 0)
    except OSError as exc:
        raise TFLiteImportError(f"Expected a readable .tflite file, got {exc.strerror or exc}: {path}") from None
    except Exception as exc:  # the runtime raises ValueError/RuntimeError for broken flatbuffers
        raise TFLiteImportError(f"Expected a valid .tflite model in {path}, got: {exc}") from None
    if not model.subgraphs or len(model.subgraphs) != 1:
        raise TFLiteImportError(f"Expected one subgraph in {path}, got {len(model.subgraphs or [])}")
    return interp, model, schema


def _op_names(model, schema) -> List[str]:
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    out = []
    for op in model.subgraphs[0].operators or []:
        oc = model.operatorCodes[op.opcodeIndex]
        code = max(oc.builtinCode, oc.deprecatedBuiltinCode)
        out.append(names.get(code, f"builtin {code}"))
    return out


class _Importer:
    def __init__(self, path: str, beta_w, beta_a):
        self.path = path
        self.interp, self.model, self.schema = _open(path)
        self.sub = self.model.subgraphs[0]
        self.details = {d["index"]: d for d in self.interp.get_tensor_details()}
        self.betas = (beta_w, beta_a)
        self.layers: List[dict] = []
        self.tensors: Dict[str, np.ndarray] = {}

    # -- helpers ---------------------------------------------------------------------------
    def shape(self, t: int) -> Tuple[int, ...]:
        return tuple(int(s) for s in self.details[t]["shape"])

    def const(self, t: int, what: str) -> np.ndarray:
        d = self.details[t]
        if d["dtype"] != np.float32:
            raise TFLiteImportError(f"Expected float32 {what} ({d['name']}), got {np.dtype(d['dtype']).name} "
                                    f"(a quantized model: import its float version)")
        try:
            return np.ascontiguousarray(self.interp.get_tensor(t), dtype=np.float32)
        except ValueError as exc:
            raise TFLiteImportError(f"Expected constant {what} ({d['name']}), got: {exc}") from None

    def activation(self, opts, where: str) -> bool:
        act = getattr(opts, "fusedActivationFunction", 0) if opts is not None else 0
        names = {v: k for k, v in vars(self.schema.ActivationFunctionType).items() if not k.startswith("_")}
        if act not in (self.schema.ActivationFunctionType.NONE, self.schema.ActivationFunctionType.RELU):
            raise TFLiteImportError(f"Expected no fused activation or RELU in {where}, got {names.get(act, act)}")
        return act == self.schema.ActivationFunctionType.RELU

    def padding(self, opts, size_in, k, stride, where: str) -> int:
        if opts.padding == self.schema.Padding.VALID:
            return 0
        pads = []
        for n, kk in zip(size_in, k):
            out = -(-n // stride)
            pads.append(max((out - 1) * stride + kk - n, 0))
        if pads[0] != pads[1] or pads[0] % 2:
            raise TFLiteImportError(f"Expected SAME padding that is symmetric in {where}, got total padding "
                                    f"{pads} (use an odd kernel with stride 1, or VALID padding)")
        return pads[0] // 2

    # -- ops -------------------------------------------------------------------------------
    def run(self):
        names = _op_names(self.model, self.schema)
        bad = sorted({n for n in names if n not in SUPPORTED})
        if bad:
            raise TFLiteImportError(f"Expected only {', '.join(SUPPORTED)} ops, got unsupported {', '.join(bad)} "
                                    f"in {self.path}")
        if len(self.sub.inputs) != 1 or len(self.sub.outputs) != 1:
            raise TFLiteImportError(f"Expected one input and one output, got {len(self.sub.inputs)} and "
                                    f"{len(self.sub.outputs)}")
        cur = int(self.sub.inputs[0])
        in_shape = self.shape(cur)
        if self.details[cur]["dtype"] != np.float32:
            raise TFLiteImportError(f"Expected a float32 input, got {np.dtype(self.details[cur]['dtype']).name}")
        if len(in_shape) == 4:
            spec_shape = list(in_shape[1:])
        elif len(in_shape) == 3:
            spec_shape = list(in_shape[1:]) + [1]
        elif len(in_shape) == 2:
            spec_shape = [1, 1, in_shape[1]]
            self.layers.append({"type": "flatten"})
        else:
            raise TFLiteImportError(f"Expected an NHWC, NHW or NK input, got shape {list(in_shape)}")
        for i, (name, op) in enumerate(zip(names, self.sub.operators)):
            inputs = [int(t) for t in op.inputs if t >= 0]
            if not inputs or inputs[0] != cur:
                raise TFLiteImportError(f"Expected a single chain of ops, got {name} (op {i}) reading tensor "
                                        f"{inputs[:1]} instead of the previous op's output {cur}")
            getattr(self, "op_" + name.lower())(i, op, inputs)
            cur = int(op.outputs[0])
        if cur != int(self.sub.outputs[0]):
            raise TFLiteImportError("Expected the last op to produce the model's output")
        return spec_shape

    def _weighted(self, kind, i, op, inputs, extra):
        w = self.const(inputs[1], f"{kind} weights of op {i}")
        name = f"{'conv' if kind == 'conv2d' else 'fc'}{i}"
        self.tensors[name + ".weight"] = w
        bias = None
        if len(inputs) > 2:
            bias = name + ".bias"
            self.tensors[bias] = self.const(inputs[2], f"bias of op {i}")
        relu = self.activation(op.builtinOptions, f"{kind} op {i}")
        layer = {"type": kind, "name": name, "weight": name + ".weight", "bias": bias, "relu": relu}
        layer.update(extra)
        self.layers.append(layer)

    def op_conv_2d(self, i, op, inputs):
        o = op.builtinOptions
        if o.strideW != o.strideH or max(o.dilationWFactor, 1) != 1 or max(o.dilationHFactor, 1) != 1:
            raise TFLiteImportError(f"Expected equal strides and no dilation in CONV_2D op {i}, got strides "
                                    f"({o.strideH}, {o.strideW}), dilation ({o.dilationHFactor}, {o.dilationWFactor})")
        ws = self.shape(inputs[1])
        pad = self.padding(o, self.shape(inputs[0])[1:3], ws[1:3], o.strideH, f"CONV_2D op {i}")
        self._weighted("conv2d", i, op, inputs, {"stride": int(o.strideH), "padding": pad})

    def op_fully_connected(self, i, op, inputs):
        o = op.builtinOptions
        if o is not None and getattr(o, "keepNumDims", False):
            raise TFLiteImportError(f"Expected FULLY_CONNECTED op {i} without keep_num_dims")
        if len(self.shape(inputs[0])) != 2:
            self.layers.append({"type": "flatten"})  # TFLite flattens implicitly, in (H, W, C) order
        self._weighted("dense", i, op, inputs, {})

    def _pool(self, kind, i, op, inputs):
        o = op.builtinOptions
        if o.filterWidth != o.filterHeight or o.strideW != o.strideH:
            raise TFLiteImportError(f"Expected square pooling windows and equal strides in op {i}, got "
                                    f"{o.filterHeight}x{o.filterWidth} / ({o.strideH}, {o.strideW})")
        pad = self.padding(o, self.shape(inputs[0])[1:3], (o.filterHeight, o.filterWidth), o.strideH,
                           f"pool op {i}")
        if pad:
            raise TFLiteImportError(f"Expected pooling without padding in op {i}, got SAME padding of {pad}")
        self.layers.append({"type": kind, "kernel": int(o.filterHeight), "stride": int(o.strideH)})
        if self.activation(o, f"pool op {i}"):
            self.layers.append({"type": "relu"})

    def op_max_pool_2d(self, i, op, inputs):
        self._pool("maxpool", i, op, inputs)

    def op_average_pool_2d(self, i, op, inputs):
        self._pool("avgpool", i, op, inputs)

    def op_relu(self, i, op, inputs):
        self.layers.append({"type": "relu"})

    def op_softmax(self, i, op, inputs):
        beta = getattr(op.builtinOptions, "beta", 1.0)
        if not math.isclose(beta, 1.0):
            raise TFLiteImportError(f"Expected SOFTMAX with beta 1, got {beta} (op {i})")
        self.layers.append({"type": "softmax"})

    def op_reshape(self, i, op, inputs):
        src, dst = self.shape(inputs[0]), self.shape(int(op.outputs[0]))
        if len(dst) == 2 and dst[0] == src[0] and dst[1] == math.prod(src[1:]):
            if len(src) > 2:
                self.layers.append({"type": "flatten"})
        elif not (len(src) == 3 and dst == src + (1,)) and src != dst:
            raise TFLiteImportError(f"Expected RESHAPE to flatten (or add a channel axis), got {list(src)} -> "
                                    f"{list(dst)} (op {i})")


def _assign_betas(layers: List[dict], beta_w, beta_a) -> None:
    weighted = [layer for layer in layers if layer["type"] in ("conv2d", "dense")]
    if not weighted:
        raise TFLiteImportError("Expected at least one CONV_2D or FULLY_CONNECTED op, got none")
    for j, layer in enumerate(weighted):
        outer = j == 0 or j == len(weighted) - 1
        layer["beta_w"], layer["beta_a"] = (1, 1) if outer else (beta_w, beta_a)


def _normalize_beta(beta, name: str):
    from cy_kernels.reference import normalize_beta

    try:
        return normalize_beta(beta, name)
    except (TypeError, ValueError) as exc:
        raise TFLiteImportError(str(exc)) from None


def graph_from_tflite(path: str, beta_w=_REQUIRED, beta_a=_SAME, *, labels: Optional[List[str]] = None,
                      input_spec: Optional[dict] = None, verify: bool = True):
    """Read a float .tflite CNN -> (graph, float tensors) for ``edge.format.write_hbn``.

    ``beta_w``: the inner layers' weight segment length (None or math.inf = one segment per row).
    ``beta_a``: the activations' (default: same as beta_w; None = infinity, 1 = float activations).
    ``input_spec``: pixel_scale/mean/std of the model's preprocessing (default 1/255, 0, 1).
    ``verify``: run the imported graph in full precision against the TFLite interpreter.
    """
    from cy_kernels.reference import check_betas

    if beta_w is _REQUIRED:
        raise TFLiteImportError("Expected beta_w for a .tflite import (e.g. --beta-w 4; inf for one segment "
                                "per row), got none")
    bw = _normalize_beta(beta_w, "beta_w")
    ba = bw if beta_a is _SAME else _normalize_beta(beta_a, "beta_a")
    try:
        check_betas(bw, ba)
    except ValueError as exc:
        raise TFLiteImportError(str(exc)) from None
    imp = _Importer(str(path), bw, ba)
    shape = imp.run()
    n_out = math.prod(imp.shape(int(imp.sub.outputs[0]))[1:])
    spec = {"shape": shape, "layout": "NHWC", "pixel_scale": 1 / 255, "mean": [0.0], "std": [1.0]}
    spec.update(input_spec or {})
    graph = {"arch": "tflite", "input": spec, "layers": imp.layers,
             "labels": list(labels) if labels is not None else [str(j) for j in range(n_out)]}
    if verify:
        _verify(imp, graph)
    _assign_betas(graph["layers"], bw, ba)
    return graph, imp.tensors


def _verify(imp: _Importer, graph: dict) -> None:
    """The graph in full precision, on the runtime's reference kernels, must reproduce the TFLite output."""
    import tempfile

    from edge.errors import ModelFormatError
    from edge.format import write_hbn
    from edge.interpreter import Interpreter

    fp = {**graph, "layers": [dict(layer, beta_w=1, beta_a=1) if layer["type"] in ("conv2d", "dense") else layer
                              for layer in graph["layers"]]}
    inp = imp.details[int(imp.sub.inputs[0])]
    x = np.random.default_rng(0).normal(size=tuple(inp["shape"])).astype(np.float32)
    imp.interp.set_tensor(inp["index"], x)
    imp.interp.invoke()
    want = imp.interp.get_tensor(int(imp.sub.outputs[0])).reshape(x.shape[0], -1)
    x = x.reshape((x.shape[0],) + tuple(graph["input"]["shape"]))
    with tempfile.TemporaryDirectory(prefix="hbnn-import-") as tmp:
        path = os.path.join(tmp, "full-precision.hbn")
        try:
            write_hbn(path, fp, imp.tensors)
        except ModelFormatError as exc:
            raise TFLiteImportError(f"Expected a graph the runtime can run, got: {exc}") from None
        ref = Interpreter(path, reference=True)
        ref.resize_tensor_input(0, list(x.shape))
        ref.set_tensor(0, x)
        ref.invoke()
        got = ref.get_tensor(ref.get_output_details()[0]["index"]).reshape(x.shape[0], -1)
    tol = 1e-3 * max(1.0, float(np.abs(want).max()))
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=tol):
        diff = float(np.abs(got - want).max()) if got.shape == want.shape else f"shape {got.shape}"
        raise TFLiteImportError(f"Expected the imported graph to reproduce the TFLite output, got a "
                                f"difference of {diff} (unsupported semantics in {imp.path})")


__all__ = ["SUPPORTED", "TFLiteImportError", "graph_from_tflite"]

"""TFLite import: tiny float .tflite models are built here with the flatbuffer schema that ships
with ai-edge-litert, imported, and run through the runtime. ai-edge-litert (not tflite-runtime: its last release, 2.14,
is built against NumPy 1 and fails under NumPy 2) is in the `test` extra on x86-64, so CI runs all."""
from __future__ import annotations

import math

import numpy as np
import pytest

from converters.errors import ConverterError
from converters.tflite_import import TFLiteImportError, graph_from_tflite

try:
    import flatbuffers
    from ai_edge_litert import interpreter as litert
    from ai_edge_litert import schema_py_generated as S
except ImportError:
    litert = S = flatbuffers = None

# On x86 the `test` extra installs it; the emulated ARM suites run in a Debian sysroot without it.
needs_litert = pytest.mark.skipif(
    litert is None, reason="ai-edge-litert not installed (x86: the `test` extra has it; emulated ARM: "
                           "not in the Debian sysroot)")


def test_missing_runtime_says_what_to_install(monkeypatch, tmp_path):
    import sys

    for name in ("ai_edge_litert", "tflite_runtime", "tensorflow"):
        monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    with pytest.raises(TFLiteImportError, match="pip install ai-edge-litert"):
        graph_from_tflite(tmp_path / "m.tflite", 4)


class TinyModel:
    """Builds a single-subgraph float TFLite model op by op (flatbuffer object API)."""

    def __init__(self, input_shape):
        self.tensors, self.buffers, self.ops, self.codes = [], [S.BufferT()], [], []
        self.rng = np.random.default_rng(0)
        self.cur = self.tensor(input_shape, "input")
        self.input = self.cur

    def tensor(self, shape, name, data=None, dtype=None):
        t = S.TensorT()
        dtype = S.TensorType.FLOAT32 if dtype is None else dtype
        t.shape, t.type, t.name, t.buffer = list(shape), dtype, name.encode(), 0
        if data is not None:
            b = S.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=np.uint8)
            self.buffers.append(b)
            t.buffer = len(self.buffers) - 1
        self.tensors.append(t)
        return len(self.tensors) - 1

    def op(self, code, inputs, out_shape, opts_type=0, opts=None):
        if code not in self.codes:
            self.codes.append(code)
        op = S.OperatorT()
        op.opcodeIndex = self.codes.index(code)
        out = self.tensor(out_shape, f"t{len(self.tensors)}")
        op.inputs, op.outputs = [self.cur] + list(inputs), [out]
        op.builtinOptionsType, op.builtinOptions = opts_type, opts
        self.ops.append(op)
        self.cur = out
        return self

    def shape(self):
        return self.tensors[self.cur].shape

    def conv(self, o, k, stride=1, same=False, relu=True, bias=True):
        _, h, w, c = self.shape()
        wt = self.rng.normal(0, 0.3, (o, k, k, c)).astype(np.float32)
        ins = [self.tensor(wt.shape, f"w{len(self.tensors)}", wt)]
        if bias:
            ins.append(self.tensor((o,), f"b{len(self.tensors)}", self.rng.normal(0, 0.1, o).astype(np.float32)))
        opts = S.Conv2DOptionsT()
        opts.padding = S.Padding.SAME if same else S.Padding.VALID
        opts.strideW = opts.strideH = stride
        opts.fusedActivationFunction = S.ActivationFunctionType.RELU if relu else S.ActivationFunctionType.NONE
        oh = -(-h // stride) if same else (h - k) // stride + 1
        ow = -(-w // stride) if same else (w - k) // stride + 1
        return self.op(S.BuiltinOperator.CONV_2D, ins, (1, oh, ow, o), S.BuiltinOptions.Conv2DOptions, opts)

    def pool(self, k, average=False, relu=False):
        _, h, w, c = self.shape()
        opts = S.Pool2DOptionsT()
        opts.padding, opts.filterWidth, opts.filterHeight, opts.strideW, opts.strideH = S.Padding.VALID, k, k, k, k
        if relu:
            opts.fusedActivationFunction = S.ActivationFunctionType.RELU
        code = S.BuiltinOperator.AVERAGE_POOL_2D if average else S.BuiltinOperator.MAX_POOL_2D
        return self.op(code, [], (1, (h - k) // k + 1, (w - k) // k + 1, c), S.BuiltinOptions.Pool2DOptions, opts)

    def reshape(self):
        n = math.prod(self.shape()[1:])
        shape = self.tensor((2,), f"s{len(self.tensors)}", np.array([1, n], np.int32), S.TensorType.INT32)
        opts = S.ReshapeOptionsT()
        opts.newShape = [1, n]
        return self.op(S.BuiltinOperator.RESHAPE, [shape], (1, n), S.BuiltinOptions.ReshapeOptions, opts)

    def dense(self, n, relu=False):
        k = math.prod(self.shape()[1:])
        wt = self.rng.normal(0, 0.1, (n, k)).astype(np.float32)
        ins = [self.tensor(wt.shape, f"w{len(self.tensors)}", wt),
               self.tensor((n,), f"b{len(self.tensors)}", self.rng.normal(0, 0.1, n).astype(np.float32))]
        opts = S.FullyConnectedOptionsT()
        opts.fusedActivationFunction = S.ActivationFunctionType.RELU if relu else S.ActivationFunctionType.NONE
        return self.op(S.BuiltinOperator.FULLY_CONNECTED, ins, (1, n), S.BuiltinOptions.FullyConnectedOptions, opts)

    def relu(self):
        return self.op(S.BuiltinOperator.RELU, [], self.shape())

    def softmax(self):
        opts = S.SoftmaxOptionsT()
        opts.beta = 1.0
        return self.op(S.BuiltinOperator.SOFTMAX, [], self.shape(), S.BuiltinOptions.SoftmaxOptions, opts)

    def tanh(self):
        return self.op(S.BuiltinOperator.TANH, [], self.shape())

    def save(self, path):
        m = S.ModelT()
        m.version, m.description = 3, b"hadanets-edge test model"
        codes = []
        for c in self.codes:
            oc = S.OperatorCodeT()
            oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = c, min(c, 127), 1
            codes.append(oc)
        sg = S.SubGraphT()
        sg.tensors, sg.operators, sg.inputs, sg.outputs = self.tensors, self.ops, [self.input], [self.cur]
        m.operatorCodes, m.subgraphs, m.buffers = codes, [sg], self.buffers
        b = flatbuffers.Builder(4096)
        b.Finish(m.Pack(b), file_identifier=b"TFL3")
        path.write_bytes(bytes(b.Output()))
        return path


def _lenet_like(tmp_path, name="tiny.tflite"):
    m = TinyModel((1, 12, 12, 1)).conv(6, 3).pool(2).conv(8, 3, same=True).pool(2, average=True)
    return m.reshape().dense(16, relu=True).dense(5).softmax().save(tmp_path / name)


def _run_tflite(path, x):
    it = litert.Interpreter(model_path=str(path))
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    return it.get_tensor(it.get_output_details()[0]["index"])


@needs_litert
def test_import_maps_the_ops_and_betas(tmp_path):
    graph, tensors = graph_from_tflite(_lenet_like(tmp_path), 4)
    kinds = [layer["type"] for layer in graph["layers"]]
    assert kinds == ["conv2d", "maxpool", "conv2d", "avgpool", "flatten", "dense", "dense", "softmax"]
    convs = [layer for layer in graph["layers"] if layer["type"] in ("conv2d", "dense")]
    assert [(c["beta_w"], c["beta_a"]) for c in convs] == [(1, 1), (4, 4), (4, 4), (1, 1)]
    assert convs[1]["padding"] == 1 and convs[0]["relu"] and not convs[3]["relu"]
    assert graph["input"]["shape"] == [12, 12, 1] and len(graph["labels"]) == 5
    assert tensors["conv0.weight"].shape == (6, 3, 3, 1) and tensors["fc5.weight"].shape == (16, 32)


@needs_litert
def test_imported_full_precision_model_matches_tflite_through_the_runtime(tmp_path):
    from edge import Interpreter
    from edge.format import write_hbn

    path = _lenet_like(tmp_path)
    graph, tensors = graph_from_tflite(path, 1, 1)  # exact float: must reproduce TFLite
    write_hbn(tmp_path / "m.hbn", graph, tensors)
    x = np.random.default_rng(3).normal(size=(1, 12, 12, 1)).astype(np.float32)
    it = Interpreter(tmp_path / "m.hbn")
    np.testing.assert_allclose(it.predict(x), _run_tflite(path, x), rtol=1e-4, atol=1e-6)


@needs_litert
def test_binarized_import_runs_and_equals_the_reference(tmp_path):
    from edge import Interpreter
    from edge.format import write_hbn
    from model_fakes import reference_forward

    graph, tensors = graph_from_tflite(_lenet_like(tmp_path), 16, 2)
    write_hbn(tmp_path / "m.hbn", graph, tensors)
    x = np.random.default_rng(4).normal(size=(3, 12, 12, 1)).astype(np.float32)
    np.testing.assert_allclose(Interpreter(tmp_path / "m.hbn").predict(x), reference_forward(tmp_path / "m.hbn", x),
                               rtol=1e-4, atol=1e-5)


@needs_litert
def test_unsupported_ops_are_named(tmp_path):
    path = TinyModel((1, 8, 8, 1)).conv(4, 3).tanh().reshape().dense(3).save(tmp_path / "tanh.tflite")
    with pytest.raises(TFLiteImportError, match="unsupported TANH"):
        graph_from_tflite(path, 4)


@needs_litert
def test_asymmetric_same_padding_is_refused(tmp_path):
    path = TinyModel((1, 8, 8, 1)).conv(4, 2, same=True).reshape().dense(3).save(tmp_path / "pad.tflite")
    with pytest.raises(TFLiteImportError, match="symmetric"):
        graph_from_tflite(path, 4)


@needs_litert
def test_relu_op_and_fused_pool_relu(tmp_path):
    m = TinyModel((1, 8, 8, 2)).conv(4, 3, relu=False).relu().conv(4, 1, relu=False).pool(2, relu=True)
    graph, _ = graph_from_tflite(m.reshape().dense(3).save(tmp_path / "r.tflite"), None, 1)
    assert [layer["type"] for layer in graph["layers"]] == ["conv2d", "relu", "conv2d", "maxpool", "relu",
                                                            "flatten", "dense"]
    assert graph["layers"][2]["beta_w"] is None and graph["layers"][2]["beta_a"] == 1


@needs_litert
@pytest.mark.parametrize("kwargs, message", [({}, "Expected beta_w"), ({"beta_w": 16, "beta_a": 6}, "divides"),
                                             ({"beta_w": 0}, "beta_w")])
def test_bad_betas(tmp_path, kwargs, message):
    with pytest.raises(TFLiteImportError, match=message):
        graph_from_tflite(_lenet_like(tmp_path), **kwargs)


@needs_litert
def test_garbage_and_missing_files_are_clean_errors(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\0" * 64)
    for path in (bad, tmp_path / "missing.tflite"):
        with pytest.raises(ConverterError, match="Expected"):
            graph_from_tflite(path, 4)

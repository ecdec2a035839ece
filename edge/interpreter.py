"""The on-board runtime: a TFLite-style interpreter for .hbn models.

Everything is decided at load: the model is validated (edge.format), folded
BatchNorms ("affine") become the next conv/dense layer's ``in_scale``/``in_bias``,
a following ReLU becomes ``relu=True``, every activation buffer is allocated,
and the network is bound into a flat list of zero-argument callables. ``invoke()``
just calls them in order: no allocation, no dispatch, no per-layer checks beyond
the kernels' own. Packed weights are read-only views over the mapped file.

``reference=True`` runs the same graph on the NumPy reference kernels (``cy_kernels.reference``),
layer by layer as the file describes it: no BatchNorm or ReLU folding, weights unpacked to their
``scale * sign`` floats (integer-scale layers: ``level * sign`` integers and the exact sums of
``cy_kernels.reference_int``). Slow, but the ground truth: a wrong answer on a board is triaged by
running the model both ways (Larq Compute Engine's ``use_reference_bconv``). It needs no
compiled extension.

Not thread-safe (like TFLite's): use one Interpreter per thread.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Tuple, Union

import numpy as np

from cy_kernels.reference import softmax

from .errors import ModelFormatError
from .format import HbnModel, read_hbn
from .preprocess import normalization

PREDICT_BATCH = 64      # predict() runs big batches in chunks of at most this many samples
PREDICT_BYTES = 16 << 20  # ...and of at most about this many bytes of activations
_MAX_PLANS = 4          # batch sizes kept planned for predict()


def _affine_op(x, out, scale, bias) -> Callable[[], None]:
    mul, add = np.multiply, np.add

    def run():
        mul(x, scale, out=out)
        add(out, bias, out=out)
    run.frame_step = ("affine", x, out, scale, bias)  # what the frame executor runs instead
    return run


def _relu_op(x, out) -> Callable[[], None]:
    maximum, zero = np.maximum, np.float32(0)

    def run():
        maximum(x, zero, out=out)
    run.frame_step = ("relu", x, out)
    return run


class _IntReference:
    """An integer-scale layer's weights for the reference: int64 ``level * sign`` in the weight
    shape, the filters' factors and the activation factor (cy_kernels.reference_int)."""

    def __init__(self, pw):
        from cy_kernels import reference_int as RI

        self.ints = RI.weight_ints(pw.bits, pw.levels, pw.row_length, pw.beta_w).reshape(pw.shape)
        self.factors, self.act_factor = pw.factors, pw.act_factor


def _reference_weighted_op(layer: dict, w, x, out, bias) -> Callable[[], None]:
    """A conv2d/dense layer on the NumPy reference kernels, bias and ReLU applied as the graph says."""
    from cy_kernels import reference as R

    bw, ba, relu = layer["beta_w"], layer["beta_a"], layer["relu"]
    if isinstance(w, _IntReference):
        from cy_kernels import reference_int as RI

        if layer["type"] == "conv2d":
            stride, padding = layer["stride"], layer["padding"]

            def run():
                y = RI.int_conv2d(x, w.ints, w.factors, ba, w.act_factor, stride, padding)
                out[...] = R.epilogue(y, None, bias, relu)
        else:
            def run():
                out[...] = R.epilogue(RI.int_linear(x, w.ints, w.factors, ba, w.act_factor), None, bias, relu)
        run.path = "reference"
        return run
    if layer["type"] == "conv2d":
        stride, padding = layer["stride"], layer["padding"]

        def run():
            out[...] = R.epilogue(R.hbnn_conv2d(x, w, bw, ba, stride, padding), None, bias, relu)
    else:
        def run():
            out[...] = R.epilogue(R.hbnn_linear(x, w, bw, ba), None, bias, relu)
    run.path = "reference"
    return run


def _reference_op(kind: str, layer: dict, x, out) -> Callable[[], None]:
    """A pool or softmax layer on the NumPy reference kernels."""
    from cy_kernels import reference as R

    if kind == "softmax":
        def run():
            out[...] = R.softmax(x, axis=-1)
    else:
        pool = R.max_pool2d if kind == "maxpool" else R.avg_pool2d

        def run():
            out[...] = pool(x, layer["kernel"], layer["stride"])
    return run


class _Plan:
    """Buffers and bound steps for one batch size (``reference``: on the NumPy reference kernels)."""

    def __init__(self, model: HbnModel, weights: Dict[str, object], batch: int, threads: int,
                 reference: bool = False, per_op: bool = False):
        if not reference:
            import cy_kernels as K
            from cy_kernels._xhbnn import BoundPool, BoundSoftmax  # C steps: one call, no ufunc chain

        spec = model.graph["input"]
        self.input = np.zeros((batch,) + tuple(spec["shape"]), dtype=np.float32)
        self.tensors: List[Tuple[str, np.ndarray]] = [("input", self.input)]
        self.ops: List[Callable[[], None]] = []
        layers, shapes = model.graph["layers"], model.shapes
        cur, pending = self.input, None   # pending: an affine (scale, bias) not yet applied
        i = 0
        while i < len(layers):
            layer, kind = layers[i], layers[i]["type"]
            shape = (batch,) + tuple(shapes[i])
            if kind == "affine" and reference:  # the graph as written: its own step, nothing folded
                cur = self._apply_affine(cur, (model.tensors[layer["scale"]], model.tensors[layer["bias"]]),
                                         layer["name"])
            elif kind == "affine":
                s, b = model.tensors[layer["scale"]], model.tensors[layer["bias"]]
                pending = (s, b) if pending is None else (pending[0] * s, pending[1] * s + b)
            elif kind == "flatten":
                if pending is not None:  # per-channel -> per-feature in (H, W, C) order
                    reps = math.prod(cur.shape[1:-1])
                    pending = (np.tile(pending[0], reps), np.tile(pending[1], reps))
                cur = cur.reshape(shape)
            elif kind in ("conv2d", "dense") and reference:
                out = self._buffer(layer["name"], shape)
                bias = model.tensors[layer["bias"]] if layer["bias"] is not None else None
                self.ops.append(_reference_weighted_op(layer, weights[layer["name"]], cur, out, bias))
                cur = out
            elif kind in ("conv2d", "dense"):
                relu = layer["relu"]
                if i + 1 < len(layers) and layers[i + 1]["type"] == "relu":
                    relu, i = True, i + 1
                out = self._buffer(layer["name"], shape)
                ins, inb = (None, None) if pending is None else \
                    (np.ascontiguousarray(pending[0], np.float32), np.ascontiguousarray(pending[1], np.float32))
                bias = model.tensors[layer["bias"]] if layer["bias"] is not None else None
                w, bw, ba = weights[layer["name"]], layer["beta_w"], layer["beta_a"]
                extras = {"in_scale": ins, "in_bias": inb, "out_bias": bias, "relu": relu}
                if kind == "conv2d":
                    op = K.prepare_conv2d(w, bw, ba, cur.shape, layer["stride"], layer["padding"], threads, **extras)
                else:
                    op = K.prepare_linear(w, bw, ba, cur.shape[0], threads, **extras)
                self.ops.append(_bind(op, cur, out))
                cur, pending = out, None
            else:
                if pending is not None:
                    cur, pending = self._apply_affine(cur, pending, f"{layer.get('name', kind)}.affine"), None
                out = self._buffer(layer["name"], shape)
                if reference and kind != "relu":
                    self.ops.append(_reference_op(kind, layer, cur, out))
                elif kind in ("maxpool", "avgpool"):
                    self.ops.append(BoundPool(kind, cur, out, layer["kernel"], layer["stride"]))
                elif kind == "relu":
                    self.ops.append(_relu_op(cur, out))
                else:
                    self.ops.append(BoundSoftmax(cur, out))
                cur = out
            i += 1
        if pending is not None:
            cur = self._apply_affine(cur, pending, "output.affine")
        if cur is not self.tensors[-1][1]:
            self.tensors.append(("output", cur))
        self.output = cur
        self.output_index = len(self.tensors) - 1
        # One C call per frame on a persistent thread pool (cy_kernels/src/frame.c); None: the ops
        # one by one (per_op=True, or a step the executor does not know, e.g. other kernels' ops).
        self.executor = None
        if not (per_op or reference):
            from cy_kernels import frame_executor
            self.executor = frame_executor(self.ops, threads)

    def run(self) -> None:
        if self.executor is not None:
            self.executor.run()
        else:
            for op in self.ops:
                op()

    def _buffer(self, name: str, shape) -> np.ndarray:
        buf = np.zeros(shape, dtype=np.float32)
        self.tensors.append((name, buf))
        return buf

    def _apply_affine(self, cur, pending, name):
        out = self._buffer(name, cur.shape)
        self.ops.append(_affine_op(cur, out, np.asarray(pending[0], np.float32), np.asarray(pending[1], np.float32)))
        return out


def _bind(op, x, out) -> Callable[[], None]:
    """A prepared kernel (validated and allocated once) bound to its input and output buffers."""
    def run():
        op(x, out)
    run.path = op.path  # for profiling (benchmarks/layer_times.py): "xor", "sign" or "float"
    run.frame_step = ("layer", op, x, out)
    return run


def _check_threads(num_threads) -> int:
    if num_threads is None:
        return 1
    if isinstance(num_threads, bool) or not isinstance(num_threads, (int, np.integer)) or num_threads < 1:
        raise ValueError(f"Expected num_threads to be an int >= 1 (or None), got {num_threads!r}")
    return int(num_threads)


class Interpreter:
    """Run a .hbn model; the API mirrors ``tflite_runtime.interpreter.Interpreter``.

    ``model_path``: a .hbn file (or an already loaded :class:`edge.format.HbnModel`).
    ``num_threads``: threads per frame. ``invoke()`` runs the whole network as one C call on a
    persistent pool of that many threads (cy_kernels ``frame_executor``); ``per_op=True`` runs the
    prepared layers one Python call at a time instead (for debugging and profiling), each with
    ``threads=num_threads``. Both give the same results.
    ``reference``: run on the NumPy reference kernels instead of the compiled ones (see the module
    docstring); slow, single-threaded, the ground truth.
    Raises ModelFormatError when the model is malformed.
    """

    def __init__(self, model_path: Union[str, os.PathLike, HbnModel], num_threads: Optional[int] = 1, *,
                 reference: bool = False, per_op: bool = False):
        self.num_threads = _check_threads(num_threads)
        self.reference = bool(reference)
        self.per_op = bool(per_op)
        self.model = model_path if isinstance(model_path, HbnModel) else read_hbn(model_path)
        self._weights = self._prepare_weights()
        self._plan = self._new_plan(1)
        self._plans: "OrderedDict[int, _Plan]" = OrderedDict()
        per_sample = 4 * sum(math.prod(shape) for shape in self.model.shapes)
        self._chunk = max(1, min(PREDICT_BATCH, PREDICT_BYTES // max(1, per_sample)))
        # x = (pixel * pixel_scale - mean) / std  ==  pixel * _pre_a + _pre_b
        self._pre_a, self._pre_b = normalization(self.model.graph["input"])

    def _new_plan(self, batch: int) -> _Plan:
        return _Plan(self.model, self._weights, batch, self.num_threads, self.reference, self.per_op)

    def _prepare_weights(self) -> Dict[str, object]:
        """Packed layers use the file's views as is; float layers are wrapped once for the kernels.

        Reference mode: every weight as float32 (packed ones as ``scale * sign``, which binarize
        back to exactly the stored bits and scales).
        """
        out = {}
        if self.reference:
            from cy_kernels import reference as R

            for layer in self.model.graph["layers"]:
                if layer["type"] in ("conv2d", "dense"):
                    w = self.model.weights[layer["name"]]
                    if isinstance(w, np.ndarray):
                        out[layer["name"]] = w
                    elif w.int_scales:  # levels x factors: integer sums, exactly
                        out[layer["name"]] = _IntReference(w)
                    else:  # PackedWeights: the file's bits and scales
                        rows = R.unpack_rows(w.bits, w.scales, w.row_length, w.beta_w)
                        out[layer["name"]] = rows.reshape(w.shape)
            return out
        import cy_kernels as K

        for layer in self.model.graph["layers"]:
            if layer["type"] in ("conv2d", "dense"):
                w = self.model.weights[layer["name"]]
                out[layer["name"]] = w if isinstance(w, K.PackedWeights) else K.pack_weights(w, 1)
        return out

    # ---- model facts ---------------------------------------------------------------------
    @property
    def labels(self) -> List[str]:
        return list(self.model.graph["labels"])

    @property
    def input_spec(self) -> dict:
        return dict(self.model.graph["input"])

    @property
    def input_shape(self) -> Tuple[int, ...]:
        return tuple(self.model.graph["input"]["shape"])

    @property
    def ends_in_softmax(self) -> bool:
        return self.model.graph["layers"][-1]["type"] == "softmax"

    # ---- TFLite-style API ----------------------------------------------------------------
    def allocate_tensors(self) -> None:
        """Buffers are allocated at load and on resize_tensor_input; kept for TFLite compatibility."""

    def resize_tensor_input(self, input_index: int, tensor_size, strict: bool = False) -> None:
        """Change the batch size (only the batch dimension can change)."""
        self._check_input_index(input_index)
        size = tuple(int(s) for s in tensor_size)
        if len(size) != 4 or size[1:] != self.input_shape or size[0] < 1:
            raise ValueError(f"Expected a shape [B, {', '.join(map(str, self.input_shape))}] with B >= 1, "
                             f"got {list(size)}")
        if size[0] != self._plan.input.shape[0]:
            self._plan = self._new_plan(size[0])

    def get_input_details(self) -> List[dict]:
        spec = self.model.graph["input"]
        d = self._details("input", 0, self._plan.input)
        d.update(layout=spec["layout"], pixel_scale=spec["pixel_scale"], mean=list(spec["mean"]),
                 std=list(spec["std"]))
        return [d]

    def get_output_details(self) -> List[dict]:
        name = "probabilities" if self.ends_in_softmax else "logits"
        d = self._details(name, self._plan.output_index, self._plan.output)
        d["labels"] = self.labels
        return [d]

    def get_tensor_details(self) -> List[dict]:
        return [self._details(name, i, a) for i, (name, a) in enumerate(self._plan.tensors)]

    @staticmethod
    def _details(name: str, index: int, a: np.ndarray) -> dict:
        shape = np.array(a.shape, dtype=np.int32)
        signature = shape.copy()
        signature[0] = -1
        return {"name": name, "index": index, "shape": shape, "shape_signature": signature,
                "dtype": np.float32, "quantization": (0.0, 0),
                "quantization_parameters": {"scales": np.zeros(0, np.float32),
                                            "zero_points": np.zeros(0, np.int32), "quantized_dimension": 0},
                "sparsity_parameters": {}}

    def _check_input_index(self, index) -> None:
        if index != 0:
            raise ValueError(f"Expected input tensor index 0 (the model's only input), got {index!r}")

    def set_tensor(self, tensor_index: int, value: np.ndarray) -> None:
        """Copy ``value`` (float32, exactly the input shape, finite) into the input buffer."""
        self._check_input_index(tensor_index)
        buf = self._plan.input
        if not isinstance(value, np.ndarray):
            raise ValueError(f"Expected a numpy.ndarray, got {type(value).__name__}")
        if value.dtype != np.float32:
            raise ValueError(f"Expected input of dtype float32, got {value.dtype} "
                             f"(use preprocess() for uint8 frames)")
        if value.shape != buf.shape:
            raise ValueError(f"Expected input of shape {list(buf.shape)}, got {list(value.shape)}")
        np.copyto(buf, value)
        # One reduction instead of an isfinite() temporary: NaN/inf make the sum non-finite.
        if not math.isfinite(float(buf.sum())) and not np.isfinite(buf).all():
            bad = "NaN" if np.isnan(buf).any() else "inf"
            buf.fill(0)
            raise ValueError(f"Expected finite input values, got {bad}")

    def invoke(self) -> None:
        """Run the network on the input buffer. Allocates nothing."""
        self._plan.run()

    def get_tensor(self, tensor_index: int) -> np.ndarray:
        """A copy of a tensor (input, any layer's output, or the output)."""
        return self._tensor_array(tensor_index).copy()

    def tensor(self, tensor_index: int) -> Callable[[], np.ndarray]:
        """Like TFLite's: a function returning a live view of the tensor (no copy)."""
        a = self._tensor_array(tensor_index)
        return lambda: a

    def _tensor_array(self, index) -> np.ndarray:
        tensors = self._plan.tensors
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < len(tensors):
            raise ValueError(f"Expected a tensor index in 0..{len(tensors) - 1}, got {index!r}")
        return tensors[int(index)][1]

    # ---- conveniences --------------------------------------------------------------------
    def preprocess(self, frames: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """uint8 frame(s) (H, W), (H, W, C) or (B, H, W[, C]) -> normalized float32 of the same layout.

        Applies the model's input spec: ``(pixel * pixel_scale - mean) / std`` per channel.
        """
        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            raise ValueError(f"Expected uint8 frames, got {frames.dtype}")
        frames, single = self._as_batch(frames)
        if out is None:
            out = np.empty(frames.shape, dtype=np.float32)
        np.multiply(frames, self._pre_a, out=out)
        np.add(out, self._pre_b, out=out)
        return out[0] if single else out

    def _as_batch(self, x: np.ndarray) -> Tuple[np.ndarray, bool]:
        h, w, c = self.input_shape
        if x.shape == (h, w, c) or (c == 1 and x.shape == (h, w)):
            return x.reshape(1, h, w, c), True
        if x.shape[1:] == (h, w, c) or (c == 1 and x.shape[1:] == (h, w)):
            if x.shape[0] < 1:
                raise ValueError("Expected at least one frame, got an empty batch")
            return x.reshape(x.shape[0], h, w, c), False
        raise ValueError(f"Expected a frame of shape ({h}, {w}, {c}){' or (%d, %d)' % (h, w) if c == 1 else ''}"
                         f" or a batch (B, {h}, {w}, {c}), got {x.shape}")

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities for one frame -> (N,) or a batch -> (B, N).

        ``x``: uint8 pixels (normalized with the input spec) or float32 already normalized;
        shaped like the input (H, W, C), (H, W) when C = 1, or batched NHWC.
        """
        if not isinstance(x, np.ndarray):
            raise ValueError(f"Expected a numpy.ndarray, got {type(x).__name__}")
        if x.dtype == np.uint8:
            x = self.preprocess(x)
        elif x.dtype.kind == "f":
            if not np.isfinite(x).all():
                raise ValueError(f"Expected finite input values, got {'NaN' if np.isnan(x).any() else 'inf'}")
            x = x.astype(np.float32, copy=False)
        else:
            raise ValueError(f"Expected uint8 pixels or float32 normalized input, got {x.dtype}")
        batch, single = self._as_batch(x)
        n = batch.shape[0]
        result = np.empty((n, self._plan.output.shape[-1]), dtype=np.float32)
        for start in range(0, n, self._chunk):
            chunk = batch[start:start + self._chunk]
            plan = self._plan_for(chunk.shape[0])
            np.copyto(plan.input, chunk)
            plan.run()
            result[start:start + chunk.shape[0]] = plan.output
        if not self.ends_in_softmax:
            result = softmax(result, axis=1)
        return result[0] if single else result

    def _plan_for(self, batch: int) -> _Plan:
        # predict() has its own buffers: it never disturbs what set_tensor()/invoke() hold.
        plan = self._plans.get(batch)
        if plan is None:
            plan = self._plans[batch] = self._new_plan(batch)
            while len(self._plans) > _MAX_PLANS:
                self._plans.popitem(last=False)
        return plan

    def __repr__(self) -> str:
        return (f"Interpreter({self.model.path!r}, arch={self.model.graph['arch']!r}, "
                f"input={list(self.input_shape)}, classes={len(self.labels)}, threads={self.num_threads}"
                f"{', reference=True' if self.reference else ''})")


__all__ = ["Interpreter", "ModelFormatError", "PREDICT_BATCH"]

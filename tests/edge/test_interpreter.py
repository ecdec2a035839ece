"""The runtime: equals the NumPy reference, allocates nothing per invoke, rejects bad input."""
from __future__ import annotations

import mmap
import tracemalloc

import numpy as np
import pytest

import cy_kernels
from edge import Interpreter, ModelFormatError
from edge.format import write_hbn
from model_fakes import random_lenet, reference_forward


def _close(y, ref):
    """Same logits up to float32 accumulation order (the C kernels sum in another order)."""
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(y, ref, rtol=1e-4, atol=1e-4 * scale)


def _save(tmp_path, graph, tensors, name="m.hbn"):
    path = tmp_path / name
    write_hbn(path, graph, tensors)
    return path


@pytest.mark.parametrize("betas", [(16, 2), (None, None), (4, 4), (2, 16), (1, 1), (64, 64)])
@pytest.mark.parametrize("bn_after_flatten", [True, False])
def test_invoke_equals_the_reference_forward(tmp_path, betas, bn_after_flatten):
    graph, tensors = random_lenet(*betas, seed=11, bn_after_flatten=bn_after_flatten, softmax=False)
    path = _save(tmp_path, graph, tensors)
    it = Interpreter(path)
    x = np.random.default_rng(2).normal(size=(3, 28, 28, 1)).astype(np.float32)
    it.resize_tensor_input(0, [3, 28, 28, 1])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    ref = reference_forward(path, x)
    _close(y, ref)


def _misc_graph():
    """Strided padded convs, avg pool, a BN that cannot fuse (before a pool), relu after pool."""
    rng = np.random.default_rng(4)
    t = {"bn0.s": rng.uniform(0.5, 2, 3), "bn0.b": rng.normal(0, 0.2, 3),
         "c1.w": rng.normal(0, 0.3, (8, 3, 3, 3)), "c1.b": rng.normal(0, 0.1, 8),
         "bn1.s": rng.uniform(-1.5, 1.5, 8), "bn1.b": rng.normal(0, 0.2, 8),
         "c2.w": rng.normal(0, 0.3, (6, 3, 3, 8)),
         "d.w": rng.normal(0, 0.2, (5, 6))}
    t = {k: np.asarray(v, np.float32) for k, v in t.items()}
    layers = [
        {"type": "affine", "name": "bn0", "scale": "bn0.s", "bias": "bn0.b"},
        {"type": "conv2d", "name": "c1", "weight": "c1.w", "bias": "c1.b", "stride": 2, "padding": 1,
         "beta_w": 1, "beta_a": 1, "relu": False},
        {"type": "avgpool", "kernel": 2, "stride": 1},
        {"type": "affine", "name": "bn1", "scale": "bn1.s", "bias": "bn1.b"},
        {"type": "maxpool", "kernel": 2, "stride": 1},
        {"type": "relu"},
        {"type": "conv2d", "name": "c2", "weight": "c2.w", "bias": None, "stride": 1, "padding": 1,
         "beta_w": 8, "beta_a": 4},
        {"type": "maxpool", "kernel": 3, "stride": 2},
        {"type": "flatten"},
        {"type": "dense", "name": "d", "weight": "d.w", "bias": None, "beta_w": None, "beta_a": None},
    ]
    graph = {"arch": "misc", "input": {"shape": [11, 9, 3], "mean": [0.5], "std": [0.25]},
             "labels": list("abcde"), "layers": layers}
    return graph, t


def test_unfused_layers_equal_the_reference(tmp_path):
    graph, tensors = _misc_graph()
    path = _save(tmp_path, graph, tensors)
    it = Interpreter(path)
    x = np.random.default_rng(5).normal(size=(4, 11, 9, 3)).astype(np.float32)
    ref = reference_forward(path, x)
    it.resize_tensor_input(0, [4, 11, 9, 3])
    it.set_tensor(0, x)
    it.invoke()
    _close(it.get_tensor(it.get_output_details()[0]["index"]), ref)
    # no softmax in the graph: predict() turns the logits into probabilities
    p = it.predict(x)
    e = np.exp(ref - ref.max(axis=1, keepdims=True))
    np.testing.assert_allclose(p, e / e.sum(axis=1, keepdims=True), rtol=1e-3, atol=1e-5)


def test_predict_batches_frames_and_uint8(tmp_path):
    graph, tensors = random_lenet(16, 2, seed=8)
    path = _save(tmp_path, graph, tensors)
    it = Interpreter(path)
    rng = np.random.default_rng(9)
    pixels = rng.integers(0, 256, (70, 28, 28), dtype=np.uint8)  # > one predict chunk
    x = ((pixels.astype(np.float32) / 255 - 0.2860) / 0.3530)[..., None]
    ref = reference_forward(path, x)
    p = it.predict(pixels)
    assert p.shape == (70, 10)
    _close(p, ref)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    _close(it.predict(pixels[3]), ref[3])                      # (H, W) uint8 frame
    _close(it.predict(x[5]), ref[5])                           # (H, W, C) float frame
    _close(it.predict(x[:2].astype(np.float64)), ref[:2])      # float64 is accepted for predict
    np.testing.assert_allclose(it.preprocess(pixels[0]), x[0], rtol=1e-6, atol=1e-6)
    assert it.labels[9] == "Ankle boot" and it.input_spec["shape"] == [28, 28, 1]


def test_invoke_does_not_allocate(tmp_path):
    graph, tensors = random_lenet(16, 2, seed=1)
    it = Interpreter(_save(tmp_path, graph, tensors))
    it.set_tensor(0, np.ones((1, 28, 28, 1), np.float32))
    out = it.tensor(it.get_output_details()[0]["index"])()
    for _ in range(5):
        it.invoke()
    tracemalloc.start()
    try:
        it.invoke()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            it.invoke()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 4096
    assert it.tensor(it.get_output_details()[0]["index"])() is out  # same buffer, reused


def test_packed_weights_are_used_from_the_file_without_copies(tmp_path):
    it = Interpreter(_save(tmp_path, *random_lenet(16, 2)))
    pw = it._weights["conv2"]
    assert pw is it.model.weights["conv2"]
    assert pw.bits is it.model.tensors["conv2.weight.bits"]
    base = pw.bits
    while isinstance(base, np.ndarray):
        base = base.base
    assert isinstance(getattr(base, "obj", base), mmap.mmap)


def test_num_threads_reaches_the_kernels(tmp_path, monkeypatch):
    seen = []

    def spy(fn):
        def wrapper(*args, **kwargs):
            seen.append(args[-1])  # threads is the last positional argument in the runtime's calls
            return fn(*args, **kwargs)
        return wrapper

    # the runtime validates and binds each layer once, through the prepare_* entry points
    monkeypatch.setattr(cy_kernels, "prepare_conv2d", spy(cy_kernels.prepare_conv2d))
    monkeypatch.setattr(cy_kernels, "prepare_linear", spy(cy_kernels.prepare_linear))
    it = Interpreter(_save(tmp_path, *random_lenet(16, 2)), num_threads=3)
    it.invoke()
    assert seen == [3, 3, 3, 3]


def test_details_look_like_tflite(tmp_path):
    it = Interpreter(_save(tmp_path, *random_lenet(16, 2)))
    (inp,), (out,) = it.get_input_details(), it.get_output_details()
    assert inp["index"] == 0 and inp["dtype"] is np.float32 and list(inp["shape"]) == [1, 28, 28, 1]
    assert list(inp["shape_signature"]) == [-1, 28, 28, 1] and inp["quantization"] == (0.0, 0)
    assert inp["mean"] == [0.2860] and inp["layout"] == "NHWC"
    assert out["name"] == "probabilities" and list(out["shape"]) == [1, 10] and len(out["labels"]) == 10
    names = [d["name"] for d in it.get_tensor_details()]
    assert names[0] == "input" and "conv2" in names and "bn2" not in names  # BN fused into conv2


@pytest.mark.parametrize("value, message", [
    (np.zeros((1, 28, 28), np.float32), "shape"),
    (np.zeros((2, 28, 28, 1), np.float32), "shape"),
    (np.zeros((1, 28, 28, 1), np.float64), "float32"),
    (np.zeros((1, 28, 28, 1), np.uint8), "float32"),
    ([[0.0]], "ndarray"),
    (np.full((1, 28, 28, 1), np.nan, np.float32), "NaN"),
    (np.full((1, 28, 28, 1), np.inf, np.float32), "inf"),
])
def test_set_tensor_rejects_bad_input(tmp_path, value, message):
    it = Interpreter(_save(tmp_path, *random_lenet(16, 2)))
    with pytest.raises(ValueError, match=message):
        it.set_tensor(0, value)
    it.invoke()  # still usable
    assert np.isfinite(it.get_tensor(it.get_output_details()[0]["index"])).all()


@pytest.mark.parametrize("value, message", [
    (np.zeros((28, 27), np.uint8), "shape"),
    (np.zeros((28, 28, 3), np.float32), "shape"),
    (np.zeros((0, 28, 28), np.uint8), "empty"),
    (np.zeros((28, 28), np.int32), "uint8"),
    (np.full((28, 28), np.nan, np.float32), "NaN"),
    ("frame", "ndarray"),
])
def test_predict_rejects_bad_input(tmp_path, value, message):
    it = Interpreter(_save(tmp_path, *random_lenet(16, 2)))
    with pytest.raises(ValueError, match=message):
        it.predict(value)


def test_bad_indices_threads_and_models(tmp_path):
    path = _save(tmp_path, *random_lenet(16, 2))
    it = Interpreter(path)
    with pytest.raises(ValueError, match="index"):
        it.set_tensor(3, np.zeros((1, 28, 28, 1), np.float32))
    with pytest.raises(ValueError, match="tensor index"):
        it.get_tensor(999)
    with pytest.raises(ValueError, match="B >= 1"):
        it.resize_tensor_input(0, [2, 28, 28, 3])
    with pytest.raises(ValueError, match="num_threads"):
        Interpreter(path, num_threads=0)
    blob = path.read_bytes()
    path.write_bytes(blob[:-10])
    with pytest.raises(ModelFormatError):
        Interpreter(path)


def test_reference_mode_runs_the_bundled_model_like_the_kernels():
    """Interpreter(reference=True): the triage path for a wrong answer on a board."""
    from hbnn.bundled import BUNDLED_CLIP, BUNDLED_MODEL

    images = np.load(BUNDLED_CLIP)["images"][:40]
    fast, slow = Interpreter(BUNDLED_MODEL), Interpreter(BUNDLED_MODEL, reference=True)
    assert "reference=True" in repr(slow) and slow.reference and not fast.reference
    p, q = fast.predict(images), slow.predict(images)
    _close(p, q)
    assert (p.argmax(axis=1) == q.argmax(axis=1)).all()

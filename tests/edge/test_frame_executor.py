"""The whole-frame executor: same results at any thread count and as the per-op path; a robust pool.

Comparisons are bit for bit (``np.array_equal``) everywhere, not only where the math is integer:
the executor runs the same kernels on the same fixed tiles as the per-op path (the float GEMMs too),
so the summation order never depends on the thread count. Against the NumPy reference (float64)
the float tolerance of test_interpreter applies.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import cy_kernels
from edge import Interpreter
from edge.format import write_hbn
from model_fakes import reference_forward

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "hbnn", "models")

# The bench networks (converters.zoo, without torch): (name, out channels, kernel, padding) convs,
# ("pool", k), ("flatten",), ("fc", name, outputs). As exported: the first and last layers full
# precision, every inner layer BN (affine) -> binarized conv/dense -> ReLU.
ARCHS = {
    "lenet": ((28, 28, 1), [("conv", "conv1", 20, 5, 0), ("pool", 2), ("conv", "conv2", 50, 5, 0), ("pool", 2),
                            ("flatten",), ("fc", "fc1", 500), ("fc", "fc2", 10)]),
    "alexnet": ((32, 32, 3), [("conv", "conv1", 128, 3, 1), ("conv", "conv2", 128, 3, 1), ("pool", 2),
                              ("conv", "conv3", 256, 3, 1), ("conv", "conv4", 256, 3, 1), ("pool", 2),
                              ("conv", "conv5", 512, 3, 1), ("conv", "conv6", 512, 3, 1), ("pool", 2),
                              ("flatten",), ("fc", "fc1", 1024), ("fc", "fc2", 1024), ("fc", "fc3", 10)]),
}
BETAS = [(16, 16), (None, None), (16, 2), (1, 1)]


def zoo_graph(arch, beta_w, beta_a, seed=0):
    rng = np.random.default_rng(seed)
    (h, w, c), plan = ARCHS[arch]
    convs = [p for p in plan if p[0] in ("conv", "fc")]
    layers, t = [], {}
    for p in plan:
        if p[0] == "pool":
            layers.append({"type": "maxpool", "kernel": p[1], "stride": p[1]})
            h, w = h // p[1], w // p[1]
            continue
        if p[0] == "flatten":
            layers.append({"type": "flatten"})
            c, h, w = h * w * c, 1, 1
            continue
        name, first, last = p[1], p is convs[0], p is convs[-1]
        if not first:  # the BatchNorm before a binarized layer, folded to an affine
            t[f"{name}.bn.s"] = rng.uniform(0.5, 2.0, c).astype(np.float32)
            t[f"{name}.bn.b"] = rng.normal(0, 0.3, c).astype(np.float32)
            layers.append({"type": "affine", "name": f"{name}.bn", "scale": f"{name}.bn.s", "bias": f"{name}.bn.b"})
        bw, ba = (1, 1) if first or last else (beta_w, beta_a)
        out = p[2]
        if p[0] == "conv":
            k = p[3]
            t[f"{name}.w"] = rng.normal(0, (k * k * c) ** -0.5, (out, k, k, c)).astype(np.float32)
            layers.append({"type": "conv2d", "name": name, "weight": f"{name}.w", "bias": f"{name}.b",
                           "stride": 1, "padding": p[4], "beta_w": bw, "beta_a": ba, "relu": not last})
            h, w = h + 2 * p[4] - k + 1, w + 2 * p[4] - k + 1
        else:
            t[f"{name}.w"] = rng.normal(0, c ** -0.5, (out, c)).astype(np.float32)
            layers.append({"type": "dense", "name": name, "weight": f"{name}.w", "bias": f"{name}.b",
                           "beta_w": bw, "beta_a": ba, "relu": not last})
        t[f"{name}.b"] = rng.normal(0, 0.1, out).astype(np.float32)
        c = out
    layers.append({"type": "softmax"})
    shape = list(ARCHS[arch][0])
    graph = {"arch": arch, "labels": [str(i) for i in range(c)], "layers": layers,
             "input": {"shape": shape, "layout": "NHWC", "pixel_scale": 1 / 255, "mean": [0.5], "std": [0.25]}}
    return graph, t


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("frame-models")


def _model(model_dir, arch, betas):
    path = model_dir / f"{arch}-{betas[0]}-{betas[1]}.hbn"
    if not path.exists():
        write_hbn(path, *zoo_graph(arch, *betas))
    return path


def _tensors(it):
    return [it.get_tensor(i) for i in range(len(it.get_tensor_details()))]


def _arch_betas():
    """Every (arch, betas) pair; under emulation AlexNet runs at (inf,inf) only (the other three took
    4 of the emulated suite's minutes): LeNet covers every beta path there, the kernel grid every shape."""
    for arch in ("lenet", "alexnet"):
        for b in BETAS:
            marks = [pytest.mark.slow] if arch == "alexnet" and b != (None, None) else []
            yield pytest.param(arch, b, marks=marks, id=f"{arch}-{b[0]}-{b[1]}".replace("None", "inf"))


@pytest.mark.parametrize("arch, betas", list(_arch_betas()))
def test_executor_is_bit_identical_at_1_2_3_threads_and_to_the_per_op_path(model_dir, arch, betas):
    path = _model(model_dir, arch, betas)
    shape = ARCHS[arch][0]
    x = np.random.default_rng(3).normal(size=(1,) + shape).astype(np.float32)
    per_op = Interpreter(path, per_op=True)
    assert per_op._plan.executor is None
    per_op.set_tensor(0, x)
    per_op.invoke()
    want = _tensors(per_op)  # every layer's output, not only the last
    ref = reference_forward(path, x)  # Interpreter(reference=True): the NumPy reference kernels
    np.testing.assert_allclose(want[-1], ref, rtol=1e-4, atol=1e-5)  # the float tolerance vs float64
    for threads in (1, 2, 3):
        it = Interpreter(path, num_threads=threads)
        ex = it._plan.executor
        assert ex is not None
        it.set_tensor(0, x)
        for _ in range(6):  # the first frames run on the caller alone (to measure), the next on the pool
            it.invoke()
            got = _tensors(it)
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), f"{threads} threads"
        info = ex.info()
        assert info["frames"] == 6 and info["threads"] == threads
        if threads > 1 and info["parallel_ops"]:
            assert info["pool_threads"] == threads and info["parallel_frames"] >= 1


@pytest.mark.parametrize("betas", [(64, 64), (16, 16), (1, 1)])
def test_batches_and_unfused_steps_match_the_per_op_path(model_dir, betas):
    """predict() batches, the bundled model, and a graph with a standalone affine and ReLU."""
    path = _model(model_dir, "lenet", betas)
    pixels = np.random.default_rng(4).integers(0, 256, (70, 28, 28), dtype=np.uint8)
    want = Interpreter(path, per_op=True).predict(pixels)
    for threads in (1, 3):
        assert np.array_equal(Interpreter(path, num_threads=threads).predict(pixels), want)
    bundled = os.path.join(MODELS, "lenet-fmnist-bw16-ba2.hbn")
    want = Interpreter(bundled, per_op=True).predict(pixels[:9])
    assert np.array_equal(Interpreter(bundled, num_threads=2).predict(pixels[:9]), want)


def test_standalone_affine_and_relu_follow_numpy_exactly(tmp_path):
    """An affine that cannot fuse (before a pool) and a ReLU after a pool: values (NaN too) as numpy."""
    rng = np.random.default_rng(5)
    t = {"s": rng.uniform(-2, 2, 6).astype(np.float32), "b": rng.normal(0, 1, 6).astype(np.float32),
         "c.w": rng.normal(0, 0.3, (6, 3, 3, 2)).astype(np.float32), "d.w": rng.normal(0, 0.2, (3, 24)).astype(np.float32)}
    layers = [{"type": "conv2d", "name": "c", "weight": "c.w", "bias": None, "stride": 1, "padding": 1,
               "beta_w": 1, "beta_a": 1},
              {"type": "affine", "name": "bn", "scale": "s", "bias": "b"},
              {"type": "maxpool", "kernel": 2, "stride": 2}, {"type": "relu"}, {"type": "flatten"},
              {"type": "dense", "name": "d", "weight": "d.w", "bias": None, "beta_w": 1, "beta_a": 1}]
    graph = {"arch": "misc", "labels": list("abc"), "layers": layers,
             "input": {"shape": [4, 4, 2], "layout": "NHWC", "pixel_scale": 1.0, "mean": [0.0], "std": [1.0]}}
    path = tmp_path / "m.hbn"
    write_hbn(path, graph, t)
    x = rng.normal(size=(2, 4, 4, 2)).astype(np.float32)
    outs = []
    for kwargs in ({"per_op": True}, {"num_threads": 1}, {"num_threads": 3}):
        it = Interpreter(path, **kwargs)
        it.resize_tensor_input(0, [2, 4, 4, 2])
        it.set_tensor(0, x)
        it.invoke()
        outs.append(_tensors(it))
    for other in outs[1:]:
        assert all(np.array_equal(a, b) for a, b in zip(other, outs[0]))
    # the C ReLU and affine on values numpy treats specially
    src = np.array([[np.nan, -0.0, 0.0, -1.5, 2.0, -np.inf]], np.float32)
    out = np.empty_like(src)
    ex = cy_kernels.frame_executor([_Step(("relu", src, out))], 2)
    ex.run()
    assert np.array_equal(out, np.maximum(src, np.float32(0)), equal_nan=True)
    assert not np.signbit(out[0, 1])  # -0.0 -> +0.0 (numpy's sign of that zero differs by platform)
    scale, bias = np.arange(6, dtype=np.float32) - 2.5, np.full(6, 0.1, np.float32)
    cy_kernels.frame_executor([_Step(("affine", src, out, scale, bias))], 1).run()
    assert np.array_equal(out, src * scale + bias, equal_nan=True)


class _Step:
    """A plan op as the interpreter builds them: a callable with a frame_step."""

    def __init__(self, frame_step):
        self.frame_step = frame_step

    def __call__(self):
        raise AssertionError("the executor runs the step in C")


def _threads_now():
    return len(os.listdir("/proc/self/task")) if sys.platform.startswith("linux") else None


def test_pools_start_and_stop_many_times_without_leaking_threads(model_dir):
    path = _model(model_dir, "lenet", (16, 16))
    x = np.random.default_rng(6).normal(size=(1, 28, 28, 1)).astype(np.float32)
    want = None
    before = _threads_now()
    for i in range(60):
        it = Interpreter(path, num_threads=2 + i % 3)
        it.set_tensor(0, x)
        it.invoke()
        y = it.get_tensor(it.get_output_details()[0]["index"])
        want = y if want is None else want
        assert np.array_equal(y, want)
        if i % 20 == 0 and before is not None:
            assert _threads_now() >= before  # its workers are up while it lives
        del it
    # executors started and dropped at once (before their workers are even scheduled), many times
    src = np.linspace(-1, 1, 1 << 16, dtype=np.float32)
    out = np.empty_like(src)
    for i in range(300):
        ex = cy_kernels.frame_executor([_Step(("relu", src, out))], 2 + i % 3)
        if i % 2:
            ex.run()
        del ex
    assert np.array_equal(out, np.maximum(src, 0))
    if before is not None:
        assert _threads_now() == before  # every worker joined


def test_bad_steps_are_errors_not_crashes():
    a = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="threads"):
        cy_kernels.frame_executor([], 0)
    assert cy_kernels.frame_executor([lambda: None], 2) is None  # unknown step: run the ops one by one
    from cy_kernels._xhbnn import FrameExecutor
    with pytest.raises(TypeError, match="frame_step"):
        FrameExecutor([_Step(("conv", a))], 2)
    with pytest.raises(ValueError, match="float32"):
        FrameExecutor([_Step(("relu", a.astype(np.float64), a))], 2)
    with pytest.raises(ValueError, match="same|one size"):
        FrameExecutor([_Step(("relu", a, np.zeros(5, np.float32)))], 2)
    with pytest.raises(ValueError, match="last axis"):
        FrameExecutor([_Step(("affine", a, a, np.ones(2, np.float32), np.ones(3, np.float32)))], 2)
    empty = cy_kernels.frame_executor([], 3)  # no steps: a frame that does nothing
    empty.run()
    assert empty.info()["frames"] == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
def test_a_forked_child_runs_frames_without_the_parents_workers(model_dir):
    path = _model(model_dir, "alexnet", (None, None))
    it = Interpreter(path, num_threads=3)
    x = np.random.default_rng(7).normal(size=(1, 32, 32, 3)).astype(np.float32)
    it.set_tensor(0, x)
    it.invoke()
    want = it.get_tensor(it.get_output_details()[0]["index"])
    pid = os.fork()
    if pid == 0:  # the child: its copy of the pool has no threads; frames must still complete
        code = 1
        try:
            for _ in range(3):
                it.invoke()
            code = 0 if np.array_equal(it.get_tensor(it.get_output_details()[0]["index"]), want) else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0

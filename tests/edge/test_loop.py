"""The inference loop: results, stats, bad frames, latest-frame-wins, and the real runtime."""
from __future__ import annotations

import threading
import time
import tracemalloc

import numpy as np
import pytest

from edge.loop import InferenceLoop, LatencyWindow, LoopStats, _probabilities
from edge.sources import FrameSource, NpzSource, SyntheticSource
from edge_fakes import FakeInterpreter, FakeReporter, ListSource


def frames_of(values):
    return [np.full((28, 28), v, np.uint8) for v in values]


def test_results_stats_and_accuracy():
    loop = InferenceLoop(FakeInterpreter(), topk=3)
    values = [0, 1, 2, 3, 13, 5]
    src = ListSource(frames_of(values), labels=[0, 1, 2, 3, 4, 5])  # frame 13 -> class 3, label 4: wrong
    reporter, seen = FakeReporter(), []
    stats = loop.run(src, reporter=reporter, on_result=lambda r, f: seen.append((r, f)))
    assert stats.frames == 6 and stats.labelled == 6 and stats.correct == 5
    assert stats.accuracy() == pytest.approx(5 / 6)
    r = reporter.results[4]
    assert (r.class_id, r.label, r.sequence) == (3, "class3", 4)
    assert r.confidence == pytest.approx(0.82, abs=1e-6)
    assert [c for c, _ in r.topk][0] == 3 and len(r.topk) == 3
    assert [p for _, p in r.topk] == sorted((p for _, p in r.topk), reverse=True)
    assert r.latency_ms >= 0 and r.timestamp_us == seen[4][1].timestamp_us
    summary = stats.summary()
    assert summary["frames"] == 6 and summary["bad_frames"] == 0 and summary["accuracy"] == pytest.approx(5 / 6)
    assert set(summary["latency_ms"]) == {"p50", "p95", "p99"}
    line = stats.status_line()
    assert "fps" in line and "p95" in line and "dropped 0" in line and "acc 0.833" in line


def test_bad_frame_is_counted_and_skipped():
    images = frames_of([1, 2]) + [np.zeros((28, 28, 2), np.uint8), np.full((28, 28), np.nan)] + frames_of([4])
    reporter = FakeReporter()
    stats = InferenceLoop(FakeInterpreter()).run(ListSource(images), reporter=reporter)
    assert stats.frames == 3 and stats.bad_frames == 2
    assert [r.class_id for r in reporter.results] == [1, 2, 4]
    assert [r.sequence for r in reporter.results] == [0, 1, 2]


def test_max_frames_and_stop_event():
    loop = InferenceLoop(FakeInterpreter())
    assert loop.run(SyntheticSource((28, 28)), max_frames=7).frames == 7
    stop = threading.Event()
    src = ListSource(frames_of(range(50)), hooks={10: stop.set})
    assert loop.run(src, stop=stop).frames == 11  # the frame being read when stop was set still counts


def test_status_callback_is_called():
    calls = []
    InferenceLoop(FakeInterpreter()).run(ListSource(frames_of(range(5))), on_status=calls.append,
                                         status_interval=0.0)
    assert len(calls) == 5 and isinstance(calls[0], LoopStats)


class _FastLiveCamera(FrameSource):
    live = True
    spec = "fake:live"

    def read(self):
        if self._index >= 200:
            return None
        time.sleep(0.0005)
        return self._frame(np.full((28, 28), self._index % 10, np.uint8))


class _SlowInterpreter(FakeInterpreter):
    def invoke(self):
        time.sleep(0.004)
        super().invoke()


def test_live_source_runs_through_capture_thread_and_counts_drops():
    stats = InferenceLoop(_SlowInterpreter()).run(_FastLiveCamera())
    assert stats.frames < 200 and stats.dropped == 200 - stats.frames


def test_probabilities():
    np.testing.assert_allclose(_probabilities(np.array([0.0, 0.0])), [0.5, 0.5])
    np.testing.assert_allclose(_probabilities(np.array([0.25, 0.75])), [0.25, 0.75])
    assert _probabilities(np.array([1000.0, 0.0]))[0] == pytest.approx(1.0)
    np.testing.assert_allclose(_probabilities(np.array([2.0, 0.0]), is_softmax=True), [2.0, 0.0])


def test_latency_window_is_bounded():
    w = LatencyWindow(size=8)
    for i in range(100):
        w.add(float(i))
    assert w.count == 100
    assert w.percentiles([0, 100]) == [92.0, 99.0]  # only the last 8 are kept
    assert all(np.isnan(LatencyWindow().percentiles()))


# slow: tracemalloc sees Python allocations only, the same on every architecture (x86 runs it).
@pytest.mark.slow
def test_no_memory_growth_over_a_long_run():
    """tracemalloc over a short run: steady state must not keep anything per frame."""
    loop = InferenceLoop(FakeInterpreter())
    reporter = FakeReporter()
    reporter.report = lambda r: None  # keep nothing on the reporter side
    loop.run(SyntheticSource((48, 64, 3)), reporter=reporter, max_frames=300)  # warm-up: caches, plans
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        stats = loop.run(SyntheticSource((48, 64, 3)), reporter=reporter, max_frames=2000)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert stats.frames == 2000
    assert growth < 64 * 1024, f"grew by {growth} bytes over 2000 frames"


def _real_model(tmp_path, **kw):
    from edge.format import write_hbn
    from model_fakes import random_lenet
    graph, tensors = random_lenet(**kw)
    path = tmp_path / "lenet.hbn"
    write_hbn(str(path), graph, tensors)
    return path, graph, tensors


def test_real_interpreter_on_the_bundled_clip_matches_the_reference(tmp_path):
    path, graph, tensors = _real_model(tmp_path)
    from edge.interpreter import Interpreter
    from model_fakes import reference_forward
    loop = InferenceLoop(Interpreter(str(path)), topk=5)
    src = NpzSource("hbnn/models/fmnist-test-clip.npz").open()
    results = []
    stats = loop.run(src, on_result=lambda r, f: results.append(r), max_frames=20)
    assert stats.frames == 20 and stats.labelled == 20
    x = loop.pre.batch(list(src.images[:20]))
    ref = reference_forward(path, x)
    agree = np.mean([r.class_id == int(np.argmax(ref[i])) for i, r in enumerate(results)])
    assert agree >= 0.9  # binarized kernels may flip near-ties against the float reference
    assert results[0].label in graph["labels"] and len(results[0].topk) == 5


# slow: tracemalloc sees Python allocations only, the same on every architecture (x86 runs it).
@pytest.mark.slow
def test_no_memory_growth_with_the_real_runtime(tmp_path):
    path, _, _ = _real_model(tmp_path)
    from edge.interpreter import Interpreter
    loop = InferenceLoop(Interpreter(str(path)))
    sink = FakeReporter()
    sink.report = lambda r: None
    clip = "hbnn/models/fmnist-test-clip.npz"
    loop.run(NpzSource(clip, loop=True).open(), reporter=sink, max_frames=300)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        stats = loop.run(NpzSource(clip, loop=True).open(), reporter=sink, max_frames=1500)
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    growth = sum(s.size_diff for s in after.compare_to(before, "filename"))
    assert stats.frames == 1500 and growth < 64 * 1024, f"grew by {growth} bytes"

"""The inference loop: frames -> preprocess -> model -> result -> link, with running stats.

:class:`InferenceLoop` owns the per-model state (preprocessor, tensor indices, labels);
:meth:`InferenceLoop.step` takes one frame through the model to the link and the counters, the
same for every caller; :meth:`InferenceLoop.run` drives a whole source with it (``hbnn infer``,
the demo, the soak). The daemon calls :meth:`~InferenceLoop.step` too, and adds only supervision
around it: camera retries, reloads, the watchdog, and a model error that must not stop the service.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, List, Optional, Sequence

import numpy as np

from cy_kernels.reference import softmax
from firmware_bridge import InferenceResult  # the bridge's result type is what reporters accept

from .capture import LatestFrameGrabber
from .preprocess import BadFrameError, Preprocessor
from .sources import Frame, FrameSource


class LatencyWindow:
    """Latencies of the last ``size`` frames in a fixed ring buffer (no growth on long runs)."""

    def __init__(self, size: int = 4096):
        self._buf = np.zeros(size, np.float64)
        self.count = 0

    def add(self, ms: float) -> None:
        self._buf[self.count % len(self._buf)] = ms
        self.count += 1

    def percentiles(self, qs: Sequence[float] = (50, 95, 99)) -> List[float]:
        n = min(self.count, len(self._buf))
        if n == 0:
            return [math.nan] * len(qs)
        return [float(v) for v in np.percentile(self._buf[:n], qs)]


@dataclass
class LoopStats:
    """Counters of one run; ``status_line()`` for humans, ``summary()`` for --json and tests."""

    frames: int = 0          # frames inferred
    dropped: int = 0         # frames the capture thread overwrote before we got to them
    bad_frames: int = 0      # frames rejected by the preprocessor (counted, skipped)
    labelled: int = 0        # frames with ground truth (clips)
    correct: int = 0
    started: float = field(default_factory=time.monotonic)
    latency: LatencyWindow = field(default_factory=LatencyWindow)

    def fps(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.frames / elapsed if elapsed > 0 else 0.0

    def accuracy(self) -> Optional[float]:
        return self.correct / self.labelled if self.labelled else None

    def status_line(self) -> str:
        p50, p95, p99 = self.latency.percentiles()
        line = (f"frames {self.frames} | {self.fps():7.1f} fps | latency p50 {p50:.3f} p95 {p95:.3f} "
                f"p99 {p99:.3f} ms | dropped {self.dropped} | bad {self.bad_frames}")
        acc = self.accuracy()
        return line + (f" | acc {acc:.3f}" if acc is not None else "")

    def summary(self) -> dict:
        p50, p95, p99 = self.latency.percentiles()
        return {"frames": self.frames, "dropped": self.dropped, "bad_frames": self.bad_frames,
                "fps": round(self.fps(), 2), "latency_ms": {"p50": p50, "p95": p95, "p99": p99},
                "accuracy": self.accuracy(), "labelled": self.labelled,
                "elapsed_s": round(time.monotonic() - self.started, 3)}


def bad_frame_worth_logging(count: int) -> bool:
    """Say why the first few frames were rejected, then every 100th: a broken camera must not flood the log."""
    return count <= 5 or count % 100 == 0


def _probabilities(y: np.ndarray, is_softmax: Optional[bool] = None) -> np.ndarray:
    """The model's output as probabilities: kept if it already is a softmax, else softmaxed."""
    y = np.asarray(y, np.float64).reshape(-1)
    if is_softmax is None:  # the runtime did not say: a distribution already sums to 1
        is_softmax = bool(y.min() >= 0.0 and abs(y.sum() - 1.0) < 1e-3)
    return y if is_softmax else softmax(y)


class InferenceLoop:
    """One model, ready to turn frames into results. ``interpreter`` is an ``edge.Interpreter``."""

    def __init__(self, interpreter, *, topk: int = 3, crop: str = "center"):
        self.interpreter = interpreter
        interpreter.allocate_tensors()
        self.pre = Preprocessor(interpreter.input_spec, crop=crop)
        self._in = interpreter.get_input_details()[0]["index"]
        self._out = interpreter.get_output_details()[0]["index"]
        self.labels = list(getattr(interpreter, "labels", None) or [])
        self.topk = max(1, int(topk))
        self._softmax = getattr(interpreter, "ends_in_softmax", None)
        self.sequence = 0

    def label_of(self, class_id: int) -> str:
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)

    def infer(self, frame: Frame) -> InferenceResult:
        """Preprocess + invoke one frame. Raises BadFrameError for an unusable frame.

        ``latency_ms`` is capture-to-result (what the autopilot cares about): for a camera it
        includes the wait in the capture slot, for a file it is the processing time.
        """
        x = frame.tensor if getattr(frame, "tensor", None) is not None else self.pre(frame.image)  # edge.prefetch
        self.interpreter.set_tensor(self._in, x)
        self.interpreter.invoke()
        probs = _probabilities(self.interpreter.get_tensor(self._out), self._softmax)
        k = min(self.topk, probs.size)
        top = np.argpartition(-probs, k - 1)[:k]
        top = top[np.argsort(-probs[top])]
        latency_ms = max(0.0, (time.monotonic_ns() // 1000 - frame.timestamp_us) / 1e3)
        class_id = int(top[0])
        result = InferenceResult(
            sequence=self.sequence & 0xFFFFFFFF, timestamp_us=int(frame.timestamp_us), class_id=class_id,
            confidence=float(probs[class_id]), topk=[(int(i), float(probs[i])) for i in top],
            latency_ms=latency_ms, label=self.label_of(class_id))
        self.sequence += 1
        return result

    def step(self, frame: Frame, stats: LoopStats, reporter=None,
             on_bad_frame: Optional[Callable[[Frame, BadFrameError], None]] = None) -> Optional[InferenceResult]:
        """One frame: infer, count it in ``stats``, send the result to ``reporter``; the result.

        An unusable frame (BadFrameError) is counted in ``stats.bad_frames``, handed to
        ``on_bad_frame`` and skipped (None). Anything else the model raises propagates.
        """
        try:
            result = self.infer(frame)
        except BadFrameError as exc:
            stats.bad_frames += 1
            if on_bad_frame is not None:
                on_bad_frame(frame, exc)
            return None
        stats.frames += 1
        stats.latency.add(result.latency_ms)
        if frame.label is not None:
            stats.labelled += 1
            stats.correct += int(result.class_id == frame.label)
        if reporter is not None:
            reporter.report(result)
        return result

    def run(self, source: FrameSource, *, reporter=None,
            on_result: Optional[Callable[[InferenceResult, Frame], None]] = None,
            on_status: Optional[Callable[[LoopStats], None]] = None, status_interval: float = 1.0,
            on_bad_frame: Optional[Callable[[Frame, BadFrameError], None]] = None,
            max_frames: Optional[int] = None, latest_frame_wins: Optional[bool] = None,
            stop: Optional[threading.Event] = None, frame_timeout: float = 10.0) -> LoopStats:
        """Run until the source ends, ``max_frames`` results, or ``stop`` is set.

        Live sources go through a capture thread (latest frame wins) unless
        ``latest_frame_wins`` says otherwise; files are read in order, every frame.
        """
        stats = LoopStats()
        threaded = source.live if latest_frame_wins is None else latest_frame_wins
        grabber = LatestFrameGrabber(source).start() if threaded else None
        next_status = time.monotonic() + status_interval
        try:
            while max_frames is None or stats.frames < max_frames:
                if stop is not None and stop.is_set():
                    break
                frame = grabber.get(frame_timeout) if grabber else source.read()
                if grabber:
                    stats.dropped = grabber.dropped
                if frame is None:
                    break
                result = self.step(frame, stats, reporter, on_bad_frame)
                if result is None:
                    continue
                if on_result is not None:
                    on_result(result, frame)
                if on_status is not None and time.monotonic() >= next_status:
                    on_status(stats)
                    next_status = time.monotonic() + status_interval
        finally:
            if grabber:
                grabber.stop()
                stats.dropped = grabber.dropped
        return stats

"""Small stand-ins for the runtime, the link and cameras, shared by the edge loop/daemon tests.

FakeInterpreter speaks the TFLite-style API of edge.Interpreter. Its "model" reads the class
from the first input pixel (spec: pixel_scale 1, mean 0, std 1), so a frame filled with k is
classified as k % 10 - exact, deterministic answers for the loop's bookkeeping.
"""
from __future__ import annotations

import threading

import numpy as np

from edge.daemon import SystemdNotifier
from edge.sources import CameraUnavailable, FrameSource

LABELS = [f"class{i}" for i in range(10)]


class FakeInterpreter:
    ends_in_softmax = True

    def __init__(self, path="fake.hbn", num_threads=1, fail=False):
        self.path, self.num_threads, self.fail = path, num_threads, fail
        self.input_spec = {"shape": [28, 28, 1], "layout": "NHWC", "pixel_scale": 1.0, "mean": [0.0], "std": [1.0]}
        self.labels = list(LABELS)
        self._x = np.zeros((1, 28, 28, 1), np.float32)
        self._y = np.zeros((1, 10), np.float32)
        self.invokes = 0

    def allocate_tensors(self):
        pass

    def get_input_details(self):
        return [{"index": 0, "shape": np.array([1, 28, 28, 1])}]

    def get_output_details(self):
        return [{"index": 1, "shape": np.array([1, 10])}]

    def set_tensor(self, index, value):
        assert index == 0
        self._x[...] = value

    def invoke(self):
        if self.fail:
            raise RuntimeError("kernel exploded")
        self.invokes += 1
        k = int(self._x[0, 0, 0, 0]) % 10
        self._y[...] = 0.02
        self._y[0, k] = 0.82
        self._y[0, (k + 1) % 10] = 0.0

    def get_tensor(self, index):
        assert index == 1
        return self._y.copy()


class FakeReporter:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs
        self.results, self.texts = [], []
        self.closed = False
        self.lock = threading.Lock()

    def report(self, result):
        assert not self.closed, "report() after close()"
        with self.lock:
            self.results.append(result)

    def status_text(self, text, severity="info"):
        self.texts.append(text)

    def stats(self):
        return {"sent": len(self.results)}

    def close(self):
        self.closed = True


class ListSource(FrameSource):
    """Frames from a list; ``hooks`` maps a frame index to a callable run when it is read."""

    def __init__(self, images, labels=None, hooks=None, live=False):
        super().__init__()
        self.images, self.labels, self.hooks, self.live = list(images), labels, hooks or {}, live
        self.spec = "fake:list"
        self.opened = self.closed = 0

    def open(self):
        self.opened += 1
        return self

    def read(self):
        i = self._index
        if i in self.hooks:
            self.hooks[i]()
        if i >= len(self.images):
            return None
        return self._frame(self.images[i], None if self.labels is None else self.labels[i])

    def close(self):
        self.closed += 1


class FlakyCamera(FrameSource):
    """A camera that vanishes: the Nth open() calls in ``fail_opens`` fail, reads fail after ``lose_after``."""

    live = False
    spec = "fake:flaky"
    opens = 0

    def __init__(self, fail_opens=(), lose_after=None, value=3):
        super().__init__()
        self.fail_opens, self.lose_after, self.value = set(fail_opens), lose_after, value

    def open(self):
        FlakyCamera.opens += 1
        if FlakyCamera.opens in self.fail_opens:
            raise CameraUnavailable(f"Expected /dev/video0, got no such device (open #{FlakyCamera.opens})")
        return self

    def read(self):
        if self.lose_after is not None and self._index >= self.lose_after:
            raise CameraUnavailable("Expected a frame, got USB disconnect")
        return self._frame(np.full((28, 28), self.value, np.uint8))


class Recorder(SystemdNotifier):
    """A systemd notifier that records its messages instead of sending them."""

    def __init__(self):
        super().__init__(env={})
        self.messages = []

    def notify(self, message):
        self.messages.append(message)
        return True

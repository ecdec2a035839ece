"""Pipelining for the frame loop: capture and preprocess frame n+1 while frame n runs.

:class:`PrefetchSource` wraps any :class:`~edge.sources.FrameSource`. A background thread reads
the next frame and runs the preprocessor on it (NumPy releases the GIL for the resize and the
normalisation, the kernels release it for the whole frame), handing over at most one frame ahead.
The frames it yields carry their model input in ``frame.tensor``; ``InferenceLoop.infer`` uses it
instead of preprocessing again. Results are the same as without the wrapper (same preprocessor,
same frames, same order). Live sources keep going through the loop's latest-frame-wins grabber,
which now receives frames already preprocessed.

    source = PrefetchSource(open_source(spec).open(), Preprocessor(interp.input_spec)).open()
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .errors import BadFrameError
from .sources import Frame, FrameSource


@dataclass
class PreparedFrame(Frame):
    tensor: Optional[np.ndarray] = None  # the preprocessed model input; None: preprocess in the loop


class PrefetchSource(FrameSource):
    """``source`` read one frame ahead on a thread, each frame preprocessed there by ``prepare``.

    ``prepare`` must be this wrapper's own (a ``Preprocessor`` reuses its output buffer; the wrapper
    copies each result, so a frame's tensor stays valid while the next one is prepared). A frame
    ``prepare`` rejects is passed on without a tensor: the loop's own preprocessor then raises the
    same BadFrameError where the loop counts bad frames. A source error is re-raised by ``read()``.
    """

    def __init__(self, source: FrameSource, prepare: Callable[[np.ndarray], np.ndarray]):
        super().__init__()
        self.source, self.prepare = source, prepare
        self.live, self.spec = source.live, source.spec
        self._cond = threading.Condition()
        self._next: Optional[Frame] = None
        self._ready = False          # _next holds a frame (or the end: None)
        self._error: Optional[BaseException] = None
        self._stop = False
        self._ended = False          # the end of stream was handed out: read() keeps returning None
        self._thread: Optional[threading.Thread] = None

    def open(self) -> "PrefetchSource":
        """Start the prefetch thread (the wrapped source is opened by its owner, once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="hbnn-prefetch", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while True:
                frame = self.source.read()
                if frame is not None:
                    frame = self._prepared(frame)
                with self._cond:
                    self._cond.wait_for(lambda: not self._ready or self._stop)
                    if self._stop:
                        return
                    self._next, self._ready = frame, True
                    self._cond.notify_all()
                if frame is None:
                    return
        except BaseException as exc:  # handed to read(), never lost in the thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def _prepared(self, frame: Frame) -> PreparedFrame:
        try:
            tensor = np.array(self.prepare(frame.image), dtype=np.float32, copy=True)
        except BadFrameError:
            tensor = None
        return PreparedFrame(frame.image, frame.index, frame.timestamp_us, frame.label, tensor)

    def read(self) -> Optional[Frame]:
        if self._thread is None:
            self.open()
        with self._cond:
            self._cond.wait_for(lambda: self._ready or self._error is not None or self._ended)
            if self._ready:
                frame, self._next, self._ready = self._next, None, False
                self._ended = frame is None
                self._cond.notify_all()
                return frame
            if self._ended:
                return None
            raise self._error

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(2.0)
        self.source.close()

    def __getattr__(self, name):
        # clip facts of the wrapped source (class_names, labels, len) stay reachable
        if name == "source":
            raise AttributeError(name)
        return getattr(self.source, name)

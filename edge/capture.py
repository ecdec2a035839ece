"""Capture thread for live sources: only the newest frame is kept ("latest frame wins").

A camera keeps producing frames whether or not the model keeps up; queueing them would
make every result older than the last. The thread overwrites a one-frame slot instead and
counts what it overwrote as dropped.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from .sources import Frame, FrameSource


class LatestFrameGrabber:
    """Capture thread that keeps only the newest frame ("latest frame wins").

    ``get()`` returns a frame not handed out before, waiting for one if needed; frames
    overwritten before anyone took them count as ``dropped``. A source error ends the
    thread and is re-raised by the next ``get()``; end of stream makes ``get()`` return None.
    """

    def __init__(self, source: "FrameSource"):
        self.source = source
        self.dropped = 0
        self._cond = threading.Condition()
        self._latest: Optional["Frame"] = None
        self._error: Optional[BaseException] = None
        self._ended = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hbnn-capture", daemon=True)

    def start(self) -> "LatestFrameGrabber":
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                frame = self.source.read()
                with self._cond:
                    if frame is None:
                        self._ended = True
                    elif self._latest is not None:
                        self.dropped += 1
                    self._latest = frame if frame is not None else self._latest
                    self._cond.notify_all()
                if frame is None:
                    return
        except BaseException as exc:  # handed to the consumer, never lost in the thread
            with self._cond:
                self._error = exc
                self._cond.notify_all()

    def get(self, timeout: Optional[float] = None) -> Optional["Frame"]:
        """Newest unseen frame; None at end of stream. Raises TimeoutError or the source's error."""
        with self._cond:
            ready = self._cond.wait_for(
                lambda: self._latest is not None or self._error is not None or self._ended, timeout)
            if not ready:
                raise TimeoutError(f"Expected a frame from {self.source.spec!r} within {timeout} s, got none")
            if self._latest is not None:
                frame, self._latest = self._latest, None
                return frame
            if self._error is not None:
                raise self._error
            return None

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

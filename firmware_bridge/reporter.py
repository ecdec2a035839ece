"""The reporter: sends results to the flight controller without ever blocking inference.

``report()`` only appends to a small bounded queue under a lock and pokes the
I/O thread (``linkloop.py``); when the queue is full the oldest result is
dropped, so the newest wins. Results reported while the link is down are
dropped at once and counted: a stale detection is worse than none. Status
texts are kept across an outage (bounded) and sent after reconnecting.
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, Optional, Tuple

from .errors import BridgeError, LinkConfigError, InvalidResultError
from .linkloop import LinkLoop
from .protocols import make_protocol
from .results import InferenceResult, severity_value
from .transport import link_exceptions, open_port, split_url

PEER_TIMEOUT_S = 3.0   # no autopilot HEARTBEAT for this long: peer_alive goes False

_COUNTERS = ("results_in", "results_sent", "messages", "bytes", "heartbeats", "status_sent",
             "drops_queue_full", "drops_rate_limited", "drops_link_down", "drops_write", "drops_on_close",
             "status_dropped", "status_suppressed", "reconnects", "link_errors", "write_timeouts",
             "rx_bytes", "rx_messages", "rx_errors", "rx_bad_signatures", "peer_heartbeats",
             "callback_errors", "queue_max")
_DROPS = ("drops_queue_full", "drops_rate_limited", "drops_link_down", "drops_write", "drops_on_close")


def _positive(name: str, value: Any, allow_none: bool = False) -> Optional[float]:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise LinkConfigError(f"Expected {name} to be a positive number{' or None' if allow_none else ''}, got {value!r}")
    return float(value)


class Reporter(LinkLoop):
    """Use :func:`open_reporter`; see the package docstring for the options."""

    def __init__(self, url: str, protocol: str = "mavlink", *, baudrate: Optional[int] = None,
                 rate_hz: Optional[float] = None, queue_size: int = 4, status_rate_hz: float = 2.0,
                 status_repeat_s: float = 10.0, status_queue: int = 8, require_link: bool = True,
                 on_message: Optional[Callable[[Any], None]] = None, reconnect_min_s: float = 0.05,
                 reconnect_max_s: float = 2.0, clock: Callable[[], float] = time.monotonic,
                 port_factory: Optional[Callable[[], Any]] = None, **protocol_options: Any) -> None:
        self.url = url
        split_url(url, baudrate)  # validate now: a typo should fail here, not in the thread
        self._baudrate = baudrate
        self._clock = clock
        self._proto = make_protocol(protocol, clock=clock, **protocol_options)
        self.protocol = self._proto.name
        rate = _positive("rate_hz", rate_hz, allow_none=True)
        self._result_period = None if rate is None else 1.0 / rate
        self._status_period = 1.0 / _positive("status_rate_hz", status_rate_hz)  # type: ignore[operator]
        self._status_repeat = _positive("status_repeat_s", status_repeat_s)
        for name, value in (("queue_size", queue_size), ("status_queue", status_queue)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1024:
                raise LinkConfigError(f"Expected {name} in 1..1024, got {value!r}")
        self._backoff_min = _positive("reconnect_min_s", reconnect_min_s)
        self._backoff_max = max(self._backoff_min, _positive("reconnect_max_s", reconnect_max_s))  # type: ignore[type-var]
        self._open = port_factory or (lambda: open_port(url, baudrate))
        self._on_message = on_message
        self._errors = link_exceptions()

        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._results: Deque[InferenceResult] = deque()
        self._queue_size = queue_size
        self._status: Deque[Tuple[str, int]] = deque(maxlen=status_queue)
        self._last_status: Optional[Tuple[str, int, float]] = None
        self._c: Dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._link_up = False
        self._ever_up = False
        self._last_error = ""
        self._peer_seen: Optional[float] = None
        self._stopping = False
        self._closed = False
        self._passes = 0
        self._idle = False

        # Owned by the I/O thread only.
        self._port: Any = None
        self._fd: Optional[int] = None
        self._tx = b""
        self._tx_kind: Tuple[str, int] = ("", 0)
        self._parser = self._proto.new_parser()
        self._retry_at = 0.0
        self._backoff = self._backoff_min
        now = clock()
        self._next_heartbeat = now
        self._next_result = now
        self._next_status = now

        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        os.set_blocking(self._wake_r, False)
        if require_link:
            try:
                self._connected(self._open(), now)
            except BaseException:
                self._close_pipe()
                raise
        else:
            self._try_open(now)  # one try now, so stats() tells at once why the link is down
        self._thread = threading.Thread(target=self._run, name="hbnn-reporter", daemon=True)
        self._thread.start()

    # ---- producer side: never blocks on I/O -------------------------------------------
    def report(self, result: InferenceResult) -> bool:
        """Queue ``result``; return False if it was dropped because the link is down."""
        if not isinstance(result, InferenceResult):
            raise InvalidResultError(f"Expected an InferenceResult, got {type(result).__name__}")
        # Checked when it was made and frozen since: the I/O thread can encode this very object later.
        with self._lock:
            if self._closed:
                raise BridgeError("Expected an open reporter, got one that is closed")
            self._c["results_in"] += 1
            if not self._link_up:
                self._c["drops_link_down"] += 1
                return False
            if len(self._results) >= self._queue_size:
                self._results.popleft()
                self._c["drops_queue_full"] += 1
            self._results.append(result)
            self._c["queue_max"] = max(self._c["queue_max"], len(self._results))
        self._wake()
        return True

    def status_text(self, text: str, severity: Any = "info") -> bool:
        """Queue a status text (STATUSTEXT / STATUS frame); return False if suppressed.

        Status texts announce state changes, so the same text again within
        ``status_repeat_s`` is suppressed; they go out at most ``status_rate_hz``.
        """
        if not isinstance(text, str) or not text:
            raise InvalidResultError(f"Expected a non-empty status text, got {text!r}")
        sev = severity_value(severity)
        now = self._clock()
        with self._lock:
            if self._closed:
                raise BridgeError("Expected an open reporter, got one that is closed")
            last = self._last_status
            if last is not None and last[:2] == (text, sev) and now - last[2] < self._status_repeat:
                self._c["status_suppressed"] += 1
                return False
            self._last_status = (text, sev, now)
            if len(self._status) == self._status.maxlen:
                self._c["status_dropped"] += 1
            self._status.append((text, sev))
        self._wake()
        return True

    @property
    def link_up(self) -> bool:
        """Whether the port is open now; cheap (no lock, no copy), for polling once per frame."""
        return self._link_up

    def stats(self) -> Dict[str, Any]:
        """A snapshot of the counters (see the package docstring for their meaning)."""
        now = self._clock()
        with self._lock:
            out: Dict[str, Any] = dict(self._c)
            out["drops"] = sum(self._c[k] for k in _DROPS)
            out["queue_depth"] = len(self._results)
            out["link_up"] = self._link_up
            out["peer_alive"] = self._peer_seen is not None and now - self._peer_seen < PEER_TIMEOUT_S
            out["last_error"] = self._last_error
            out["protocol"] = self.protocol
        return out

    def flush(self, timeout: float = 2.0) -> bool:
        """Wait until everything sendable now has been written; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            start = self._passes
            while not (self._passes >= start + 2 and self._idle) and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake()
                self._cond.wait(min(left, 0.05))
            return self._idle

    def close(self, timeout: float = 2.0) -> None:
        """Send what is queued (up to ``timeout`` seconds), then close the port."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopping = True
            self._stop_deadline = time.monotonic() + timeout
        self._wake()
        self._thread.join(timeout + 1.0)
        if not self._thread.is_alive():
            self._close_pipe()

    def __enter__(self) -> "Reporter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_reporter(url: str, protocol: str = "mavlink", **options: Any) -> Reporter:
    """Open a link and start reporting; see the package docstring for ``options``."""
    return Reporter(url, protocol, **options)

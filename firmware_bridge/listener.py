"""The receiving end: decode what a reporter sends, as the flight controller sees it.

Used by ``hbnn listen`` for bench debugging and by the runtime's demo, which
runs a :class:`Listener` on the far end of a pty. A listener can also play the
autopilot (``autopilot_heartbeat_hz``) so the reporter sees a live peer.
Garbage is skipped and counted, never raised.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional

from .errors import LinkConfigError, LinkError
from .keyfile import load_signing_key
from .protocols import make_protocol
from .transport import link_exceptions, open_port, port_fileno, read_some

POLL_S = 0.05


class Listener:
    """Read ``link`` (a URL, or an object with read/write/fileno such as a pty end).

    ``on_message`` gets each decoded message: an InferenceResult or
    StatusMessage for ``frames``, a pymavlink message for ``mavlink``. With a
    URL the listener reopens the link when it vanishes (``reconnect=True``).
    """

    def __init__(self, link: Any, protocol: str = "mavlink",
                 on_message: Optional[Callable[[Any], None]] = None, *, baudrate: Optional[int] = None,
                 signing_key_file: Optional[str] = None, autopilot_heartbeat_hz: float = 0.0,
                 reconnect: bool = True) -> None:
        key = load_signing_key(signing_key_file) if signing_key_file else None
        # heartbeat=False: the listener's own encoder never sends; it only parses.
        self._proto = make_protocol(protocol, heartbeat=False, signing_key=key)
        self.protocol = protocol
        self._parser = self._proto.new_parser()
        if isinstance(autopilot_heartbeat_hz, bool) or not isinstance(autopilot_heartbeat_hz, (int, float)) \
                or autopilot_heartbeat_hz < 0:
            raise LinkConfigError(f"Expected autopilot_heartbeat_hz >= 0, got {autopilot_heartbeat_hz!r}")
        if autopilot_heartbeat_hz and protocol != "mavlink":
            raise LinkConfigError("Expected autopilot_heartbeat_hz only with protocol 'mavlink', got 'frames'")
        self._hb_period = 1.0 / autopilot_heartbeat_hz if autopilot_heartbeat_hz else None
        self._fc_heartbeat = None
        if self._hb_period is not None:
            from .mavlink import AutopilotHeartbeat
            self._fc_heartbeat = AutopilotHeartbeat(signing_key=key)
        self._on_message = on_message
        self._url = link if isinstance(link, str) else None
        self._given_port = None if isinstance(link, str) else link
        self._baudrate = baudrate
        self._reconnect = reconnect and self._url is not None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()
        self._c: Dict[str, Any] = {"rx_bytes": 0, "messages": 0, "errors": 0, "bad_signatures": 0,
                                   "reconnects": 0, "link_errors": 0, "heartbeats_sent": 0, "callback_errors": 0}
        if self._url is not None:
            self._port = open_port(self._url, baudrate)  # fail fast on a wrong path
        else:
            self._port = self._given_port

    def stats(self) -> Dict[str, Any]:
        with self._lock:
            out = dict(self._c)
        out["messages"] = self._parser.messages
        out["errors"] = self._parser.errors
        out["bad_signatures"] = self._parser.bad_signatures
        out["unknown"] = getattr(self._parser, "unknown", 0)
        return out

    def run(self, stop_event: Optional[threading.Event] = None, duration: Optional[float] = None,
            count: Optional[int] = None) -> Dict[str, Any]:
        """Listen until ``stop_event`` is set, ``duration`` seconds pass or ``count`` messages arrive."""
        import select

        stop = stop_event or self._stop
        deadline = None if duration is None else time.monotonic() + duration
        errors = link_exceptions()
        next_hb = time.monotonic()
        delivered = 0
        try:
            while not stop.is_set() and not self._stop.is_set():
                now = time.monotonic()
                if deadline is not None and now >= deadline:
                    break
                if self._port is None:
                    if not self._try_reopen():
                        stop.wait(POLL_S)
                        continue
                try:
                    if self._fc_heartbeat is not None and now >= next_hb:
                        self._port.write(self._fc_heartbeat())
                        next_hb = max(next_hb + self._hb_period, now)  # type: ignore[operator]
                        with self._lock:
                            self._c["heartbeats_sent"] += 1
                    data = read_some(self._port)
                except errors as exc:
                    if not self._drop_port(exc):
                        break
                    continue
                if not data:
                    fd = port_fileno(self._port)
                    if fd is None:
                        stop.wait(POLL_S / 5)
                    else:
                        select.select([fd], [], [], POLL_S)
                    continue
                with self._lock:
                    self._c["rx_bytes"] += len(data)
                for msg in self._parser.feed(data):
                    delivered += 1
                    self._deliver(msg)
                    if count is not None and delivered >= count:
                        return self.stats()
        finally:
            if self._url is not None and self._port is not None:
                self._port.close()
                self._port = None
        return self.stats()

    def _deliver(self, msg: Any) -> None:
        if self._on_message is None:
            return
        try:
            self._on_message(msg)
        except Exception:  # noqa: BLE001 - keep listening; the caller sees callback_errors
            with self._lock:
                self._c["callback_errors"] += 1

    def _drop_port(self, exc: BaseException) -> bool:
        with self._lock:
            self._c["link_errors"] += 1
        if not self._reconnect:
            return False
        try:
            self._port.close()
        except Exception:  # noqa: BLE001 - already gone
            pass
        self._port = None
        self._parser.reset()
        return True

    def _try_reopen(self) -> bool:
        try:
            self._port = open_port(self._url, self._baudrate)  # type: ignore[arg-type]
        except LinkError:
            return False
        with self._lock:
            self._c["reconnects"] += 1
        return True

    def start(self) -> "Listener":
        """Run in a daemon thread; call :meth:`stop` to end it."""
        self._thread = threading.Thread(target=self.run, name="hbnn-listener", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> Dict[str, Any]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        return self.stats()

    def __enter__(self) -> "Listener":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def listen(link: Any, protocol: str = "mavlink", on_message: Optional[Callable[[Any], None]] = None,
           stop_event: Optional[threading.Event] = None, **options: Any) -> Dict[str, Any]:
    """Blocking convenience: listen on ``link`` until ``stop_event`` is set; return the counters.

    ``options`` are Listener's keyword arguments plus ``duration`` and ``count``.
    """
    duration = options.pop("duration", None)
    count = options.pop("count", None)
    return Listener(link, protocol, on_message, **options).run(stop_event, duration=duration, count=count)

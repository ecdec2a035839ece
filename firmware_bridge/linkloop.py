"""The reporter's I/O thread: the only code that touches the port.

It writes at most one encoded item at a time (a result is never interleaved
with another), sends heartbeats on schedule, reads and parses what the far end
sends, and on any link failure closes the port, counts what was lost and
reopens it with exponential backoff. It sleeps in select() on the port and a
wake-up pipe that ``report()`` pokes, so an idle link costs no CPU. The state
it shares with the producer side (queues, counters) is only touched under
``self._lock``, and never while doing I/O.
"""
from __future__ import annotations

import logging
import os
import select
import time
from typing import Any, Tuple

from .errors import LinkError
from .transport import port_fileno, read_some, write_some

log = logging.getLogger("firmware_bridge")

MAX_WAIT_S = 0.25      # re-check the clock at least this often
NO_FD_POLL_S = 0.01    # read poll period for ports without a descriptor (loop://)


class LinkLoop:
    """Mixin with the I/O thread of :class:`~firmware_bridge.reporter.Reporter` (see there for the state)."""

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except (BlockingIOError, OSError):
            pass  # already awake (pipe full) or closing

    def _close_pipe(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _run(self) -> None:
        try:
            while True:
                now = self._clock()
                with self._lock:
                    stopping = self._stopping
                if self._port is None and not stopping and now >= self._retry_at:
                    self._try_open(now)
                if self._port is not None:
                    try:
                        self._service(now, final=stopping)
                    except TimeoutError:
                        self._write_timed_out()
                    except self._errors as exc:
                        self._link_down(exc, now)
                    except Exception as exc:  # noqa: BLE001 - a bug must not silently end reporting
                        log.exception("unexpected error on link %s; reopening it", self.url)
                        self._link_down(exc, now)
                idle = not self._tx and not self._sendable(now, stopping)
                with self._cond:
                    self._idle = idle
                    self._passes += 1
                    self._cond.notify_all()
                if stopping and (idle or self._port is None or time.monotonic() > self._stop_deadline):
                    break
                self._wait(now, idle)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        with self._lock:
            lost = len(self._results) + (1 if self._tx_kind[0] == "result" and self._tx else 0)
            self._c["drops_on_close"] += lost
            self._results.clear()
            self._link_up = False
        if self._port is not None:
            try:
                self._port.close()
            except Exception:  # noqa: BLE001 - closing a dead port may fail; nothing to do
                pass
            self._port = None

    def _sendable(self, now: float, final: bool) -> bool:
        if self._port is None:
            return False
        if self._proto.heartbeat_period is not None and now >= self._next_heartbeat and not final:
            return True
        with self._lock:
            return bool((self._status and (final or now >= self._next_status))
                        or (self._results and (final or self._result_period is None or now >= self._next_result)))

    def _wait(self, now: float, idle: bool) -> None:
        if not idle and not self._tx:
            return  # more to send right away
        timeout = MAX_WAIT_S
        if self._port is None:
            timeout = min(timeout, max(0.0, self._retry_at - now))
        elif self._proto.heartbeat_period is not None:
            timeout = min(timeout, max(0.0, self._next_heartbeat - now))
        with self._lock:
            if self._results and self._result_period is not None:
                timeout = min(timeout, max(0.0, self._next_result - now))
            if self._status:
                timeout = min(timeout, max(0.0, self._next_status - now))
        rlist, wlist = [self._wake_r], []
        if self._port is not None:
            if self._fd is None:
                timeout = min(timeout, NO_FD_POLL_S)
            else:
                rlist.append(self._fd)
                if self._tx:
                    wlist.append(self._fd)
        try:
            ready, _, _ = select.select(rlist, wlist, [], timeout)
        except (OSError, ValueError):  # the port's descriptor died under us
            ready = []
            time.sleep(min(timeout, NO_FD_POLL_S))
        if self._wake_r in ready:
            try:
                os.read(self._wake_r, 4096)
            except OSError:
                pass

    def _try_open(self, now: float) -> None:
        try:
            port = self._open()
        except (LinkError, *self._errors) as exc:
            with self._lock:
                self._last_error = str(exc)
            self._retry_at = now + self._backoff
            self._backoff = min(self._backoff * 2.0, self._backoff_max)  # type: ignore[type-var]
            return
        self._connected(port, now)
        log.info("link %s up", self.url)

    def _connected(self, port: Any, now: float) -> None:
        self._port = port
        self._fd = port_fileno(port)
        self._backoff = self._backoff_min
        self._tx, self._tx_kind = self._proto.resync, ("sync", 0)
        self._parser.reset()
        self._next_heartbeat = now
        with self._lock:
            if self._ever_up:
                self._c["reconnects"] += 1
            self._ever_up = True
            self._link_up = True

    def _link_down(self, exc: BaseException, now: float) -> None:
        log.warning("link %s down: %s", self.url, exc)
        try:
            self._port.close()
        except Exception:  # noqa: BLE001 - the device is already gone
            pass
        self._port, self._fd = None, None
        with self._lock:
            lost = len(self._results) + (1 if self._tx_kind[0] == "result" and self._tx else 0)
            self._c["drops_link_down"] += lost
            self._c["link_errors"] += 1
            self._results.clear()
            self._link_up = False
            self._last_error = str(exc)
        self._tx, self._tx_kind = b"", ("", 0)
        self._retry_at = now + self._backoff
        self._backoff = min(self._backoff * 2.0, self._backoff_max)  # type: ignore[type-var]

    def _write_timed_out(self) -> None:
        # Only ports without a descriptor get here; what part went out is unknown.
        with self._lock:
            self._c["write_timeouts"] += 1
            if self._tx_kind[0] == "result":
                self._c["drops_write"] += 1
        self._tx, self._tx_kind = self._proto.resync, ("sync", 0)

    def _service(self, now: float, final: bool) -> None:
        data = read_some(self._port)
        if data:
            self._inbound(data, now)
        if not self._tx:
            self._tx, self._tx_kind = self._next_item(now, final)
        if self._tx:
            n = write_some(self._port, self._fd, self._tx)
            self._tx = self._tx[n:]
            with self._lock:
                self._c["bytes"] += n
                if not self._tx:
                    kind, count = self._tx_kind
                    self._c["messages"] += count
                    if kind == "result":
                        self._c["results_sent"] += 1
                    elif kind == "heartbeat":
                        self._c["heartbeats"] += 1
                    elif kind == "status":
                        self._c["status_sent"] += count

    def _next_item(self, now: float, final: bool) -> Tuple[bytes, Tuple[str, int]]:
        period = self._proto.heartbeat_period
        if period is not None and now >= self._next_heartbeat and not final:
            self._next_heartbeat += period
            if self._next_heartbeat <= now:  # fell behind: skip beats instead of bursting
                self._next_heartbeat = now + period
            return self._proto.heartbeat(), ("heartbeat", 1)
        with self._lock:
            status = self._status.popleft() if self._status and (final or now >= self._next_status) else None
            result = None
            if status is None and self._results and (final or self._result_period is None
                                                     or now >= self._next_result):
                if self._result_period is None:
                    result = self._results.popleft()
                else:  # rate limited: the newest result wins, older ones are superseded
                    result = self._results.pop()
                    self._c["drops_rate_limited"] += len(self._results)
                    self._results.clear()
        if status is not None:
            self._next_status = now + self._status_period
            data, count = self._proto.encode_status(*status)
            return data, ("status", count)
        if result is not None:
            if self._result_period is not None:
                self._next_result = now + self._result_period
            data, count = self._proto.encode_result(result)
            return data, ("result", count)
        return b"", ("", 0)

    def _inbound(self, data: bytes, now: float) -> None:
        msgs = self._parser.feed(data)
        with self._lock:
            self._c["rx_bytes"] += len(data)
            self._c["rx_messages"] = self._parser.messages
            self._c["rx_errors"] = self._parser.errors
            self._c["rx_bad_signatures"] = self._parser.bad_signatures
        for msg in msgs:
            if self._proto.is_peer_heartbeat(msg):
                with self._lock:
                    self._peer_seen = now
                    self._c["peer_heartbeats"] += 1
            if self._on_message is not None:
                try:
                    self._on_message(msg)
                except Exception:  # noqa: BLE001 - a bad callback must not take the link down
                    log.exception("on_message callback failed")
                    with self._lock:
                        self._c["callback_errors"] += 1

"""Opening links with pyserial's ``serial_for_url``, and non-blocking I/O on them.

Accepted URLs: a device path (``/dev/ttyAMA0``, ``/dev/serial/by-id/...``),
optionally with ``?baudrate=57600`` (default 921600); ``loop://`` (loopback,
for tests); ``socket://host:port`` (SITL, ser2net); any other pyserial URL.
``baudrate`` is taken out of the query string here because pyserial's URL
handlers reject options they do not know.
"""
from __future__ import annotations

import queue
import select
from typing import Any, Optional, Tuple
from urllib.parse import parse_qsl, urlencode

from .errors import LinkConfigError, LinkError

DEFAULT_BAUDRATE = 921600
#: Longest a write may block on ports we cannot select() on (loop://, custom).
FALLBACK_WRITE_TIMEOUT = 0.05


def split_url(url: str, baudrate: Optional[int] = None) -> Tuple[str, int]:
    """Return (url for pyserial, baudrate); an explicit ``baudrate`` beats ``?baudrate=``."""
    if not isinstance(url, str) or not url.strip():
        raise LinkConfigError(f"Expected a device path or pyserial URL, got {url!r}")
    base, sep, query = url.strip().partition("?")
    rate: Any = None
    kept = []
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == "baudrate":
            rate = value
        else:
            kept.append((key, value))
    if baudrate is not None:
        rate = baudrate
    if rate is None:
        rate = DEFAULT_BAUDRATE
    try:
        rate_int = int(rate)
    except (TypeError, ValueError):
        rate_int = 0
    if isinstance(rate, bool) or rate_int <= 0 or str(rate_int) != str(rate).strip():
        raise LinkConfigError(f"Expected baudrate to be a positive integer, got {rate!r}")
    return (base + ("?" + urlencode(kept) if kept else "")), rate_int


def open_port(url: str, baudrate: Optional[int] = None):
    """Open ``url`` non-blocking (read timeout 0); raise LinkError when it is not there."""
    import serial  # pyserial; imported here so that ``hbnn --help`` stays light

    port_url, rate = split_url(url, baudrate)
    try:
        port = serial.serial_for_url(port_url, baudrate=rate, timeout=0, write_timeout=0)
    except (serial.SerialException, OSError, ValueError) as exc:
        raise LinkError(f"Expected a reachable serial device or URL, got {url!r}: {exc}") from None
    if port_fileno(port) is None:
        port.write_timeout = FALLBACK_WRITE_TIMEOUT
    return port


def port_fileno(port: Any) -> Optional[int]:
    """The descriptor to select() on, or None for ports without one (loop://)."""
    try:
        fd = port.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fd if isinstance(fd, int) and fd >= 0 else None


def link_exceptions() -> tuple:
    """Exceptions that mean "the link is gone" when raised by a port's read or write."""
    import serial

    return (serial.SerialException, OSError, EOFError)


def write_some(port: Any, fd: Optional[int], data: bytes) -> int:
    """Write without blocking the caller for long; return how many bytes went out.

    With a descriptor we only write when select() says there is room, so
    pyserial's non-blocking write (write_timeout=0) returns a partial count
    instead of spinning. Without one we write the whole buffer with a short
    timeout; a timeout raises TimeoutError because the sent amount is unknown.
    """
    if fd is not None:
        _, ready, _ = select.select([], [fd], [], 0)
        if not ready:
            return 0
        return int(port.write(data) or 0)
    import serial

    try:
        written = port.write(data)
    except (serial.SerialTimeoutException, queue.Full):
        raise TimeoutError("write timed out") from None
    return len(data) if written is None else int(written)


def read_some(port: Any, size: int = 4096) -> bytes:
    """Read whatever is waiting (the port was opened with timeout 0)."""
    return bytes(port.read(size) or b"")

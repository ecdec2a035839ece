"""MAVLink 2 encoding and decoding with pymavlink's generated ``common`` codec.

We talk to the autopilot as an onboard computer: HEARTBEAT (type
ONBOARD_CONTROLLER, autopilot INVALID), each result as NAMED_VALUE_INT (class
id) plus NAMED_VALUE_FLOAT (confidence), optionally two DEBUG_VECTs with the
top-3, and STATUSTEXT for state changes. pymavlink's ``MAVLink`` object writes
to a file-like object; ours collects the bytes so the transport decides when
and whether they go out (a result is sent whole or dropped whole).

Importing this module imports pymavlink, so the package loads it lazily.
"""
from __future__ import annotations

import hashlib
import time
from typing import Callable, List, Optional, Sequence, Tuple

from pymavlink.dialects.v20 import common as mavlink2

from .errors import LinkConfigError
from .results import InferenceResult, severity_value

DEFAULT_NAMES = ("HBNN_CLS", "HBNN_CONF", "HBNN_TOPC", "HBNN_TOPP")
NAME_MAX = 10
STATUS_CHUNK = 50
STATUS_MAX_CHUNKS = 4
# MAVLink signing timestamps count 10 us units since 2015-01-01 00:00:00 UTC.
_SIGNING_EPOCH = 1420070400


class _Collector:
    """The file-like sink pymavlink writes packed messages to."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, buf: bytes) -> int:
        self.data += buf
        return len(buf)

    def take(self) -> bytes:
        out = bytes(self.data)
        self.data.clear()
        return out


def check_names(names: Optional[Sequence[str]]) -> Tuple[str, ...]:
    """Validate NAMED_VALUE / DEBUG_VECT names: up to 4 ASCII strings of <= 10 chars."""
    if names is None:
        return DEFAULT_NAMES
    if isinstance(names, str) or not 1 <= len(names) <= 4:
        raise LinkConfigError(f"Expected names as 1-4 strings (class, confidence, top-k ids, top-k conf), got {names!r}")
    out = list(names) + list(DEFAULT_NAMES[len(names):])
    for name in out:
        if not isinstance(name, str) or not 1 <= len(name) <= NAME_MAX or not name.isascii():
            raise LinkConfigError(f"Expected each name to be 1-{NAME_MAX} ASCII characters, got {name!r}")
    return tuple(out)


def check_id(what: str, value: object, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 255:
        raise LinkConfigError(f"Expected {what} in {low}..255, got {value!r}")
    return value


def signing_timestamp(now: Optional[float] = None) -> int:
    """The current MAVLink signing timestamp (10 us units since 2015)."""
    return max(0, int(((time.time() if now is None else now) - _SIGNING_EPOCH) * 100_000))


class MavlinkEncoder:
    """Builds the byte strings the reporter sends; one instance per link."""

    def __init__(self, system_id: int = 1, component_id: int = 191, names: Optional[Sequence[str]] = None,
                 debug_vect: bool = False, signing_key: Optional[bytes] = None, signing_link_id: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.names = check_names(names)
        self.debug_vect = bool(debug_vect)
        self._sink = _Collector()
        self.mav = mavlink2.MAVLink(self._sink, srcSystem=check_id("system_id", system_id),
                                    srcComponent=check_id("component_id", component_id))
        if signing_key is not None:
            self.mav.signing.secret_key = signing_key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.link_id = check_id("signing_link_id", signing_link_id, low=0)
            self.mav.signing.timestamp = signing_timestamp()
        self._clock = clock
        self._t0 = clock()
        self._status_id = 0

    def time_boot_ms(self) -> int:
        """Milliseconds since this encoder started, on the monotonic clock (wraps at 2**32)."""
        return int((self._clock() - self._t0) * 1000.0) & 0xFFFFFFFF

    def heartbeat(self, system_status: int = mavlink2.MAV_STATE_ACTIVE) -> bytes:
        self.mav.heartbeat_send(mavlink2.MAV_TYPE_ONBOARD_CONTROLLER, mavlink2.MAV_AUTOPILOT_INVALID,
                                0, 0, system_status)
        return self._sink.take()

    def result(self, result: InferenceResult) -> Tuple[bytes, int]:
        """Return (bytes, message count) for one result."""
        ms = self.time_boot_ms()
        # NAMED_VALUE_INT carries an int32; class ids are <= 65535 (checked by InferenceResult).
        self.mav.named_value_int_send(ms, self.names[0].encode("ascii"), result.class_id)
        self.mav.named_value_float_send(ms, self.names[1].encode("ascii"), result.confidence)
        count = 2
        if self.debug_vect:
            top = list(result.topk[:3])
            nan = float("nan")
            ids = [float(c) for c, _ in top] + [nan] * (3 - len(top))
            confs = [float(p) for _, p in top] + [nan] * (3 - len(top))
            self.mav.debug_vect_send(self.names[2].encode("ascii"), result.timestamp_us, *ids)
            self.mav.debug_vect_send(self.names[3].encode("ascii"), result.timestamp_us, *confs)
            count += 2
        return self._sink.take(), count

    def status(self, text: str, severity: object = "info") -> Tuple[bytes, int]:
        """STATUSTEXT; text longer than 50 characters goes out in MAVLink 2 chunks (at most 4)."""
        raw = text.encode("ascii", errors="replace")[:STATUS_CHUNK * STATUS_MAX_CHUNKS]
        sev = severity_value(severity)  # type: ignore[arg-type]
        if len(raw) <= STATUS_CHUNK:
            self.mav.statustext_send(sev, raw)
            return self._sink.take(), 1
        self._status_id = self._status_id % 0xFFFF + 1
        chunks = [raw[i:i + STATUS_CHUNK] for i in range(0, len(raw), STATUS_CHUNK)]
        for seq, chunk in enumerate(chunks):
            self.mav.statustext_send(sev, chunk, self._status_id, seq)
        return self._sink.take(), len(chunks)


class _VerifyFirstMAVLink(mavlink2.MAVLink):
    """pymavlink's codec with the MAVLink 2 signature check done in the spec's order.

    The spec (mavlink.io, "Message signing") and the C library (``mavlink_signature_check``)
    check the signature first and only then move the stream's replay window. pymavlink does not:

    * 2.4.50 stores a frame's timestamp as its stream's newest *before* comparing the signature.
      The CRC does not cover the signature block, so anyone on the link can take one genuine
      frame, raise its timestamp and send it: the forged frame is rejected, but every later
      genuine frame of that (link, system, component) stream now looks old and is rejected too,
      for as long as the forged timestamp stays ahead (years for a raised high byte);
    * 2.4.43 (the newest armv7 wheel) has the same flaw for a new stream, and never advances an
      established stream's window at all: any genuine frame newer than the stream's first one
      can be replayed.

    Both found by fuzzing (the second by the regression test under emulated armv7); tests in
    tests/fuzz/test_fuzz_regressions.py. This check is the same whatever pymavlink is installed.
    """

    def check_signature(self, msgbuf: bytearray, srcSystem: int, srcComponent: int) -> bool:
        signing = self.signing
        if hashlib.sha256(signing.secret_key + bytes(msgbuf[:-6])).digest()[:6] != bytes(msgbuf[-6:]):
            return False
        timestamp = int.from_bytes(bytes(msgbuf[-12:-6]), "little")
        stream = (msgbuf[-13], srcSystem, srcComponent)
        last = signing.stream_timestamps.get(stream)
        if last is not None:
            if timestamp <= last:  # a replay, or older than what the stream already sent
                return False
        elif timestamp + 6000 * 1000 < signing.timestamp:  # a new stream more than a minute old
            return False
        signing.stream_timestamps[stream] = timestamp
        signing.timestamp = max(signing.timestamp, timestamp)
        return True


class MavlinkParser:
    """Robust inbound parser: never raises on garbage, counts what it skips.

    Only messages of the ``common`` dialect with a valid CRC (and, with a key,
    a valid signature) come out; ``errors`` counts skipped garbage,
    ``bad_signatures`` rejected signatures, ``unknown`` unverifiable ids.
    """

    def __init__(self, signing_key: Optional[bytes] = None) -> None:
        self._key = signing_key
        self.messages = 0
        self.errors = 0
        self.bad_signatures = 0
        self.unknown = 0
        self._new()

    def _new(self) -> None:
        old = getattr(self, "mav", None)
        self.mav = _VerifyFirstMAVLink(None)
        self.mav.robust_parsing = True
        if self._key is not None:
            self.mav.signing.secret_key = self._key
            if old is not None:  # keep replay protection across a reset
                self.mav.signing.stream_timestamps = old.signing.stream_timestamps
                self.mav.signing.timestamp = old.signing.timestamp

    def feed(self, data: bytes) -> List[mavlink2.MAVLink_message]:
        out: List[mavlink2.MAVLink_message] = []
        chunk: bytes = bytes(data)
        while True:
            try:
                msg = self.mav.parse_char(chunk)
            except Exception:  # noqa: BLE001 - a parser bug on hostile input must not kill the link
                self.errors += 1
                self._new()
                return out
            chunk = b""
            if msg is None:
                return out
            if isinstance(msg, mavlink2.MAVLink_bad_data):
                self.errors += 1
                if "signature" in str(getattr(msg, "reason", "")).lower():
                    self.bad_signatures += 1
                continue
            if isinstance(msg, mavlink2.MAVLink_unknown):
                # An id outside the common dialect: without its CRC_EXTRA the CRC cannot be
                # checked, so it may be garbage. Count it, do not pass it on.
                self.unknown += 1
                continue
            self.messages += 1
            out.append(msg)

    def reset(self) -> None:
        """Forget a partial message (after a reconnect)."""
        self._new()


def is_autopilot_heartbeat(msg: mavlink2.MAVLink_message) -> bool:
    """True for a HEARTBEAT from a flight controller (not a GCS or another companion)."""
    return (msg.get_type() == "HEARTBEAT" and msg.autopilot != mavlink2.MAV_AUTOPILOT_INVALID)


class AutopilotHeartbeat:
    """HEARTBEATs as a PX4 quadrotor sends them; a listener uses this to play the autopilot."""

    def __init__(self, system_id: int = 1, component_id: int = 1, signing_key: Optional[bytes] = None) -> None:
        self._sink = _Collector()
        self.mav = mavlink2.MAVLink(self._sink, srcSystem=system_id, srcComponent=component_id)
        if signing_key is not None:
            self.mav.signing.secret_key = signing_key
            self.mav.signing.sign_outgoing = True
            self.mav.signing.timestamp = signing_timestamp()

    def __call__(self) -> bytes:
        self.mav.heartbeat_send(mavlink2.MAV_TYPE_QUADROTOR, mavlink2.MAV_AUTOPILOT_PX4, 0, 0,
                                mavlink2.MAV_STATE_ACTIVE)
        return self._sink.take()

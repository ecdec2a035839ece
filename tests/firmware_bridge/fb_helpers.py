"""Helpers for the firmware-bridge tests: a fake clock, waiting, and an FC-side reader.

(Not named conftest so test modules can import it; the test folder has no __init__.py.)
"""
from __future__ import annotations

import time
from typing import Any, Callable, List

from firmware_bridge import FrameDecoder, InferenceResult


class FakeClock:
    """A monotonic clock the test moves by hand, so cadence tests need no sleeping."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``predicate``; the timeout only guards against hangs, it is never the assertion."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


class FcReader:
    """Reads the flight-controller end of a pty and decodes with an independent parser.

    MAVLink goes through a fresh pymavlink ``MAVLink`` in strict mode (a bad
    CRC or framing error raises), not through firmware_bridge's own parser.
    """

    def __init__(self, port: Any, protocol: str, signing_key: bytes = None) -> None:
        self.port = port
        self.protocol = protocol
        self.messages: List[Any] = []
        self.nbytes = 0
        if protocol == "mavlink":
            from pymavlink.dialects.v20 import common as mavlink2

            self.mav = mavlink2.MAVLink(None)
            if signing_key is not None:
                self.mav.signing.secret_key = signing_key
        else:
            self.decoder = FrameDecoder()

    def poll(self) -> List[Any]:
        new: List[Any] = []
        while True:
            data = self.port.read(65536)
            if not data:
                break
            self.nbytes += len(data)
            if self.protocol == "mavlink":
                new += self.mav.parse_buffer(data) or []
            else:
                new += self.decoder.feed(data)
        self.messages += new
        return new

    def sync(self, reporter: Any, timeout: float = 10.0) -> List[Any]:
        """Read until every byte the reporter has written so far arrived; return the new messages.

        A pty hands bytes to the other end asynchronously, so one read right
        after a write may see only part of it.
        """
        start = len(self.messages)
        wait_until(lambda: self.poll() is not None and self.nbytes >= reporter.stats()["bytes"], timeout,
                   "all written bytes at the FC end")
        return self.messages[start:]

    def of_type(self, name: str) -> List[Any]:
        return [m for m in self.messages if m.get_type() == name]

    def sequences(self) -> List[int]:
        """Result sequence numbers (MAVLink tests send class_id == sequence)."""
        if self.protocol == "mavlink":
            return [m.value for m in self.of_type("NAMED_VALUE_INT")]
        return [m.sequence for m in self.messages if isinstance(m, InferenceResult)]


def make_result(seq: int, **kw: Any) -> InferenceResult:
    fields = dict(sequence=seq, timestamp_us=1_000_000 + seq * 33_333, class_id=seq % 65536,
                  confidence=0.5 + (seq % 7) / 16, topk=[(seq % 65536, 0.5), (7, 0.25), (9, 0.125)],
                  latency_ms=4.25)
    fields.update(kw)
    return InferenceResult(**fields)

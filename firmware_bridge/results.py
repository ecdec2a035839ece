"""What the bridge carries: inference results and status texts.

These are plain data classes shared by both wire protocols. Validation happens
here, once, when a result is made, and a result cannot change afterwards (frozen), so
the reporter and the encoders trust it as is and a bad value from the runtime fails
where it was produced, with a clear message, instead of on the wire.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple, Union

from .errors import InvalidResultError

#: Classes fit a uint16 on the wire (framed protocol); MAVLink carries an int32.
CLASS_ID_MAX = 0xFFFF
#: Result sequence numbers and timestamps are uint32 / uint64 on the wire.
SEQUENCE_MAX = 0xFFFFFFFF
TIMESTAMP_MAX = 0xFFFFFFFFFFFFFFFF
FLOAT32_MAX = 3.4028234663852886e38

# MAVLink MAV_SEVERITY values; the framed protocol uses the same numbers.
SEVERITIES = {
    "emergency": 0,
    "alert": 1,
    "critical": 2,
    "error": 3,
    "warning": 4,
    "notice": 5,
    "info": 6,
    "debug": 7,
}


def severity_value(severity: Union[int, str]) -> int:
    """Return the MAV_SEVERITY number for an int 0-7 or a name like ``"warning"``."""
    if isinstance(severity, str):
        key = severity.strip().lower()
        if key.startswith("mav_severity_"):
            key = key[len("mav_severity_"):]
        if key in SEVERITIES:
            return SEVERITIES[key]
    elif isinstance(severity, int) and not isinstance(severity, bool) and 0 <= severity <= 7:
        return severity
    raise InvalidResultError(
        f"Expected a severity 0-7 or one of {', '.join(SEVERITIES)}, got {severity!r}")


def _check_int(name: str, value: object, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        # numpy integers are not ``int``; accept anything that converts exactly.
        try:
            as_int = int(value)  # type: ignore[call-overload]
        except (TypeError, ValueError):
            raise InvalidResultError(f"Expected {name} to be an int, got {value!r}") from None
        if isinstance(value, bool) or as_int != value:
            raise InvalidResultError(f"Expected {name} to be an int, got {value!r}")
        value = as_int
    if not 0 <= value <= high:
        raise InvalidResultError(f"Expected {name} in 0..{high}, got {value}")
    return value


def _check_float(name: str, value: object) -> float:
    try:
        as_float = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise InvalidResultError(f"Expected {name} to be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(as_float):
        raise InvalidResultError(f"Expected {name} to be a finite number, got {value!r}")
    if abs(as_float) > FLOAT32_MAX:  # both wire formats carry float32
        raise InvalidResultError(f"Expected {name} within float32 range, got {value!r}")
    return as_float


@dataclass(frozen=True)
class InferenceResult:
    """One classification result, as the runtime hands it to a reporter.

    ``sequence`` counts frames (wraps at 2**32 on the wire), ``timestamp_us``
    is the capture time in microseconds on the producer's monotonic clock,
    ``confidence`` is usually a probability in [0, 1] (any finite float is
    carried), ``topk`` lists ``(class_id, confidence)`` best first (the framed
    protocol carries 4, DEBUG_VECT 3; kept as a tuple), ``latency_ms`` is capture-to-result
    time. ``label`` is for humans and logs only; it is not sent on the wire.
    Checked once, here; frozen, so no one can change it after the check.
    """

    sequence: int
    timestamp_us: int
    class_id: int
    confidence: float
    topk: Sequence[Tuple[int, float]] = ()
    latency_ms: float = 0.0
    label: Optional[str] = None

    def __post_init__(self) -> None:
        checked = {
            "sequence": _check_int("sequence", self.sequence, SEQUENCE_MAX),
            "timestamp_us": _check_int("timestamp_us", self.timestamp_us, TIMESTAMP_MAX),
            "class_id": _check_int("class_id", self.class_id, CLASS_ID_MAX),
            "confidence": _check_float("confidence", self.confidence),
            "latency_ms": _check_float("latency_ms", self.latency_ms),
            "topk": _check_topk(self.topk),
        }
        if checked["latency_ms"] < 0:
            raise InvalidResultError(f"Expected latency_ms >= 0, got {self.latency_ms}")
        if self.label is not None and not isinstance(self.label, str):
            raise InvalidResultError(f"Expected label to be a str or None, got {self.label!r}")
        for name, value in checked.items():  # normalized values (ints, floats, a tuple of pairs)
            object.__setattr__(self, name, value)


def _check_topk(topk: Sequence[Tuple[int, float]]) -> Tuple[Tuple[int, float], ...]:
    if isinstance(topk, (str, bytes)) or not hasattr(topk, "__iter__"):
        raise InvalidResultError(f"Expected topk to be a list of (class_id, confidence), got {topk!r}")
    checked = []
    for i, entry in enumerate(topk):
        try:
            class_id, confidence = entry
        except (TypeError, ValueError):
            raise InvalidResultError(
                f"Expected topk[{i}] to be a (class_id, confidence) pair, got {entry!r}") from None
        checked.append((_check_int(f"topk[{i}] class_id", class_id, CLASS_ID_MAX),
                        _check_float(f"topk[{i}] confidence", confidence)))
    return tuple(checked)


@dataclass(frozen=True)
class StatusMessage:
    """A status text as decoded by a listener (framed STATUS or MAVLink STATUSTEXT)."""

    severity: int
    text: str

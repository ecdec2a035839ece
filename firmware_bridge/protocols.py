"""The two wire protocols behind one small interface.

A protocol object turns results and status texts into bytes, says what to send
after (re)connecting and whether to send heartbeats, and owns an inbound
parser. The reporter and the listener only talk to this interface, so they do
not care whether the far end is an autopilot or a bare MCU.
"""
from __future__ import annotations

import time
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .errors import LinkConfigError
from .frames import FrameDecoder, encode_result, encode_status
from .keyfile import load_signing_key
from .results import InferenceResult, StatusMessage

PROTOCOLS = ("mavlink", "frames")


class FrameParser:
    """FrameDecoder with the counters the reporter and listener read."""

    bad_signatures = 0

    def __init__(self) -> None:
        self._decoder = FrameDecoder()

    @property
    def messages(self) -> int:
        return self._decoder.messages

    @property
    def errors(self) -> int:
        return sum(self._decoder.errors.values())

    def feed(self, data: bytes) -> List[Any]:
        return self._decoder.feed(data)

    def reset(self) -> None:
        errors, messages = self._decoder.errors, self._decoder.messages
        self._decoder = FrameDecoder()
        self._decoder.errors, self._decoder.messages = errors, messages


class FramesProtocol:
    """The COBS/CRC framed protocol for MCUs; status texts are STATUS frames."""

    name = "frames"
    # A lone delimiter ends whatever partial frame the MCU holds (e.g. after a reconnect).
    resync = b"\x00"
    heartbeat_period: Optional[float] = None

    def encode_result(self, result: InferenceResult) -> Tuple[bytes, int]:
        return encode_result(result), 1

    def encode_status(self, text: str, severity: Any) -> Tuple[bytes, int]:
        return encode_status(text, severity), 1

    def heartbeat(self) -> bytes:
        return b""

    def new_parser(self) -> FrameParser:
        return FrameParser()

    @staticmethod
    def is_peer_heartbeat(msg: Any) -> bool:
        return False


class MavlinkProtocol:
    """MAVLink 2 as an onboard computer (see firmware_bridge.mavlink)."""

    name = "mavlink"
    resync = b""

    def __init__(self, system_id: int = 1, component_id: int = 191, names: Optional[Sequence[str]] = None,
                 heartbeat: Any = True, debug_vect: bool = False, signing_key_file: Optional[str] = None,
                 signing_key: Optional[bytes] = None, signing_link_id: int = 0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from . import mavlink  # pymavlink is imported only when MAVLink is used

        self._mavlink = mavlink
        if signing_key is None and signing_key_file is not None:
            signing_key = load_signing_key(signing_key_file)
        self.signing_key = signing_key
        self.heartbeat_period = _heartbeat_period(heartbeat)
        self.encoder = mavlink.MavlinkEncoder(system_id, component_id, names, debug_vect, signing_key,
                                              signing_link_id, clock)

    def encode_result(self, result: InferenceResult) -> Tuple[bytes, int]:
        return self.encoder.result(result)

    def encode_status(self, text: str, severity: Any) -> Tuple[bytes, int]:
        return self.encoder.status(text, severity)

    def heartbeat(self) -> bytes:
        return self.encoder.heartbeat()

    def new_parser(self):
        return self._mavlink.MavlinkParser(self.signing_key)

    def is_peer_heartbeat(self, msg: Any) -> bool:
        return self._mavlink.is_autopilot_heartbeat(msg)


def _heartbeat_period(heartbeat: Any) -> Optional[float]:
    """``True`` means 1 Hz, a number is a rate in Hz, ``False``/0/None disables it."""
    if heartbeat is None or heartbeat is False or heartbeat == 0:
        return None
    if heartbeat is True:
        return 1.0
    if isinstance(heartbeat, (int, float)) and 0 < heartbeat <= 50:
        return 1.0 / float(heartbeat)
    raise LinkConfigError(f"Expected heartbeat as True/False or a rate in (0, 50] Hz, got {heartbeat!r}")


MAVLINK_OPTIONS = ("system_id", "component_id", "names", "heartbeat", "debug_vect", "signing_key_file",
                   "signing_key", "signing_link_id")


def make_protocol(protocol: str, clock: Callable[[], float] = time.monotonic, **options: Any):
    """Build the protocol object.

    Unknown option names are refused (a typo should not pass silently). For
    ``frames``, signing and DEBUG_VECT are refused because they cannot be
    honoured; the other MAVLink options are ignored, so one configuration can
    serve both protocols.
    """
    unknown = sorted(set(options) - set(MAVLINK_OPTIONS))
    if unknown:
        raise LinkConfigError(f"Expected options among {', '.join(MAVLINK_OPTIONS)} (and the link options), "
                          f"got {', '.join(map(repr, unknown))}")
    if protocol == "frames":
        for key in ("signing_key_file", "signing_key", "debug_vect"):
            if options.get(key):
                raise LinkConfigError(f"Expected {key} only with protocol 'mavlink', got protocol 'frames'")
        return FramesProtocol()
    if protocol == "mavlink":
        return MavlinkProtocol(clock=clock, **options)
    raise LinkConfigError(f"Expected protocol 'mavlink' or 'frames', got {protocol!r}")


def describe(msg: Any) -> str:
    """One human-readable line for a decoded message of either protocol."""
    if isinstance(msg, InferenceResult):
        top = " ".join(f"{c}:{p:.3f}" for c, p in msg.topk)
        return (f"RESULT seq={msg.sequence} t={msg.timestamp_us}us class={msg.class_id} "
                f"conf={msg.confidence:.4f} latency={msg.latency_ms:.3f}ms top=[{top}]")
    if isinstance(msg, StatusMessage):
        return f"STATUS severity={msg.severity} text={msg.text!r}"
    try:  # a pymavlink message
        head = f"[{msg.get_srcSystem()}/{msg.get_srcComponent()}{' signed' if msg.get_signed() else ''}]"
        return f"{head} {msg}"
    except AttributeError:
        return repr(msg)

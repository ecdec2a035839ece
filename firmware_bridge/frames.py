"""The framed serial protocol for bare MCUs (spec: docs/PROTOCOL.md).

Wire format of one frame::

    COBS( version:u8 | type:u8 | payload | crc16:u16le ) 0x00

``crc16`` is CRC-16/CCITT-FALSE over version, type and payload. All fields are
little-endian and fixed-size, so a C decoder (``c/hbnn_frames.h``) reads them
with shifts and no allocation. :class:`FrameDecoder` and the C decoder apply
the same checks in the same order and report the same ``ERR_*`` codes; the
tests feed both the same streams and compare.
"""
from __future__ import annotations

import math
import struct
from collections import Counter
from typing import Iterator, List, Union

from .errors import FrameError, InvalidResultError
from .framing import cobs_decode, cobs_encode, crc16_ccitt_false
from .results import InferenceResult, StatusMessage, severity_value

PROTOCOL_VERSION = 1
DELIMITER = b"\x00"

TYPE_RESULT = 0x01
TYPE_STATUS = 0x02

TOPK_MAX = 4
STATUS_TEXT_MAX = 50

# sequence, timestamp_us, class_id, confidence, latency_us, topk_count, then
# TOPK_MAX x (class_id, confidence). Unused top-k slots are zero.
_RESULT = struct.Struct("<IQHfIB" + "Hf" * TOPK_MAX)
_STATUS = struct.Struct("<B%ds" % STATUS_TEXT_MAX)
_HEADER = struct.Struct("<BB")
_CRC = struct.Struct("<H")

RESULT_PAYLOAD_LEN = _RESULT.size  # 47
STATUS_PAYLOAD_LEN = _STATUS.size  # 51
PAYLOAD_LEN = {TYPE_RESULT: RESULT_PAYLOAD_LEN, TYPE_STATUS: STATUS_PAYLOAD_LEN}
#: Longest COBS-encoded frame without its delimiter; decoders buffer this much.
MAX_ENCODED_LEN = 64

LATENCY_US_MAX = 0xFFFFFFFF

# Error codes, in the order the checks run. Numbers match HBNN_ERR_* in C.
ERROR_CODES = {
    "ERR_COBS": -1,
    "ERR_SHORT": -2,
    "ERR_CRC": -3,
    "ERR_VERSION": -4,
    "ERR_TYPE": -5,
    "ERR_LENGTH": -6,
    "ERR_FIELD": -7,
    "ERR_OVERFLOW": -8,
}

Message = Union[InferenceResult, StatusMessage]


def _frame(msg_type: int, payload: bytes) -> bytes:
    body = _HEADER.pack(PROTOCOL_VERSION, msg_type) + payload
    return cobs_encode(body + _CRC.pack(crc16_ccitt_false(body))) + DELIMITER


def encode_result(result: InferenceResult) -> bytes:
    """Return the complete frame (COBS-encoded, 0x00-terminated) for a result."""
    if not isinstance(result, InferenceResult):
        raise InvalidResultError(f"Expected an InferenceResult, got {type(result).__name__}")
    top = list(result.topk[:TOPK_MAX])
    flat: List[Union[int, float]] = []
    for class_id, confidence in top + [(0, 0.0)] * (TOPK_MAX - len(top)):
        flat += [class_id, confidence]
    latency_us = min(LATENCY_US_MAX, int(round(result.latency_ms * 1000.0)))
    payload = _RESULT.pack(result.sequence, result.timestamp_us, result.class_id,
                           result.confidence, latency_us, len(top), *flat)
    return _frame(TYPE_RESULT, payload)


def encode_status(text: str, severity: Union[int, str] = "info") -> bytes:
    """Return the frame for a status text (UTF-8, cut to 50 bytes on a character boundary)."""
    if not isinstance(text, str):
        raise InvalidResultError(f"Expected status text to be a str, got {text!r}")
    raw = text.encode("utf-8")[:STATUS_TEXT_MAX]
    raw = raw.decode("utf-8", errors="ignore").encode("utf-8")  # drop a split character
    return _frame(TYPE_STATUS, _STATUS.pack(severity_value(severity), raw))


def decode_frame(encoded: bytes) -> Message:
    """Decode one frame given without its 0x00 delimiter; raise FrameError on any defect."""
    if len(encoded) > MAX_ENCODED_LEN:
        raise FrameError("ERR_OVERFLOW", f"Expected at most {MAX_ENCODED_LEN} encoded bytes, got {len(encoded)}")
    raw = cobs_decode(encoded)
    if len(raw) < _HEADER.size + _CRC.size:
        raise FrameError("ERR_SHORT", f"Expected at least 4 decoded bytes, got {len(raw)}")
    body, (crc,) = raw[:-2], _CRC.unpack(raw[-2:])
    expected = crc16_ccitt_false(body)
    if crc != expected:
        raise FrameError("ERR_CRC", f"Expected CRC 0x{expected:04x}, got 0x{crc:04x}")
    version, msg_type = _HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        raise FrameError("ERR_VERSION", f"Expected protocol version {PROTOCOL_VERSION}, got {version}")
    if msg_type not in PAYLOAD_LEN:
        raise FrameError("ERR_TYPE", f"Expected message type 1 or 2, got {msg_type}")
    payload = body[_HEADER.size:]
    if len(payload) != PAYLOAD_LEN[msg_type]:
        raise FrameError("ERR_LENGTH",
                         f"Expected a {PAYLOAD_LEN[msg_type]}-byte payload for type {msg_type}, got {len(payload)}")
    if msg_type == TYPE_STATUS:
        severity, text = _STATUS.unpack(payload)
        if severity > 7:
            raise FrameError("ERR_FIELD", f"Expected severity 0-7, got {severity}")
        return StatusMessage(severity, text.split(b"\x00", 1)[0].decode("utf-8", errors="replace"))
    fields = _RESULT.unpack(payload)
    sequence, timestamp_us, class_id, confidence, latency_us, count = fields[:6]
    if count > TOPK_MAX:
        raise FrameError("ERR_FIELD", f"Expected topk_count <= {TOPK_MAX}, got {count}")
    pairs = [(fields[6 + 2 * i], fields[7 + 2 * i]) for i in range(count)]
    if not all(math.isfinite(c) for c in [confidence] + [p[1] for p in pairs]):
        raise FrameError("ERR_FIELD", "Expected finite confidences, got NaN or infinity")
    return InferenceResult(sequence=sequence, timestamp_us=timestamp_us, class_id=class_id,
                           confidence=confidence, topk=pairs, latency_ms=latency_us / 1000.0)


class FrameDecoder:
    """Incremental decoder: feed any byte chunks, get whole messages back.

    Garbage never raises: a bad frame is counted in ``errors`` (a Counter keyed
    by ``ERR_*`` code) and skipped, and decoding resumes after the next 0x00.
    Empty frames (two delimiters in a row) are ignored silently.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._overflow = False
        self.messages = 0
        self.errors: Counter = Counter()

    def events(self, data: bytes) -> List[Union[Message, FrameError]]:
        """Decode ``data``; return messages and FrameErrors in stream order."""
        return list(self._events(data))

    def feed(self, data: bytes) -> List[Message]:
        """Decode ``data``; return only the good messages (errors are counted)."""
        # Errors are dropped as they come: garbage costs no memory here (the link loop's path).
        return [e for e in self._events(data) if not isinstance(e, FrameError)]

    def _events(self, data: bytes) -> Iterator[Union[Message, FrameError]]:
        for chunk_end, part in _split_keep(bytes(data)):
            if not chunk_end:
                self._append(part)
                continue
            self._append(part)
            if self._overflow:
                err = FrameError("ERR_OVERFLOW", f"Expected at most {MAX_ENCODED_LEN} bytes between delimiters")
                self._overflow = False
                self._buf.clear()
                self.errors[err.code] += 1
                yield err
            elif self._buf:
                frame = bytes(self._buf)
                self._buf.clear()
                try:
                    msg = decode_frame(frame)
                except FrameError as err:
                    self.errors[err.code] += 1
                    # A kept traceback pins decode_frame's frame and locals: ~1 KB per bad frame, so
                    # a stream of 2-byte garbage frames cost 490x its size (found by fuzzing).
                    err.__traceback__ = None
                    yield err
                    continue
                self.messages += 1
                yield msg

    def _append(self, part: bytes) -> None:
        if self._overflow:
            return
        if len(self._buf) + len(part) > MAX_ENCODED_LEN:
            self._overflow = True
            self._buf.clear()
        else:
            self._buf += part


def _split_keep(data: bytes):
    """Yield (ends_with_delimiter, bytes_before_delimiter) pieces of ``data``."""
    start = 0
    while True:
        end = data.find(0, start)
        if end < 0:
            if start < len(data):
                yield False, data[start:]
            return
        yield True, data[start:end]
        start = end + 1

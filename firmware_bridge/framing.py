"""Byte-level framing for the MCU protocol: COBS and CRC-16/CCITT-FALSE.

COBS (Consistent Overhead Byte Stuffing, Cheshire & Baker 1999) removes every
0x00 from a frame so 0x00 can delimit frames: a receiver that joins mid-stream
or loses bytes resynchronizes at the next 0x00. Overhead is one byte per 254.
The C twin of these functions is in ``c/hbnn_frames.h``; keep them in step.
"""
from __future__ import annotations

from .errors import FrameError


def _crc_table() -> tuple:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc16_ccitt_false(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no xor-out.

    ``crc16_ccitt_false(b"123456789") == 0x29B1`` (the catalogue check value).
    """
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC_TABLE[((crc >> 8) ^ byte) & 0xFF]
    return crc


def cobs_encode(data: bytes) -> bytes:
    """Encode ``data`` so it contains no 0x00 (the delimiter is not appended)."""
    out = bytearray()
    block = bytearray()
    for byte in data:
        if byte == 0:
            out.append(len(block) + 1)
            out += block
            block.clear()
        else:
            block.append(byte)
            if len(block) == 254:
                out.append(255)
                out += block
                block.clear()
    out.append(len(block) + 1)
    out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Invert :func:`cobs_encode`; raise FrameError(``ERR_COBS``) on a malformed block."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise FrameError("ERR_COBS", f"Expected a non-zero COBS code at offset {i}, got 0x00")
        end = i + code
        if end > n:
            raise FrameError("ERR_COBS",
                             f"Expected {code - 1} bytes after the COBS code at offset {i}, got {n - i - 1}")
        block = data[i + 1:end]
        if 0 in block:
            raise FrameError("ERR_COBS", f"Expected no 0x00 inside a COBS block, got one near offset {i}")
        out += block
        i = end
        # A block shorter than 254 stands for "data then 0x00", except at the end.
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)

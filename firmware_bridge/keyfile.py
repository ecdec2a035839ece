"""MAVLink 2 signing keys.

A key file holds the 32-byte secret shared with the autopilot, in one of two
forms (see docs/PROTOCOL.md):

* exactly 32 bytes of raw binary, or
* text with 64 hexadecimal digits; whitespace and ``#`` comment lines are
  ignored, so ``openssl rand -hex 32 > link.key`` makes a valid file.

An all-zero key is refused: ArduPilot treats it as "signing disabled".
"""
from __future__ import annotations

import os
import stat
import string
import warnings

from .errors import SigningKeyError

KEY_LEN = 32
_HEX = set(string.hexdigits)


def parse_signing_key(data: bytes, source: str = "key data") -> bytes:
    """Return the 32-byte secret contained in ``data`` (raw or hex text)."""
    if len(data) == KEY_LEN:
        key = bytes(data)
    else:
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError:
            raise SigningKeyError(
                f"Expected 32 raw bytes or 64 hex digits in {source}, got {len(data)} bytes of binary") from None
        lines = [line.split("#", 1)[0] for line in text.splitlines()]
        digits = "".join("".join(lines).split())
        if len(digits) != 2 * KEY_LEN or not set(digits) <= _HEX:
            raise SigningKeyError(
                f"Expected 32 raw bytes or 64 hex digits in {source}, got {len(digits)} characters of text")
        key = bytes.fromhex(digits)
    if not any(key):
        raise SigningKeyError(f"Expected a non-zero signing key in {source}, got all zeros")
    return key


def load_signing_key(path: str) -> bytes:
    """Read and check a key file; warn when other users may read it."""
    try:
        with open(path, "rb") as fh:
            data = fh.read(4096)
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise SigningKeyError(f"Expected a readable signing key file, got {path!r}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        warnings.warn(f"signing key file {path} is readable by other users; chmod 600 it", stacklevel=2)
    return parse_signing_key(data, f"signing key file {path!r}")

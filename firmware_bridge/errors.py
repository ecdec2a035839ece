"""Exceptions raised by the firmware bridge.

Every failure is a :class:`BridgeError`, so callers can catch one class. The
subclasses that describe bad input also derive from ``ValueError`` so code
that only knows the standard library still does the right thing.
"""
from __future__ import annotations


class BridgeError(Exception):
    """Base class of every firmware-bridge failure."""


class LinkConfigError(BridgeError, ValueError):
    """An option given to a reporter or listener is invalid."""


class InvalidResultError(BridgeError, ValueError):
    """An :class:`~firmware_bridge.InferenceResult` field is out of range."""


class SigningKeyError(BridgeError, ValueError):
    """A MAVLink 2 signing key file is missing or malformed."""


class LinkError(BridgeError, OSError):
    """The serial device or URL could not be opened."""


class FrameError(BridgeError, ValueError):
    """A framed-protocol frame failed to decode.

    ``code`` is one of the ``ERR_*`` names of :mod:`firmware_bridge.frames`,
    the same codes the C decoder returns.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

"""Errors raised by the converters package.

Every user-facing failure derives from ``ConverterError`` so the CLI can print
it as one line; messages read "Expected <what>, got <value>".
"""
from __future__ import annotations


class ConverterError(Exception):
    """Base class: a bad input the user can fix (printed as one line by ``hbnn``)."""


class DatasetError(ConverterError):
    """The Fashion-MNIST files are missing, truncated or corrupt."""


class ConfigError(ConverterError):
    """An unknown architecture, bad betas, or inconsistent options."""


class CheckpointError(ConverterError):
    """A checkpoint that is missing, unreadable, or does not match its architecture."""

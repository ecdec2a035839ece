"""Exceptions of the on-board runtime: every one is an :class:`EdgeError`.

Messages read "Expected <what>, got <value>". Classes that describe bad input also derive from
``ValueError`` (and the daemon's start-up failure from ``RuntimeError``), so code that only knows
the standard library still does the right thing.
"""
from __future__ import annotations


class EdgeError(Exception):
    """Base class of every runtime failure (catch this one to catch them all)."""


class ModelFormatError(EdgeError, ValueError):
    """A model file (or a graph about to be written to one) is malformed.

    The message names the problem ("Expected <what>, got <value>") and, when it
    comes from a file, the file's path.
    """


class InputSpecError(EdgeError, ValueError):
    """The model's input spec is malformed."""


class BadFrameError(EdgeError, ValueError):
    """A frame the preprocessor cannot use (wrong shape, dtype or non-finite values)."""


class SourceError(EdgeError):
    """Base class for frame-source failures."""


class SourceSpecError(SourceError, ValueError):
    """The ``--source`` string names no known source or is malformed."""


class MissingDependency(SourceError):
    """An optional package the source needs is not installed."""


class CameraUnavailable(SourceError):
    """The camera/file cannot be opened, or stopped delivering frames."""


class DaemonConfigError(EdgeError, ValueError):
    """The daemon's config file is missing, unreadable or has a bad value."""


class DaemonError(EdgeError, RuntimeError):
    """The daemon cannot start (no working model or link)."""

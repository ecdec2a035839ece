"""Exceptions of the on-board runtime."""
from __future__ import annotations


class ModelFormatError(ValueError):
    """A model file (or a graph about to be written to one) is malformed.

    The message names the problem ("Expected <what>, got <value>") and, when it
    comes from a file, the file's path.
    """

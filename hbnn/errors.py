"""The application's one error: a user-facing failure, printed as ``hbnn: error: ...``, exit status 2."""
from __future__ import annotations


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2 ("Expected X, got Y")."""

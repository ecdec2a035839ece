"""On-board runtime for HadaNets: model loading, frame loop, inference daemon."""
from ._version import __version__

__all__ = ["__version__"]

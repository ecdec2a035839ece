"""On-board runtime for HadaNets: model loading, frame loop, inference daemon (the `hbnn` command is hbnn/)."""
from ._version import __version__

# Imported on first use (PEP 562) so that `import edge` (and `hbnn --version`) stays cheap
# and works even before the kernels are built.
_LAZY = {"Interpreter": "edge.interpreter", "EdgeError": "edge.errors", "ModelFormatError": "edge.errors",
         "load_model": "edge.format"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'edge' has no attribute {name!r}")


__all__ = ["__version__", "EdgeError", "Interpreter", "ModelFormatError", "load_model"]

"""The ``hbnn`` application: the command line over the runtime, converter, bridge and kernels.

The top layer: it imports every package below it (``edge``, ``converters``, ``firmware_bridge``,
``cy_kernels``) and nothing imports it. The bundled model and demo clip ship inside it as package
data (``hbnn/models/``, paths in :mod:`hbnn.bundled`).
"""
from edge._version import __version__

__all__ = ["__version__"]

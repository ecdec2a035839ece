"""xHBNN kernels: Hadamard-binarized linear and conv layers on XOR + popcount.

Public functional API (float in, float out; packing is internal)::

    backend_name() -> "avx512" | "avx2" | "neon" | "portable"
    available_backends() -> the ones this build and CPU can run, best first
    hbnn_linear(x, w, beta_w, beta_a, threads=1, **epilogue)
    hbnn_conv2d(x, w, beta_w, beta_a, stride=1, padding=0, threads=1, **epilogue)
    pack_weights(w, beta_w) -> PackedWeights

``w`` may be a float32 array or a PackedWeights. The fused extras (keyword only):
``in_scale``/``in_bias`` (per input channel, applied before activation binarization:
a folded BatchNorm), ``out_scale``/``out_bias`` (per output channel), ``relu`` and
``out`` (a preallocated float32 result). ``cy_kernels.reference`` is the ground truth.

For per-frame use, ``prepare_conv2d`` / ``prepare_linear`` validate once and return a
callable bound to one input shape with every buffer allocated (``op(x, out)``), and
``frame_executor(ops, threads)`` runs a whole list of such steps as one C call per frame on
a persistent thread pool (what ``edge.Interpreter`` does).
"""
import os as _os

# Idle OpenMP workers sleep instead of spinning. A spinning worker on a board that also runs the
# camera, the MAVLink link and other services turned a 2 ms conv into 12 ms (measured here under
# load; even a 10,000-iteration spin doubled it); sleeping costs tens of microseconds of wake-up
# per parallel region, and small layers run on one thread anyway. libgomp reads this once, when the
# extension loads it: set your own value before importing cy_kernels to override.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_API = ("PackedWeights", "available_backends", "backend_name", "frame_executor", "hbnn_conv2d", "hbnn_linear",
        "pack_weights",
        "prepare_conv2d", "prepare_linear")


def __getattr__(name):
    # The compiled kernels load on first use (PEP 562), so `import cy_kernels.reference` (the NumPy
    # ground truth, used by the model writer and the runtime's reference mode) needs no build.
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'cy_kernels' has no attribute {name!r}")


__all__ = list(_API)

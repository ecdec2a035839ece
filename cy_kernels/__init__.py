"""xHBNN kernels: Hadamard-binarized linear and conv layers on XOR + popcount.

Public functional API (float in, float out; packing is internal)::

    backend_name() -> "avx2" | "neon" | "portable"
    hbnn_linear(x, w, beta_w, beta_a, threads=1, **epilogue)
    hbnn_conv2d(x, w, beta_w, beta_a, stride=1, padding=0, threads=1, **epilogue)
    pack_weights(w, beta_w) -> PackedWeights

``w`` may be a float32 array or a PackedWeights. The fused extras (keyword only):
``in_scale``/``in_bias`` (per input channel, applied before activation binarization:
a folded BatchNorm), ``out_scale``/``out_bias`` (per output channel), ``relu`` and
``out`` (a preallocated float32 result). ``cy_kernels.reference`` is the ground truth.

For per-frame use, ``prepare_conv2d`` / ``prepare_linear`` validate once and return a
callable bound to one input shape with every buffer allocated (``op(x, out)``).
"""
from .api import (PackedWeights, backend_name, hbnn_conv2d, hbnn_linear, pack_weights, prepare_conv2d,
                  prepare_linear)

__all__ = ["PackedWeights", "backend_name", "hbnn_conv2d", "hbnn_linear", "pack_weights", "prepare_conv2d",
           "prepare_linear"]

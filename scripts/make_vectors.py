#!/usr/bin/env python3
"""Generate the golden vectors in tests/vectors/ from the NumPy reference.

The x86 and the emulated ARM test runs both compare the kernels against these very
numbers, so a difference between platforms cannot hide behind a regenerated reference.
Rerun (`make vectors`) only when the math contract changes, and commit the result.
"""
from __future__ import annotations

import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from cy_kernels import reference as ref  # noqa: E402

# (name, x shape NHWC, w shape (O, kh, kw, C), beta_w, beta_a, stride, padding); 0 beta = inf
CONV_CASES = [
    ("alex_16_16", (1, 6, 6, 128), (8, 3, 3, 128), 16, 16, 1, 1),
    ("alex_64_64_s2", (1, 7, 7, 64), (5, 3, 3, 64), 64, 64, 2, 1),
    ("xnor_c65", (2, 5, 6, 65), (4, 3, 3, 65), 0, 0, 1, 2),
    ("lenet_16_2", (1, 12, 12, 20), (6, 5, 5, 20), 16, 2, 1, 0),
    ("hbwn_8_1", (1, 5, 5, 33), (3, 3, 3, 33), 8, 1, 1, 1),
    ("w1_a16", (1, 4, 4, 32), (3, 3, 3, 32), 1, 16, 1, 1),
    ("c3_16_inf", (1, 6, 6, 3), (4, 3, 3, 3), 16, 0, 2, 1),
]
LINEAR_CASES = [("fc_1000_16_16", 3, 1000, 5, 16, 16), ("fc_800_16_2", 2, 800, 7, 16, 2),
                ("fc_129_inf", 2, 129, 3, 0, 0), ("fc_64_512_8", 2, 1024, 3, 512, 8)]


def beta(b):
    return None if b == 0 else b


def main() -> None:
    rng = np.random.default_rng(2026)
    arrays = {}
    for name, xs, ws, bw, ba, stride, pad in CONV_CASES:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        arrays[f"{name}.x"], arrays[f"{name}.w"] = x, w
        arrays[f"{name}.params"] = np.array([bw, ba, stride, pad], dtype=np.int64)
        arrays[f"{name}.out"] = ref.hbnn_conv2d(x, w, beta(bw), beta(ba), stride, pad)
        if bw != 1:
            arrays[f"{name}.wbits"] = ref.pack_bits(w.reshape(ws[0], -1))
            arrays[f"{name}.wscales"] = ref.segment_scales(w.reshape(ws[0], -1), beta(bw))
    for name, m, k, n, bw, ba in LINEAR_CASES:
        x = rng.standard_normal((m, k)).astype(np.float32)
        w = rng.standard_normal((n, k)).astype(np.float32)
        arrays[f"{name}.x"], arrays[f"{name}.w"] = x, w
        arrays[f"{name}.params"] = np.array([bw, ba, 1, 0], dtype=np.int64)
        arrays[f"{name}.out"] = ref.hbnn_linear(x, w, beta(bw), beta(ba))
        arrays[f"{name}.wbits"] = ref.pack_bits(w)
        arrays[f"{name}.wscales"] = ref.segment_scales(w, beta(bw))
    path = os.path.join(ROOT, "tests", "vectors", "kernels.npz")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.savez_compressed(path, **arrays)
    print(f"wrote {path}: {len(arrays)} arrays, {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()

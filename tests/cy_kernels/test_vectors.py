"""Golden vectors (tests/vectors/kernels.npz, made by scripts/make_vectors.py from the reference).

The same file is checked on x86 and under ARM emulation: packed bits must match bit for bit,
outputs within 1e-5 of their magnitude.
"""
import os

import numpy as np
import pytest

import cy_kernels as ck
from cy_kernels import reference as ref
from kernel_checks import assert_close, conv_magnitude, magnitude

VECTORS = os.path.join(os.path.dirname(__file__), os.pardir, "vectors", "kernels.npz")


def load():
    with np.load(VECTORS, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    return {name: {k.split(".", 1)[1]: v for k, v in arrays.items() if k.split(".", 1)[0] == name}
            for name in sorted({k.split(".", 1)[0] for k in arrays})}


CASES = load()


def beta(b):
    return None if b == 0 else int(b)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_vector(backend, name):
    case = CASES[name]
    bw, ba, stride, pad = (int(v) for v in case["params"])
    x, w = case["x"], case["w"]
    if "wbits" in case:
        pw = ck.pack_weights(w, beta(bw))
        np.testing.assert_array_equal(pw.bits, case["wbits"])
        np.testing.assert_array_equal(pw.scales, case["wscales"])
    if x.ndim == 4:
        out = ck.hbnn_conv2d(x, w, beta(bw), beta(ba), stride=stride, padding=pad)
        mag = conv_magnitude(x, w, beta(bw), beta(ba), stride, pad)
    else:
        out = ck.hbnn_linear(x, w, beta(bw), beta(ba))
        mag = magnitude(ref.binarize_rows(x, beta(ba)), ref.binarize_rows(w, beta(bw)))
    assert_close(out, case["out"], mag)

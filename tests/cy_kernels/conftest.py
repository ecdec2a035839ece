"""Every kernel test runs once per backend present on this machine (e.g. avx512, avx2 and portable)."""
from __future__ import annotations

import pytest

import cy_kernels
from cy_kernels import _xhbnn

BEST = cy_kernels.backend_name()
BACKENDS = _xhbnn.available_backends()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Switch the kernels to one backend for the test, then back to the one selected at import."""
    name = _xhbnn._use_backend(request.param)
    assert name == request.param
    yield name
    _xhbnn._use_backend(BEST)

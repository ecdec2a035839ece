"""Every kernel test runs once per backend present on this machine."""
from __future__ import annotations

import pytest

import cy_kernels
from cy_kernels import _xhbnn

BEST = cy_kernels.backend_name()
BACKENDS = [BEST] if BEST == "portable" else [BEST, "portable"]


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Switch the kernels to one backend for the test, then back to the best one."""
    name = _xhbnn._use_backend(request.param == "portable" and BEST != "portable")
    assert name == request.param
    yield name
    _xhbnn._use_backend(False)

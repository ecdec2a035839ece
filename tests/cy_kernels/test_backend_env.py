"""HBNN_FORCE_PORTABLE=1 selects the portable backend in a fresh process."""
import os
import subprocess
import sys

import pytest


@pytest.mark.no_emulation
def test_force_portable_env():
    code = "import cy_kernels; print(cy_kernels.backend_name())"
    env = dict(os.environ, HBNN_FORCE_PORTABLE="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "portable"

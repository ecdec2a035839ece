"""The x86-64 build must run on a CPU without AVX2: it picks the portable kernels at run time.

Runs this interpreter under QEMU user-mode emulating a Nehalem (SSE4.2, no AVX) and checks the
backend choice and one result against the reference. Skipped where qemu-x86_64 is not installed.
"""
import os
import platform
import shutil
import subprocess
import sys

import pytest

QEMU = shutil.which("qemu-x86_64-static") or shutil.which("qemu-x86_64")

CODE = """
import numpy as np, cy_kernels as ck
from cy_kernels import reference as ref
x = np.random.default_rng(0).standard_normal((1, 6, 6, 64)).astype(np.float32)
w = np.random.default_rng(1).standard_normal((4, 3, 3, 64)).astype(np.float32)
err = float(abs(ck.hbnn_conv2d(x, w, 16, 16, padding=1) - ref.hbnn_conv2d(x, w, 16, 16, padding=1)).max())
print(ck.backend_name(), err)
"""


@pytest.mark.no_emulation
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or QEMU is None,
                    reason="needs an x86-64 host with qemu-x86_64 (apt-get install qemu-user-static)")
def test_runs_on_a_cpu_without_avx2():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([QEMU, "-cpu", "Nehalem", sys.executable, "-c", CODE], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    name, err = done.stdout.split()
    assert name == "portable"
    assert float(err) < 1e-3

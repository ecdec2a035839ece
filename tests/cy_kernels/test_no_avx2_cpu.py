"""The x86-64 build must run on older CPUs: it picks its kernels at run time.

Runs this interpreter under QEMU user-mode emulating a Nehalem (SSE4.2, no AVX: portable kernels)
and a Haswell (AVX2, no AVX-512: the AVX2 kernels) and checks the backend choice and one result
against the reference. Skipped where qemu-x86_64 is not installed.
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
@pytest.mark.parametrize("cpu,want", [("Nehalem", "portable"), ("Haswell", "avx2")])
def test_runs_on_a_cpu_without_avx2(cpu, want):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    done = subprocess.run([QEMU, "-cpu", cpu, sys.executable, "-c", CODE], cwd=root,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    name, err = done.stdout.split()
    assert name == want
    assert float(err) < 1e-3

"""The C kernels compile without a warning under -Wall -Wextra, for every ISA we ship.

setup.py builds the extension with -Wall only (the Cython-generated C is not ours to clean up);
this compiles the kernel sources on their own, with -Werror, for x86-64 (AVX-512, AVX2 and
portable are all in one build) and, where the cross compilers are installed (scripts/cross-build
installs them; CI has them), for aarch64 and armv7 NEON.
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "cy_kernels", "src")
FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-Wno-unused-function", "-fopenmp"]
TARGETS = {  # compiler -> its setup.py arch flags
    "cc": [],
    "aarch64-linux-gnu-gcc": ["-march=armv8-a"],
    "arm-linux-gnueabihf-gcc": ["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"],
}


@pytest.mark.no_emulation
@pytest.mark.parametrize("compiler", [c for c in TARGETS if c == "cc" or shutil.which(c)])
def test_kernels_compile_cleanly_with_wall_wextra(compiler, tmp_path):
    cmd = [compiler, *FLAGS, *TARGETS[compiler], "-I", SRC, "-c", os.path.join(SRC, "xhbnn.c"),
           "-o", str(tmp_path / "xhbnn.o")]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"Expected no warnings from {' '.join(cmd)}, got:\n{done.stderr[-3000:]}"

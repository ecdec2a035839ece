"""The NumPy reference, the model writer and the runtime's reference mode need no compiled kernels."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in a fresh interpreter in which importing the extension fails, as on a tree never built.
HIDDEN = '''
import sys

class HideExtension:
    def find_spec(self, name, path=None, target=None):
        if name == "cy_kernels._xhbnn":
            raise ImportError("hidden by the test")

sys.meta_path.insert(0, HideExtension())
import numpy as np
import cy_kernels.reference as ref
from edge.format import write_hbn
from edge.interpreter import Interpreter
import cy_kernels.reference_int
sys.path.insert(0, "tests")
import int_fakes, model_fakes

fake = {"float": model_fakes.random_lenet, "int": int_fakes.int_lenet}[sys.argv[2]]
graph, tensors = fake(16, 2, seed=3)
write_hbn(sys.argv[1], graph, tensors)
p = Interpreter(sys.argv[1], reference=True).predict(np.zeros((2, 28, 28), np.uint8))
assert p.shape == (2, 10) and abs(float(p.sum()) - 2) < 1e-5
try:
    import cy_kernels
    cy_kernels.backend_name()
except ImportError as exc:
    print("kernels:", exc)
'''


@pytest.mark.no_emulation
@pytest.mark.parametrize("scales", ["float", "int"])  # int: integer-scale layers (DESIGN.md section 9)
def test_reference_mode_and_model_writing_work_with_the_extension_hidden(tmp_path, scales):
    out = subprocess.run([sys.executable, "-c", HIDDEN, str(tmp_path / "m.hbn"), scales], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "kernels: cy_kernels._xhbnn is not built" in out.stdout  # the import really was hidden

"""The demo end to end: clip -> model -> MAVLink over a pty -> decoded on the FC side."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from hbnn.cli import CommandError
from hbnn.bundled import BUNDLED_CLIP
from hbnn.demo import run_demo


def _random_model(tmp_path):
    from edge.format import write_hbn
    from model_fakes import random_lenet
    graph, tensors = random_lenet()
    path = tmp_path / "lenet.hbn"
    write_hbn(str(path), graph, tensors)
    return path


@pytest.mark.no_emulation
def test_demo_every_result_reaches_the_flight_controller(tmp_path):
    lines = []
    rc = run_demo(str(_random_model(tmp_path)), str(BUNDLED_CLIP), show=6, printer=lines.append)
    text = "\n".join(lines)
    assert rc == 0, text
    fc = [l for l in lines if l.startswith("FC <- ") and "more messages" not in l]
    assert len(fc) == 6 and any(re.match(r"FC <- NAMED_VALUE_INT HBNN_CLS=\d \(.+\)", l) for l in fc)
    assert "'NAMED_VALUE_INT': 300" in text and "'NAMED_VALUE_FLOAT': 300" in text
    assert "'results_sent': 300" in text and "'drops': 0" in text
    assert re.search(r"accuracy  \d+/300 = 0\.\d{3} on the clip", text)
    assert re.search(r"latency p50 [\d.]+ / p95 [\d.]+ / p99 [\d.]+ ms", text)
    assert "KiB on disk" in text


def test_demo_names_what_is_missing(tmp_path):
    with pytest.raises(CommandError, match="missing: the bundled model .*nope.hbn"):
        run_demo(str(tmp_path / "nope.hbn"), str(BUNDLED_CLIP))
    with pytest.raises(CommandError, match="demo clip"):
        run_demo(str(tmp_path / "nope.hbn"), str(tmp_path / "clip.npz"))


@pytest.mark.no_emulation
def test_make_demo_command_on_the_bundled_model():
    """What `make demo` runs, as a process: exit 0 and a trained model's accuracy on real frames."""
    out = subprocess.run([sys.executable, "-c", "import sys; from hbnn.cli import main; sys.exit(main(['demo']))"], capture_output=True, text=True,
                         timeout=120, cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    assert out.returncode == 0, out.stdout + out.stderr
    acc = float(re.search(r"accuracy  \d+/\d+ = ([\d.]+)", out.stdout).group(1))
    assert acc >= 0.75, out.stdout

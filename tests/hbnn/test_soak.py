"""`hbnn bench soak` on a few hundred frames: windows, RSS figures, the error checks, the verdict."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hbnn.bundled import BUNDLED_CLIP, BUNDLED_MODEL
from hbnn.cli import main

MODEL, CLIP = str(BUNDLED_MODEL), str(BUNDLED_CLIP)  # package data: also in an installed wheel


@pytest.mark.no_emulation
def test_soak_through_the_loop_and_a_pty_link_passes(tmp_path, capsys):
    out = tmp_path / "soak.json"
    rc = main(["bench", "soak", "--model", MODEL, "--clip", CLIP, "--frames", "400", "--window", "100",
               "--warmup", "100", "--json", str(out)])
    text = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert rc == 0 and report["ok"] and text.rstrip().endswith("PASS"), text
    assert report["frames"] == 400 and [w["frames"] for w in report["windows"]] == [100, 200, 300, 400]
    for w in report["windows"]:
        assert 0 < w["p50_ms"] <= w["p99_ms"] <= w["max_ms"] and w["rss_mib"] > 10 and w["fps"] > 0
    assert report["rss_end_mib"] - report["rss_start_mib"] == pytest.approx(report["rss_growth_mib"], abs=0.01)
    assert not any(report["errors"].values()), report["errors"]
    # Every result the bridge sent was decoded at the flight controller's end of the pty.
    assert report["results_sent"] == report["fc_results"] > 0
    assert report["results_sent"] + report["queue_drops"] == 500  # warm-up included
    assert "hbnn bench soak --model" in report["command"]


def test_soak_fails_on_rss_growth_limit(capsys):
    rc = main(["bench", "soak", "--model", MODEL, "--clip", CLIP, "--frames", "200", "--window", "100",
               "--warmup", "50", "--link", "none", "--max-growth-mib", "-1"])
    text = capsys.readouterr().out
    assert rc == 1 and "FAIL: RSS grew" in text


def test_soak_counts_results_that_change_for_the_same_frame():
    from edge import Interpreter
    from hbnn.soak import run_soak

    class Drifting(Interpreter):
        """From the 450th call on, the output is rolled by one class: corrupted state."""
        calls = 0

        def get_tensor(self, index):
            y = super().get_tensor(index)
            Drifting.calls += 1
            return np.roll(y, 1, axis=-1) if Drifting.calls >= 450 else y

    lines = []
    # Only the drift detector is under test here: the RSS limit is lifted, since under emulated ARM
    # the process's RSS also holds QEMU's translated code (it grew 2.0 MiB in one CI run on armv7).
    report = run_soak(Drifting(MODEL), CLIP, frames=400, window=200, warmup=100,
                      link=None, max_growth_mib=1024, out=lines.append)
    assert not report["ok"] and report["errors"]["changed_results"] > 0
    assert lines[-1].startswith("FAIL: errors: changed_results")

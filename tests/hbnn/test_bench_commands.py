"""`hbnn bench models` / `bench memory` plumbing (not timing): rows, correctness column, memory report."""
from __future__ import annotations

import json
import math

import pytest

from hbnn.cli import main


def test_bench_models_hbnn_rows_match_pytorch(tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "rows.json"
    rc = main(["bench", "models", "--archs", "lenet", "--betas", "16,2 1,1", "--threads", "1,2",
               "--runs", "3", "--max-seconds", "0", "--rounds", "2", "--no-peers", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())["rows"]
    assert [(r["precision"], r["threads"]) for r in rows] == [  # integer-scale rows by default, after the float ones
        ("beta (16,2)", 1), ("beta (16,2)", 2), ("full precision", 1), ("full precision", 2),
        ("beta (16,2) int", 1), ("beta (16,2) int", 2), ("beta (16,16) int", 1), ("beta (16,16) int", 2)]
    int_rows = [r for r in rows if r["precision"].endswith(" int") and r["threads"] == 1]
    assert all(r["median_ms"] > 0 and r["max_abs_diff_vs_torch"] < 1e-3 for r in int_rows)
    assert int_rows[0]["model_kib"] < 0.7 * rows[0]["model_kib"]  # 7-bit levels instead of float scales
    rows = [r for r in rows if r["threads"] == 1 and not r["precision"].endswith(" int")]
    for r in rows:
        assert r["median_ms"] > 0 and r["model_kib"] > 0 and r["rounds"] == 2 and r["runs"] == 6
        assert r["round_min_ms"] <= r["median_ms"] <= r["round_max_ms"] and r["fps"] > 0
        assert r["flagged"] == (r["spread"] > 0.2)
        assert r["max_abs_diff_vs_torch"] < 1e-4  # the runtime computes what the PyTorch model computes
    assert rows[0]["model_kib"] < rows[1]["model_kib"] / 4  # packed bits vs float32
    printed = capsys.readouterr().out
    assert "| lenet | hbnn (edge.Interpreter) | beta (16,2) | 1 |" in printed
    assert "| model | engine | precision | 1 thr ms | 2 thr ms | x2/1 |" in printed  # the threads table


@pytest.mark.no_emulation
def test_bench_memory_reports_rss(tmp_path):
    from edge.format import write_hbn
    from hbnn.memory import measure_infer_memory
    from model_fakes import random_lenet
    graph, tensors = random_lenet()
    write_hbn(str(tmp_path / "m.hbn"), graph, tensors)
    report = measure_infer_memory(str(tmp_path / "m.hbn"), "hbnn/models/fmnist-test-clip.npz", frames=400)
    assert report["frames"] == 400 and "frames 400" in report["summary_line"]
    assert 10 < report["peak_rss_mib"] < 2000 and not math.isnan(report["peak_rss_mib"])
    # a short (fast) run still has warm samples to report growth from
    assert report["rss_warm_mib"] <= report["peak_rss_mib"] and "growth_mib" in report

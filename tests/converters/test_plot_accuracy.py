"""benchmarks/plot_accuracy.py: a PNG from records + bench rows; rows without data are left out, not invented."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

import accuracy_store as store  # noqa: E402
from test_accuracy_table import fake_record  # noqa: E402


def _bench(*precisions):
    rows = [{"arch": "lenet", "engine": "hbnn (edge.Interpreter)", "precision": p, "threads": 1, "median_ms": ms}
            for p, ms in precisions]
    rows += [{"arch": "lenet", "engine": "ai-edge-litert (XNNPACK)", "precision": "float32", "threads": 1,
              "median_ms": 0.3},
             {"arch": "lenet", "engine": "ai-edge-litert (XNNPACK)", "precision": "int8", "threads": 1,
              "median_ms": 0.2},
             {"arch": "lenet", "engine": "hbnn (edge.Interpreter)", "precision": "beta (16,2)", "threads": 2,
              "median_ms": 0.01}]
    return {"rows": rows}


def test_points_use_one_thread_latency_and_say_what_is_missing():
    import plot_accuracy

    recs = [fake_record("FP", 0, 0.91), fake_record("FP", 1, 0.92), fake_record("HadaNet(16,2)", 0, 0.90),
            fake_record("XNOR-Net", 0, 0.89)]
    pts, skipped = plot_accuracy.points(recs, _bench(("full precision", 0.5), ("beta (16,2)", 0.17)))
    assert [(p["label"], p["ms"], p["n"]) for p in pts] == [("FP", 0.5, 2), ("HadaNet(16,2)", 0.17, 1)]
    assert pts[0]["acc"] == pytest.approx(91.5) and pts[1]["sd"] == 0.0
    assert any(s.startswith("XNOR-Net: no 1-thread lenet latency") for s in skipped)
    assert "HadaNet(4,4): no records yet" in skipped


def test_chart_writes_a_png_with_an_arm_panel(tmp_path):
    pytest.importorskip("matplotlib")
    import plot_accuracy

    results = tmp_path / "results"
    for rec in (fake_record("FP", 0, 0.91), fake_record("HadaNet(16,2)", 0, 0.905)):
        store.write_record(str(results / f"{rec['row']}-{rec['seed']}.json"), rec)
    bench = tmp_path / "bench.json"
    bench.write_text(__import__("json").dumps(_bench(("full precision", 0.5), ("beta (16,2)", 0.17))))
    out = tmp_path / "chart.png"
    assert plot_accuracy.main(["--bench", str(bench), "--arm", str(bench), "--results", str(results),
                               "-o", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_no_records_is_a_clear_error_not_an_empty_chart(tmp_path):
    pytest.importorskip("matplotlib")
    import plot_accuracy

    bench = tmp_path / "bench.json"
    bench.write_text('{"rows": []}')
    with pytest.raises(SystemExit, match="Expected at least one accuracy record"):
        plot_accuracy.main(["--bench", str(bench), "--results", str(tmp_path / "none"), "-o", str(tmp_path / "x.png")])
    assert not (tmp_path / "x.png").exists()


def test_repeated_bench_runs_give_each_row_its_median_and_int_rows_their_own_points():
    import plot_accuracy

    runs = [_bench(("beta (16,2)", ms), ("beta (16,2) int", ms / 2)) for ms in (0.2, 0.1, 0.3)]
    merged = plot_accuracy.merge_bench(runs)
    assert plot_accuracy.latency(merged, "hbnn", "beta (16,2)") == pytest.approx(0.2)
    assert plot_accuracy.latency(merged, "hbnn", "beta (16,2) int") == pytest.approx(0.1)
    recs = [fake_record("HadaNet(16,2)", 0, 0.90), fake_record("HadaNet(16,2) int", 0, 0.899)]
    pts, _ = plot_accuracy.points(recs, merged)
    assert [(p["label"], p["ms"]) for p in pts] == [("HadaNet(16,2)", pytest.approx(0.2)),
                                                    ("HadaNet(16,2) int", pytest.approx(0.1))]


def test_arm_bench_json_becomes_a72_rows_at_the_pi4_clock():
    import plot_accuracy

    def row(engine, core, ms15):
        return {"model": "lenet", "engine": engine, "core": core, "cycles_per_frame": ms15 * 1.5e6,
                "ms": {"1.2": ms15 * 1.25, "1.5": ms15, "2.4": ms15 / 1.6}}
    doc = {"target": "aarch64", "results": [
        row("HadaNet (1,1)", "a72", 2.0), row("HadaNet (16,2)", "a72", 0.8), row("HadaNet (16,2 int)", "a72", 0.6),
        row("HadaNet (inf,inf)", "a72", 0.3), row("HadaNet (16,2)", "a76", 0.1),
        row("LiteRT fp32", "a72", 1.5), row("LiteRT int8", "a72", 1.2)]}
    bench = plot_accuracy.from_arm_bench(doc)
    assert plot_accuracy.latency(bench, "hbnn", "full precision") == 2.0
    assert plot_accuracy.latency(bench, "hbnn", "beta (16,2)") == 0.8      # the A72 row, not the A76's
    assert plot_accuracy.latency(bench, "hbnn", "beta (16,2) int") == 0.6
    assert plot_accuracy.latency(bench, "hbnn", "beta (inf,inf)") == 0.3
    assert plot_accuracy.latency(bench, "ai-edge-litert", "float32") == 1.5
    assert plot_accuracy.latency(bench, "ai-edge-litert", "int8") == 1.2
    assert plot_accuracy.from_arm_bench({"rows": []}) == {"rows": []}  # bench shape passes through

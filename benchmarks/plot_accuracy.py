"""Accuracy against latency: which beta to fly (PNG; needs the ``plot`` extra, matplotlib).

    hbnn bench models --archs lenet --threads 1 --betas "1,1 4,1 4,4 8,1 16,2 16,16 64,64 inf,inf" \
        --int-betas "16,2 16,16" --json bench.json
    python benchmarks/plot_accuracy.py --bench bench*.json -o docs/accuracy-latency.png [--arm arm.json]

One point per table row that has records: y = mean test top-1 through the runtime (error bar:
sample standard deviation over its seeds; "n=" says how many), x = batch-1 median latency of
that (beta_w, beta_a) LeNet on this machine, 1 thread, marker area = ``.hbn`` file size.
LiteRT (XNNPACK) float32 runs the FP row's float network, so it is drawn at the FP row's
accuracy; LiteRT int8 accuracy is not measured, so int8 is a vertical line at its latency.
Several ``--bench`` files (repeated runs): each row's latency is the median of its runs' medians.
``--arm``: a second panel with the emulated Cortex-A72 estimate, from ``scripts/arm-bench aarch64
--archs lenet --cores a72 --json`` (estimated cycles per frame at a Pi 4's 1.5 GHz; see
docs/BENCHMARKS.md, "ARM (estimated)"), or rows of the same shape as ``hbnn bench models --json``
(``{"rows": [{"arch", "engine", "precision", "threads", "median_ms"}, ...]}``). Rows without
records, or without a latency, are left out and listed on stdout: nothing is invented.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from accuracy_store import RESULTS_DIR, ROWS, Row, load_records, mean_spread  # noqa: E402


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise SystemExit("plot_accuracy.py: error: Expected matplotlib for the chart, got none "
                         "(pip install '.[plot]')") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def precision_label(row: Row) -> str:
    """The ``precision`` text ``hbnn bench models`` gives this row's (beta_w, beta_a)."""
    if row.is_float:
        return "full precision"
    f = lambda b: "inf" if b is None else str(b)  # noqa: E731
    return f"beta ({f(row.beta_w)},{f(row.beta_a)})" + (" int" if row.int_scales else "")


def latency(bench: dict, engine: str, precision: str, threads: int = 1, arch: str = "lenet") -> Optional[float]:
    for r in bench.get("rows", []):
        if (r.get("arch") == arch and r.get("threads") == threads and str(r.get("engine", "")).startswith(engine)
                and r.get("precision") == precision):
            return float(r["median_ms"])
    return None


ARM_CORE, ARM_GHZ = "a72", "1.5"  # the Raspberry Pi 4's core and clock


def from_arm_bench(doc: dict, core: str = ARM_CORE, ghz: str = ARM_GHZ) -> dict:
    """``scripts/arm-bench --json`` output as bench rows: estimated ms per frame on ``core`` at ``ghz``.
    Engines there are "HadaNet (16,2)", "HadaNet (16,2 int)", "LiteRT fp32", "LiteRT int8"."""
    if "rows" in doc:  # already in bench shape
        return doc
    rows = []
    for r in doc.get("results", []):
        if r.get("core") != core or ghz not in r.get("ms", {}):
            continue
        engine = str(r.get("engine", ""))
        if engine.startswith("HadaNet (") and engine.endswith(")"):
            name = engine[len("HadaNet ("):-1]
            int_scales = name.endswith(" int")
            bw, ba = (None if v == "inf" else int(v) for v in name.replace(" int", "").split(","))
            f = lambda b: "inf" if b is None else str(b)  # noqa: E731
            precision = ("full precision" if (bw, ba) == (1, 1)
                         else f"beta ({f(bw)},{f(ba)})" + (" int" if int_scales else ""))
            rows.append({"arch": r.get("model"), "engine": "hbnn", "precision": precision, "threads": 1,
                         "median_ms": r["ms"][ghz]})
        elif engine.startswith("LiteRT "):
            kind = engine.split()[-1]
            rows.append({"arch": r.get("model"), "engine": "ai-edge-litert",
                         "precision": "float32" if kind == "fp32" else kind, "threads": 1,
                         "median_ms": r["ms"][ghz]})
    return {"rows": rows}


def merge_bench(benches: List[dict]) -> dict:
    """One bench dict from repeated runs: per (arch, engine, precision, threads), the median of the
    runs' median_ms (rows missing from some runs use the runs that have them)."""
    import statistics

    by_key: Dict[tuple, list] = {}
    for bench in benches:
        for r in bench.get("rows", []):
            by_key.setdefault((r.get("arch"), r.get("engine"), r.get("precision"), r.get("threads")), []).append(r)
    rows = [dict(rs[0], median_ms=statistics.median(float(r["median_ms"]) for r in rs), runs=len(rs))
            for rs in by_key.values()]
    return {"rows": rows}


def points(records: List[dict], bench: dict) -> Tuple[List[dict], List[str]]:
    """Chart points (one per row with records and a latency) and what was left out, and why."""
    by_row: Dict[str, list] = {}
    for rec in records:
        by_row.setdefault(rec["row"], []).append(rec)
    out, skipped = [], []
    for row in ROWS:
        recs = by_row.get(row.label)
        if not recs:
            skipped.append(f"{row.label}: no records yet")
            continue
        ms = latency(bench, "hbnn", precision_label(row))
        if ms is None:
            skipped.append(f"{row.label}: no 1-thread lenet latency for {precision_label(row)!r} in the bench JSON")
            continue
        acc, sd = mean_spread([100 * r["test_top1_runtime"] for r in recs])
        out.append({"label": row.label, "ms": ms, "acc": acc, "sd": sd or 0.0, "n": len(recs),
                    "bytes": recs[0]["bytes"]})
    return out, skipped


def draw(ax, pts: List[dict], bench: dict, title: str) -> None:
    """Points labelled in the legend (text beside close points would overlap), figures included."""
    fp = next((p for p in pts if p["label"] == "FP"), None)
    for p in pts:
        area = 40 + 400 * p["bytes"] / 1_727_096  # float LeNet file = the largest marker
        spread = f" +- {p['sd']:.2f}" if p["n"] > 1 else ""
        ax.errorbar(p["ms"], p["acc"], yerr=p["sd"], fmt="none", ecolor="0.5", capsize=3, zorder=1)
        ax.scatter([p["ms"]], [p["acc"]], s=area, alpha=0.75, zorder=2,
                   label=f"{p['label']}: {p['acc']:.2f}{spread} %, {p['ms']:.3f} ms, "
                         f"{p['bytes'] / 1024:.0f} KiB, n={p['n']}")
    lf = latency(bench, "ai-edge-litert", "float32")
    if lf is not None and fp is not None:
        ax.scatter([lf], [fp["acc"]], marker="s", s=30, color="black", zorder=3,
                   label=f"LiteRT fp32 (XNNPACK), the FP network: {lf:.3f} ms")
    li = latency(bench, "ai-edge-litert", "int8")
    if li is not None:
        ax.axvline(li, color="black", linestyle="--", linewidth=1,
                   label=f"LiteRT int8 (XNNPACK): {li:.3f} ms; its accuracy is not measured")
    xs = [p["ms"] for p in pts] + [x for x in (lf, li) if x is not None]
    if xs:
        ax.set_xlim(0, max(xs) * 1.15)
    ax.set_xlabel("batch-1 median latency, ms (left is faster)")
    ax.set_ylabel("test top-1 through the runtime, % (mean over seeds)")
    ax.margins(y=0.12)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=1, frameon=False,
                  markerscale=0.5)


def plot(records: List[dict], bench: dict, out: str, arm: Optional[dict] = None) -> List[str]:
    """Write the PNG; returns the lines saying what was left out."""
    plt = _pyplot()
    pts, skipped = points(records, bench)
    panels = [(bench, pts, "this machine (x86), 1 thread")]
    if arm is not None:
        arm_pts, arm_skipped = points(records, arm)
        panels.append((arm, arm_pts, f"emulated Cortex-A72 (Pi 4) estimate at {ARM_GHZ} GHz, 1 thread"))
        skipped += [f"A72 panel: {s}" for s in arm_skipped if "no records" not in s]
    fig, axes = plt.subplots(1, len(panels), figsize=(7 * len(panels), 7.2), squeeze=False)
    for ax, (b, p, title) in zip(axes[0], panels):
        draw(ax, p, b, f"LeNet on Fashion-MNIST: accuracy vs latency, {title}\n"
                       f"marker area = .hbn file size; bars = seed spread; n = seeds")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return skipped


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", required=True, nargs="+", metavar="JSON",
                   help="`hbnn bench models --json` output (x86, 1 thread); several runs: median per row")
    p.add_argument("--arm", default=None, metavar="JSON",
                   help="scripts/arm-bench --json output with a72 LeNet rows (second panel: the Pi 4 estimate)")
    p.add_argument("--results", default=RESULTS_DIR, help="accuracy records directory")
    p.add_argument("-o", "--out", required=True, metavar="PNG")
    args = p.parse_args(argv)
    _pyplot()  # fail before reading anything when matplotlib is missing

    def read(path):
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise SystemExit(f"plot_accuracy.py: error: Expected a bench JSON file at {path}, got {exc}") from None
    records = load_records(args.results)
    if not records:
        raise SystemExit(f"plot_accuracy.py: error: Expected at least one accuracy record in {args.results}, got none "
                         f"(python benchmarks/accuracy_table.py run)")
    bench = merge_bench([read(path) for path in args.bench])
    skipped = plot(records, bench, args.out, from_arm_bench(read(args.arm)) if args.arm else None)
    for line in skipped:
        print(f"left out: {line}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The accuracy results store: one JSON record per finished (table row, seed) run, and the table from them.

Records live in ``benchmarks/results/accuracy/<slug>-s<seed>.json`` (committed), so the table
is filled over several sessions: a run whose record exists is skipped, and the table is
always rendered from whatever records exist, each row saying how many seeds it has. A
record carries its own recipe (epochs, schedule, distillation), so rows trained with
different schedules can sit in one table honestly. Pure Python: no torch, no runtime.
"""
from __future__ import annotations

import json
import math
import os
import statistics
from dataclasses import dataclass
from typing import Dict, List, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS_DIR = os.path.join(ROOT, "benchmarks", "results", "accuracy")
START, END = "<!-- accuracy-table:start -->", "<!-- accuracy-table:end -->"
RECORD_FORMAT = "hbnn-accuracy-record/1"


@dataclass(frozen=True)
class Row:
    label: str
    beta_w: Optional[int]  # None = inf (one segment per row)
    beta_a: Optional[int]
    int_scales: bool = False  # 7-bit scale levels x float factors (docs/DESIGN.md section 9)

    @property
    def slug(self) -> str:
        return self.label.lower().replace("(", "-").replace(",", "-").replace(")", "").replace(" ", "-")

    @property
    def betas(self) -> str:
        f = lambda b: "inf" if b is None else str(b)  # noqa: E731
        return f"({f(self.beta_w)}, {f(self.beta_a)})" + (" int" if self.int_scales else "")

    @property
    def is_float(self) -> bool:
        return (self.beta_w, self.beta_a) == (1, 1)


# The paper's Table 2 rows (inner layers; first and last layers are always full precision).
ROWS = [
    Row("FP", 1, 1),
    Row("HBWN(4,1)", 4, 1),
    Row("HadaNet(4,4)", 4, 4),
    Row("HBWN(8,1)", 8, 1),
    Row("HadaNet(16,2)", 16, 2),
    Row("HadaNet(16,16)", 16, 16),
    Row("HadaNet(64,64)", 64, 64),
    Row("XNOR-Net", None, None),  # one scale per weight row (filter) and per activation row (pixel over C)
    # Issue 12's integer-scale twins of the (16,2) and (16,16) rows: same recipe and teacher.
    Row("HadaNet(16,2) int", 16, 2, int_scales=True),
    Row("HadaNet(16,16) int", 16, 16, int_scales=True),
]
ROW_BY_LABEL = {r.label: r for r in ROWS}


def record_path(results_dir: str, row: Row, seed: int) -> str:
    return os.path.join(results_dir, f"{row.slug}-s{seed}.json")


def write_record(path: str, record: dict) -> None:
    from converters.checkpoint import atomic_write

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    record = dict(record, format=RECORD_FORMAT)

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=1, sort_keys=True)
            f.write("\n")
    atomic_write(path, write)


def load_records(results_dir: str = RESULTS_DIR) -> List[dict]:
    """Every record in ``results_dir`` (sorted by row order, then seed); a bad file is an error, not skipped."""
    out = []
    if not os.path.isdir(results_dir):
        return out
    for name in sorted(os.listdir(results_dir)):
        if not name.endswith(".json"):
            continue
        path = os.path.join(results_dir, name)
        with open(path, encoding="utf-8") as f:
            try:
                rec = json.load(f)
            except ValueError as exc:
                raise ValueError(f"Expected a JSON accuracy record in {path}, got {exc}") from None
        if not isinstance(rec, dict) or rec.get("format") != RECORD_FORMAT or rec.get("row") not in ROW_BY_LABEL:
            raise ValueError(f"Expected a record of format {RECORD_FORMAT!r} naming a table row in {path}, "
                             f"got {str(rec)[:80]}")
        out.append(rec)
    order = {r.label: i for i, r in enumerate(ROWS)}
    return sorted(out, key=lambda r: (order[r["row"]], r["seed"]))


def mean_spread(values: List[float]) -> tuple:
    """(mean, sample standard deviation or None for a single value)."""
    if not values:
        return math.nan, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _pct(values: List[float]) -> str:
    m, s = mean_spread([100 * v for v in values])
    return f"{m:.2f} %" if s is None else f"{m:.2f} +- {s:.2f} %"


def recipe_text(rec: dict) -> str:
    r = rec["recipe"]
    warmup = f"warm-up {r['warmup_epochs']:g} ep" if r["warmup_epochs"] else "no warm-up"
    parts = [f"{r['epochs']} ep", f"lr {r['lr']:g} cosine", warmup, r["augment"]]
    if r.get("kd"):
        parts.append(f"KD a={r['kd']['alpha']:g} T={r['kd']['temperature']:g}")
    return ", ".join(parts)


def summarize(records: List[dict]) -> Dict[str, dict]:
    """Per row label: n, seeds, recipes and the mean/spread of every measured figure."""
    by_row: Dict[str, list] = {}
    for rec in records:
        by_row.setdefault(rec["row"], []).append(rec)
    out = {}
    for label, recs in by_row.items():
        out[label] = {
            "n": len(recs), "seeds": [r["seed"] for r in recs],
            "recipes": sorted({recipe_text(r) for r in recs}),
            "val": [r["best_val_acc"] for r in recs], "test": [r["test_top1_runtime"] for r in recs],
            "test_torch": [r["test_top1_torch"] for r in recs], "agree": [r["agree"] for r in recs],
            "bytes": sorted({r["bytes"] for r in recs}), "ratio": recs[0]["ratio"],
            "best_epochs": [r["best_epoch"] for r in recs],
            "minutes": [r["train_seconds"] / 60 for r in recs],
        }
    return out


def render_table(records: List[dict], command: str) -> str:
    """The Markdown block (between the markers) for docs/ACCURACY.md."""
    s = summarize(records)
    n_test = {r["test_images"] for r in records}
    lines = [START, "",
             f"LeNet on Fashion-MNIST. Each row: mean +- sample standard deviation over its `n` seeds "
             f"(one value: a single seed, no spread yet). Val = best validation top-1 (the last 5,000 "
             f"training images), the epoch that was kept; test = top-1 on the "
             f"{', '.join(f'{n:,}' for n in sorted(n_test)) or '10,000'} test images through the runtime "
             f"(`edge.Interpreter` on the `.hbn`), evaluated once per model; agree = runtime prediction "
             f"== PyTorch prediction (lowest over the seeds); ratio = float32 LeNet weights+biases / file "
             f"size. Recipe: the row's own schedule, from its records.", "",
             "| model | inner (beta_w, beta_a) | n | val top-1 | test top-1 (runtime) | test top-1 (PyTorch) "
             "| agree | bytes | ratio | recipe | kept epoch | train min/run |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in ROWS:
        if row.label not in s:
            lines.append(f"| {row.label} | {row.betas} | 0 | no finished run yet | | | | | | | | |")
            continue
        r = s[row.label]
        lines.append(
            f"| {row.label} | {row.betas} | {r['n']} | {_pct(r['val'])} | **{_pct(r['test'])}** | "
            f"{_pct(r['test_torch'])} | {100 * min(r['agree']):.2f} % | "
            f"{' / '.join(f'{b:,}' for b in r['bytes'])} | {r['ratio']:.1f}x | {'; '.join(r['recipes'])} | "
            f"{', '.join(map(str, r['best_epochs']))} | {statistics.fmean(r['minutes']):.0f} |")
    lines += ["", f"Seeds per row: " + "; ".join(f"{lab} {s[lab]['seeds']}" for lab in
                                                   [r.label for r in ROWS if r.label in s]) + "."
              if s else "No records yet.",
              "", f"Regenerate: `{command}` (renders from `benchmarks/results/accuracy/*.json`; "
              f"runs missing records first unless `render` is given).", "", END]
    return "\n".join(lines)


def write_doc(doc: str, table: str) -> None:
    """Replace the text between the markers (temp file + rename); append the block if there are none."""
    from converters.checkpoint import atomic_write

    text = open(doc, encoding="utf-8").read() if os.path.exists(doc) else "# Accuracy\n\n"
    if START in text and END in text:
        text = text[:text.index(START)] + table + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(doc, write)

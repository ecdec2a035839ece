"""Choose the binarized rows' training recipe on the validation split (short runs, same seed, paired).

    python benchmarks/recipe_compare.py run --teacher .cache/accuracy/fp-s0/best [--only h16-2-kd,xnor-kd]
    python benchmarks/recipe_compare.py show          # per-epoch validation accuracy, Markdown

Every candidate trains LeNet for ``--epochs`` (10) with seed ``--seed`` (0), flip-shift
augmentation and the code behind ``hbnn train``; runs resume from ``--work`` (default
``.cache/recipe``). Same seed and same schedule length, so epoch k of one run is comparable
with epoch k of another. Only validation accuracy is read; the test set is not touched.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from converters.data import DEFAULT_DATA_DIR  # noqa: E402

KD = {"teacher": True, "kd_alpha": 0.9, "kd_temperature": 4.0}
# name -> (beta_w, beta_a, recipe options beyond the baseline: Adam 1e-3, cosine, CE)
CANDIDATES = {
    "h16-2-base": (16, 2, {}),
    "h16-2-kd": (16, 2, KD),
    "h16-2-kdwu": (16, 2, dict(KD, warmup_epochs=1.0)),
    "xnor-base": (None, None, {}),
    "xnor-kd": (None, None, KD),
}


def run(names, args) -> None:
    from converters.train import TrainOptions, train

    for name in names:
        bw, ba, extra = CANDIDATES[name]
        extra = dict(extra)
        teacher = args.teacher if extra.pop("teacher", False) else None
        if extra.get("kd_alpha") is not None and not teacher:
            raise SystemExit(f"recipe_compare.py: error: Expected --teacher for {name}, got none")
        print(f"{name}: training", flush=True)
        train(TrainOptions(arch="lenet", beta_w=bw, beta_a=ba, epochs=args.epochs, seed=args.seed,
                           augment="flip-shift", data_dir=args.data, threads=args.threads, resume=True,
                           out=os.path.join(args.work, f"{name}-s{args.seed}"), teacher=teacher,
                           progress=not args.no_progress, **extra))


def show(args) -> str:
    rows, longest = [], 0
    for name in CANDIDATES:
        path = os.path.join(args.work, f"{name}-s{args.seed}", "config.json")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
        accs = [h.get("val_acc") for h in config["history"]]
        longest = max(longest, len(accs))
        secs = [h["seconds"] for h in config["history"]]
        rows.append((name, config["epochs"], accs, sum(secs) / max(len(secs), 1)))
    head = "| run | epochs | " + " | ".join(f"ep {i + 1}" for i in range(longest)) + " | s/epoch |"
    lines = [head, "|" + "---|" * (longest + 3)]
    for name, epochs, accs, sec in rows:
        cells = [f"{100 * a:.2f}" if a is not None else "-" for a in accs] + [""] * (longest - len(accs))
        lines.append(f"| {name} | {epochs} | " + " | ".join(cells) + f" | {sec:.0f} |")
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["run", "show"])
    p.add_argument("--only", default=None, help=f"comma-separated candidates from {list(CANDIDATES)}")
    p.add_argument("--teacher", default=None, metavar="CKPT", help="float checkpoint for the KD candidates")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--data", default=DEFAULT_DATA_DIR)
    p.add_argument("--work", default=os.path.join(ROOT, ".cache", "recipe"))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    names = args.only.split(",") if args.only else list(CANDIDATES)
    bad = [n for n in names if n not in CANDIDATES]
    if bad:
        raise SystemExit(f"recipe_compare.py: error: Expected candidates from {list(CANDIDATES)}, got {bad}")
    if args.action == "run":
        run(names, args)
    print(show(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())

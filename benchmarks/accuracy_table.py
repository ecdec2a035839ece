"""The paper's Table 2 on Fashion-MNIST: LeNet rows x seeds, validation-selected, resumable across sessions.

    python benchmarks/accuracy_table.py run --seeds 0,1,2            # train what has no record, then render
    python benchmarks/accuracy_table.py run --rows FP,HadaNet(16,2) --seeds 0 --until 10:50
    python benchmarks/accuracy_table.py render                       # table from the records only
    python benchmarks/accuracy_table.py agree CKPT MODEL.hbn         # one model: runtime vs PyTorch
    python benchmarks/accuracy_table.py readme                       # README's model sentence, from its metadata

Each (row, seed) run trains with the code behind ``hbnn train`` (last 5,000 training images
held out for validation), keeps the best-validation epoch (``OUT/best``), converts it with the
code behind ``hbnn convert``, and measures it once on the 10,000 test images through
``edge.Interpreter``. Its JSON record goes to ``benchmarks/results/accuracy/`` (committed);
a run with a record is skipped, an unfinished one resumes from its checkpoint in ``--work``.
Binarized rows distil from the FP run of the same seed (trained first when its checkpoint is
missing: training is deterministic per seed on one machine type, and the teacher's SHA-256 is recorded).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from typing import Dict, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from accuracy_store import (RESULTS_DIR, ROW_BY_LABEL, ROWS, Row, load_records, record_path,  # noqa: E402
                            render_table, write_doc, write_record)
from converters.checkpoint import atomic_write  # noqa: E402
from converters.data import DEFAULT_DATA_DIR, VAL_SIZE, load_fashion_mnist  # noqa: E402

# Recipes chosen on the validation split (docs/TRAINING.md, "Choosing the recipe").
FLOAT_RECIPE = {"epochs": 30, "lr": 1e-3, "batch_size": 128, "augment": "flip-shift", "warmup_epochs": 0.0,
                "kd": None, "val_size": VAL_SIZE}
BINARY_RECIPE = {"epochs": 30, "lr": 1e-3, "batch_size": 128, "augment": "flip-shift", "warmup_epochs": 0.0,
                 "kd": {"alpha": 0.9, "temperature": 4.0}, "val_size": VAL_SIZE}
# FP and HadaNet(16,2) first (the FP run of a seed is also that seed's teacher), then the
# rows the paper's claim compares against, then the rest; seed-major inside each group.
PRIORITY = [["FP", "HadaNet(16,2)"], ["XNOR-Net", "HadaNet(4,4)"],
            ["HBWN(4,1)", "HBWN(8,1)", "HadaNet(16,16)", "HadaNet(64,64)"],
            ["HadaNet(16,2) int", "HadaNet(16,16) int"]]
DEFAULT_WORK = os.path.join(ROOT, ".cache", "accuracy")


def recipe_for(row: Row) -> dict:
    return dict(FLOAT_RECIPE if row.is_float else BINARY_RECIPE)


def plan(rows, seeds):
    """(row, seed) pairs in the order they are run."""
    wanted = {r.label for r in rows}
    out = []
    for group in PRIORITY:
        for seed in seeds:
            out += [(ROW_BY_LABEL[label], seed) for label in group if label in wanted]
    return out


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def torch_predict(model, images: np.ndarray) -> np.ndarray:
    import torch

    from converters.train import to_nchw

    out = []
    with torch.no_grad():
        for i in range(0, len(images), 1000):
            out.append(model(to_nchw(images[i:i + 1000])).argmax(1).numpy())
    return np.concatenate(out)


def measure(ckpt_dir: str, hbn_path: str, images: np.ndarray, labels: np.ndarray) -> Dict[str, float]:
    """Runtime and PyTorch top-1, their agreement, file size and ratio vs float32 LeNet."""
    from converters.export import float32_bytes, load_model, model_to_graph
    from edge.interpreter import Interpreter

    model = load_model(ckpt_dir)
    runtime = Interpreter(hbn_path).predict(images).argmax(axis=1)
    torch_p = torch_predict(model, images)
    graph, tensors = model_to_graph(model)
    size = os.path.getsize(hbn_path)
    return {"runtime_acc": float((runtime == labels).mean()), "torch_acc": float((torch_p == labels).mean()),
            "agree": float((runtime == torch_p).mean()), "bytes": size,
            "ratio": float32_bytes(graph, tensors) / size, "torch_preds": torch_p}


def work_dir(args, row: Row, seed: int) -> str:
    return os.path.join(args.work, f"{row.slug}-s{seed}")


def train_row(row: Row, seed: int, args, teacher: Optional[str] = None) -> dict:
    """Train (or resume, or find finished) the run's checkpoint; returns its config."""
    import fcntl

    r = recipe_for(row)
    kd = r["kd"] or {}
    out = work_dir(args, row, seed)
    os.makedirs(args.work, exist_ok=True)
    with open(out + ".lock", "w") as lock:  # two runners sharing --work wait for each other's run
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _train_locked(row, seed, args, teacher, r, kd, out)


def _train_locked(row, seed, args, teacher, r, kd, out) -> dict:
    from converters.train import TrainOptions, train

    return train(TrainOptions(arch="lenet", beta_w=row.beta_w, beta_a=row.beta_a, epochs=r["epochs"],
                              batch_size=r["batch_size"], lr=r["lr"], seed=seed, data_dir=args.data,
                              out=out, resume=True, threads=args.threads,
                              device=args.device, progress=not args.no_progress, augment=r["augment"],
                              warmup_epochs=r["warmup_epochs"], teacher=teacher, val_size=r["val_size"],
                              kd_alpha=kd.get("alpha", 0.9), kd_temperature=kd.get("temperature", 4.0),
                              int_scales=row.int_scales))


def ensure_teacher(seed: int, args) -> str:
    """The FP run of ``seed``, trained or resumed as needed; returns its best-validation checkpoint."""
    from converters.train import BEST

    fp = ROW_BY_LABEL["FP"]
    print(f"teacher: FP seed {seed}", flush=True)
    train_row(fp, seed, args)
    best = os.path.join(work_dir(args, fp, seed), BEST)
    rec_path = record_path(args.results, fp, seed)
    if os.path.exists(rec_path):  # a re-trained teacher should be the recorded one (deterministic per seed)
        import json
        want = json.load(open(rec_path, encoding="utf-8")).get("model_sha256")
        got = sha256_file(os.path.join(best, "model.safetensors"))
        if want and want != got:
            print(f"warning: FP seed {seed} re-trained to other weights than its record ({got[:12]} vs "
                  f"{want[:12]}: another machine type rounds differently); the distilled rows record the "
                  f"teacher they used", flush=True)
    return best


def run_one(row: Row, seed: int, args) -> Optional[dict]:
    """Train, convert and measure one (row, seed); write its record. Skipped when the record exists."""
    from converters.export import convert
    from converters.train import BEST

    path = record_path(args.results, row, seed)
    if os.path.exists(path):
        print(f"{row.label} seed {seed}: record exists, skipped ({os.path.relpath(path, ROOT)})", flush=True)
        return None
    recipe = recipe_for(row)
    teacher = ensure_teacher(seed, args) if recipe["kd"] else None
    print(f"{row.label} seed {seed}: training in {work_dir(args, row, seed)}", flush=True)
    config = train_row(row, seed, args, teacher)
    t0 = time.time()
    best = os.path.join(work_dir(args, row, seed), BEST)
    hbn = os.path.join(work_dir(args, row, seed), "model.hbn")
    convert(best, hbn)
    images, labels = load_fashion_mnist(args.data, "test")
    m = measure(best, hbn, images, labels)
    history = config["history"]
    record = {
        "row": row.label, "beta_w": row.beta_w, "beta_a": row.beta_a, "int_scales": row.int_scales,
        "seed": seed, "arch": "lenet",
        "recipe": dict(recipe, schedule=config["schedule"], optimizer=config["optimizer"],
                       weight_decay=config["weight_decay"]),
        "teacher": None if not teacher else {"row": "FP", "seed": seed,
                                             "sha256": config["kd"]["teacher_sha256"]},
        "epochs_run": config["epoch"], "best_epoch": config["best_epoch"], "best_val_acc": config["best_val_acc"],
        "last_val_acc": config["val_acc"], "train_images": config["train_images"], "val_images": config["val_size"],
        "test_images": int(len(labels)), "test_top1_runtime": round(m["runtime_acc"], 5),
        "test_top1_torch": round(m["torch_acc"], 5), "agree": round(m["agree"], 5), "bytes": m["bytes"],
        "ratio": round(m["ratio"], 3), "model_sha256": sha256_file(os.path.join(best, "model.safetensors")),
        "hbn_sha256": sha256_file(hbn),
        "train_seconds": round(sum(h["seconds"] for h in history), 1),
        "measure_seconds": round(time.time() - t0, 1),
        "history": [[h["epoch"], h["val_acc"], h["seconds"]] for h in history],
        "threads": args.threads, "device": args.device or "auto", "host": f"{platform.machine()} {os.cpu_count()} cpus",
        "git_commit": git_commit(), "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    write_record(path, record)
    print(f"{row.label} seed {seed}: val {record['best_val_acc']:.4f} (epoch {record['best_epoch']}), test runtime "
          f"{m['runtime_acc']:.4f}, PyTorch {m['torch_acc']:.4f}, agree {m['agree']:.4f}, {m['bytes']} B; "
          f"train {record['train_seconds'] / 60:.1f} min; wrote {os.path.relpath(path, ROOT)}", flush=True)
    return record


def _past(until: Optional[str]) -> bool:
    if not until:
        return False
    now = datetime.now(timezone.utc)
    hh, mm = (int(x) for x in until.split(":"))
    return (now.hour, now.minute) >= (hh, mm)


def render(args) -> None:
    command = "python benchmarks/accuracy_table.py run --seeds 0,1,2"
    write_doc(args.doc, render_table(load_records(args.results), command))
    print(f"rendered the table into {os.path.relpath(args.doc, ROOT)}", flush=True)


README_START, README_END = "<!-- bundled-model:start -->", "<!-- bundled-model:end -->"
BUNDLED = os.path.join(ROOT, "hbnn", "models", "lenet-fmnist-bw16-ba2.hbn")


def bundled_model_sentence(path: str = BUNDLED) -> str:
    """README's sentence about the bundled model, every figure read from the model file itself.

    The accuracy is the test top-1 stored in the file's metadata (``training.test_acc`` of the
    checkpoint it came from, or ``evaluation.test_top1_runtime`` written when a table model is
    bundled); the ratio is float32 weights + biases of its conv/dense layers over the file size.
    """
    from edge.format import read_hbn

    model = read_hbn(path)
    meta = model.metadata or {}
    acc = (meta.get("evaluation") or {}).get("test_top1_runtime", (meta.get("training") or {}).get("test_acc"))
    if acc is None:
        raise SystemExit(f"accuracy_table.py: error: Expected a test accuracy in the metadata of {path}, got "
                         f"{sorted(meta)}")
    float_bytes = 0
    for layer in model.graph["layers"]:
        if layer["type"] in ("conv2d", "dense"):
            n = 1
            for d in layer["weight_shape"]:
                n *= d
            float_bytes += 4 * (n + (layer["weight_shape"][0] if layer["bias"] is not None else 0))
    rel = os.path.relpath(path, ROOT)
    return (f"The bundled model `{rel}` (Fashion-MNIST, {100 * acc:.2f} % top-1 on the 10,000 test images, "
            f"{float_bytes / model.file_bytes:.1f}x smaller than float32) runs in `make demo`.")


def write_readme(readme: str, sentence: str) -> None:
    text = open(readme, encoding="utf-8").read()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"accuracy_table.py: error: Expected the markers {README_START} ... {README_END} in "
                         f"{readme}, got none")
    text = text[:text.index(README_START) + len(README_START)] + "\n" + sentence + "\n" + text[text.index(README_END):]

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(readme, write)


def cmd_agree(argv) -> int:
    p = argparse.ArgumentParser(prog="accuracy_table.py agree")
    p.add_argument("checkpoint")
    p.add_argument("model")
    p.add_argument("--data", default=DEFAULT_DATA_DIR)
    p.add_argument("--save-torch-preds", default=None, help="write PyTorch's test-set top-1 as .npy (uint8)")
    a = p.parse_args(argv)
    images, labels = load_fashion_mnist(a.data, "test")
    t0 = time.time()
    r = measure(a.checkpoint, a.model, images, labels)
    print(f"runtime top-1 {100 * r['runtime_acc']:.2f} %, PyTorch top-1 {100 * r['torch_acc']:.2f} %, "
          f"runtime == PyTorch on {100 * r['agree']:.2f} % of {len(labels)} images; "
          f"{r['bytes']} bytes, {r['ratio']:.2f}x smaller than float32 ({time.time() - t0:.0f} s)")
    if a.save_torch_preds:
        preds = r["torch_preds"].astype(np.uint8)
        atomic_write(a.save_torch_preds, lambda tmp: np.save(open(tmp, "wb"), preds))
    return 0


def parse_rows(text: Optional[str]):
    if not text:
        return list(ROWS)
    labels, depth, cur = [], 0, ""  # labels contain commas ("HadaNet(16,2)"): split outside parentheses
    for ch in text:
        depth += (ch == "(") - (ch == ")")
        if ch == "," and depth == 0:
            labels.append(cur.strip())
            cur = ""
        else:
            cur += ch
    labels.append(cur.strip())
    bad = [lab for lab in labels if lab not in ROW_BY_LABEL]
    if bad:
        raise SystemExit(f"accuracy_table.py: error: Expected rows from {[r.label for r in ROWS]}, got {bad}")
    return [ROW_BY_LABEL[lab] for lab in labels]


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agree"]:
        return cmd_agree(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", nargs="?", choices=["run", "render", "readme"], default="run",
                   help="run: train what has no record, then render; render: the table only; "
                        "readme: README's bundled-model sentence from the model's metadata")
    p.add_argument("--rows", default=None, help='comma-separated row labels, e.g. "FP,HadaNet(16,2)" (default: all)')
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default: 0,1,2)")
    p.add_argument("--until", default=None, metavar="HH:MM", help="start no new run after this UTC time")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    p.add_argument("--device", default=None, help="torch device (default: cuda if present, else cpu)")
    p.add_argument("--data", default=DEFAULT_DATA_DIR)
    p.add_argument("--work", default=DEFAULT_WORK, help="checkpoint directories, resumed if present")
    p.add_argument("--results", default=RESULTS_DIR, help="record directory (committed)")
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "ACCURACY.md"))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.action == "readme":
        write_readme(os.path.join(ROOT, "README.md"), bundled_model_sentence())
        print("rewrote the bundled-model sentence in README.md")
        return 0
    if args.action == "run":
        seeds = [int(s) for s in args.seeds.split(",")]
        for row, seed in plan(parse_rows(args.rows), seeds):
            if _past(args.until):
                print(f"past {args.until} UTC: no new run started", flush=True)
                break
            if run_one(row, seed, args):
                render(args)
    render(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())

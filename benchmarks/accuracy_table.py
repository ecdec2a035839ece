"""The paper's Table 2 on Fashion-MNIST: LeNet variants trained, packed and evaluated on the runtime.

    python benchmarks/accuracy_table.py --epochs 10 --runs /tmp/table     # train + table
    python benchmarks/accuracy_table.py agree CKPT MODEL.hbn              # one model: runtime vs PyTorch

Every variant is trained with the project's own trainer (the code behind ``hbnn train``),
converted with the code behind ``hbnn convert``, and its accuracy is measured on the
10,000 test images through ``edge.Interpreter`` (the cy_kernels runtime, not PyTorch).
The table is written between markers in docs/ACCURACY.md (temp file + rename).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, Optional

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from converters.checkpoint import atomic_write  # noqa: E402
from converters.data import DEFAULT_DATA_DIR, load_fashion_mnist  # noqa: E402

# (row label, beta_w, beta_a) of the inner layers; first/last layers are always full precision.
VARIANTS = [
    ("FP", 1, 1),
    ("HBWN(4,1)", 4, 1),
    ("HadaNet(4,4)", 4, 4),
    ("HBWN(8,1)", 8, 1),
    ("HadaNet(16,2)", 16, 2),
    ("XNOR-Net", None, None),   # one scale per row: per filter for weights, per pixel (over C) for activations
]
START, END = "<!-- accuracy-table:start -->", "<!-- accuracy-table:end -->"


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


def run_variant(label: str, bw, ba, args) -> Dict[str, float]:
    from converters.export import convert
    from converters.train import TrainOptions, train

    slug = label.lower().replace("(", "-").replace(",", "-").replace(")", "")
    out = os.path.join(args.runs, slug)
    t0 = time.time()
    config = train(TrainOptions(arch="lenet", beta_w=bw, beta_a=ba, epochs=args.epochs, batch_size=args.batch_size,
                                lr=args.lr, seed=args.seed, data_dir=args.data, out=out, resume=True,
                                threads=args.threads, progress=not args.no_progress, augment=args.augment))
    hbn = os.path.join(out, "model.hbn")
    convert(out, hbn)
    images, labels = load_fashion_mnist(args.data, "test")
    row = measure(out, hbn, images, labels)
    row.update(label=label, epochs=config["epoch"], minutes=(time.time() - t0) / 60, n=len(labels))
    print(f"{label}: runtime {row['runtime_acc']:.4f}, PyTorch {row['torch_acc']:.4f}, "
          f"agree {row['agree']:.4f}, {row['bytes']} B ({row['ratio']:.1f}x)", flush=True)
    return row


def format_table(rows, args) -> str:
    lines = [START, "",
             f"LeNet on Fashion-MNIST, {args.epochs} epochs each (Adam, lr {args.lr} cosine, batch "
             f"{args.batch_size}, seed {args.seed}, augmentation {args.augment}). Accuracy on the {rows[0]['n']:,} test images through "
             f"the runtime (`edge.Interpreter`, cy_kernels); size of the `.hbn` file; ratio = float32 LeNet "
             f"weights+biases (1,724,320 B) / file size.", "",
             "| model | inner (beta_w, beta_a) | top-1 runtime | top-1 PyTorch | runtime = PyTorch | bytes | ratio |",
             "|---|---|---|---|---|---|---|"]
    for r, (_, bw, ba) in zip(rows, VARIANTS):
        b = f"({'inf' if bw is None else bw}, {'inf' if ba is None else ba})"
        lines.append(f"| {r['label']} | {b} | {100 * r['runtime_acc']:.2f} % | {100 * r['torch_acc']:.2f} % | "
                     f"{100 * r['agree']:.2f} % | {r['bytes']:,} | {r['ratio']:.1f}x |")
    lines += ["", f"Command: `{' '.join(['python', 'benchmarks/accuracy_table.py'] + sys.argv[1:])}` "
              f"({sum(r['minutes'] for r in rows):.0f} min on this machine).", "", END]
    return "\n".join(lines)


def write_doc(doc: str, table: str) -> None:
    text = open(doc, encoding="utf-8").read() if os.path.exists(doc) else "# Accuracy\n\n"
    if START in text and END in text:
        text = text[:text.index(START)] + table + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + table + "\n"

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(doc, write)


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


def main(argv: Optional[list] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["agree"]:
        return cmd_agree(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a busy machine)")
    p.add_argument("--augment", default="flip-shift", choices=["none", "flip", "flip-shift"])
    p.add_argument("--data", default=DEFAULT_DATA_DIR)
    p.add_argument("--runs", default=os.path.join(ROOT, "build", "accuracy-runs"),
                   help="checkpoint directories (resumed if present)")
    p.add_argument("--only", default=None, help="comma-separated row labels to run (default: all)")
    p.add_argument("--doc", default=os.path.join(ROOT, "docs", "ACCURACY.md"))
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    wanted = set(args.only.split(",")) if args.only else None
    rows = [run_variant(label, bw, ba, args) for label, bw, ba in VARIANTS if not wanted or label in wanted]
    if wanted:
        print("--only given: the table in the doc is left as it is")
        return 0
    write_doc(args.doc, format_table(rows, args))
    print(f"wrote the table into {args.doc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""``hbnn inspect`` (what is in a .hbn file) and ``hbnn eval`` (test-set accuracy through the runtime).

Registration is cheap; numpy, the kernels and the data reader load inside the handlers.
"""
from __future__ import annotations

import json
import math
import time

from .errors import CommandError


def add_inspect(p) -> None:
    p.add_argument("model", metavar="MODEL.hbn")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=cmd_inspect)


def add_eval(p) -> None:
    p.add_argument("model", metavar="MODEL.hbn")
    p.add_argument("--data", default=None, metavar="DIR",
                   help="Fashion-MNIST IDX .gz directory (default /usr/share/datasets/fashion-mnist)")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="first N images only")
    p.add_argument("--threads", type=int, default=1, help="kernel threads (0 = all cores)")
    p.add_argument("--batch", type=int, default=64, help="images per runtime call for the accuracy pass")
    p.add_argument("--latency-frames", type=int, default=200, metavar="N",
                   help="batch-1 invoke() calls timed for the latency figures (0 = skip)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.set_defaults(func=cmd_eval)


def _load(path):
    from edge.errors import ModelFormatError
    from edge.format import read_hbn

    try:
        return read_hbn(path)
    except ModelFormatError as exc:
        raise CommandError(str(exc)) from None


# ---- inspect -----------------------------------------------------------------------------

def summarize(model) -> dict:
    """Per-layer parameter counts and the model's sizes (file, float32, theoretical minimum)."""
    from cy_kernels.reference import format_beta
    from edge.format_graph import int_tensor_names, is_int_scales, is_packed

    rows, params, float_bytes, minimum = [], 0, 0, 0
    for layer, shape in zip(model.graph["layers"], model.shapes):
        kind, n_params, n_min = layer["type"], 0, 0
        stored = 0
        betas, scales = "", ""
        if kind in ("conv2d", "dense"):
            ws = layer["weight_shape"]
            n_w = math.prod(ws)
            o = ws[0]
            n_b = o if layer["bias"] is not None else 0
            n_params = n_w + n_b
            betas = f"{format_beta(layer['beta_w'])},{format_beta(layer['beta_a'])}"
            if is_int_scales(layer):
                scales = "int"
                nseg = model.weights[layer["name"]].levels.shape[1]
                # bits + 7 bits per segment + one float per filter and one per layer
                n_min = -(-n_w // 8) + -(-o * nseg * 7 // 8) + 4 * o + 4 + 4 * n_b
                stored = model.tensors[layer["weight"] + ".bits"].nbytes + 4 * n_b + \
                    sum(model.tensors[name].nbytes for name in int_tensor_names(layer))
            elif is_packed(layer):
                scales = "float"
                nseg = model.tensors[layer["weight"] + ".scales"].shape[1]
                n_min = -(-n_w // 8) + 4 * o * nseg + 4 * n_b  # bits + one float per segment
                stored = model.tensors[layer["weight"] + ".bits"].nbytes + 4 * o * nseg + 4 * n_b
            else:
                n_min = stored = 4 * n_params
                betas += " (fp)"
        elif kind == "affine":
            n_params = 2 * model.tensors[layer["scale"]].size
            n_min = stored = 4 * n_params
        params += n_params
        float_bytes += 4 * n_params
        minimum += n_min
        rows.append({"name": layer["name"], "type": kind, "betas": betas, "scales": scales,
                     "output": list(shape), "params": n_params, "bytes": stored})
    return {"path": model.path, "format_version": "%d.%d" % model.version, "sha256": model.sha256,
            "arch": model.graph["arch"], "input": model.graph["input"], "labels": model.labels,
            "layers": rows, "params": params, "file_bytes": model.file_bytes,
            "float32_bytes": float_bytes, "minimum_bytes": minimum,
            "ratio_vs_float32": float_bytes / model.file_bytes,
            "ratio_vs_minimum": model.file_bytes / minimum if minimum else None,
            "metadata": model.metadata}


def cmd_inspect(args) -> int:
    s = summarize(_load(args.model))
    if args.json:
        print(json.dumps(s, indent=2))
        return 0
    spec = s["input"]
    print(f"{s['path']}: hbn {s['format_version']}, arch {s['arch']}, sha256 {s['sha256'][:16]}...")
    print(f"input {'x'.join(map(str, spec['shape']))} {spec['layout']} (pixel*{spec['pixel_scale']:.6g} - "
          f"mean {spec['mean']}) / std {spec['std']}; {len(s['labels'])} classes: "
          f"{', '.join(s['labels'][:4])}{', ...' if len(s['labels']) > 4 else ''}")
    print(f"{'#':>3}  {'layer':<12} {'type':<8} {'beta w,a':<10} {'scales':<6} {'output':<12} {'params':>10} "
          f"{'bytes':>10}")
    for i, r in enumerate(s["layers"]):
        out = "x".join(map(str, r["output"]))
        params = f"{r['params']:,}" if r["params"] else ""
        size = f"{r['bytes']:,}" if r["bytes"] else ""
        print(f"{i:>3}  {r['name']:<12} {r['type']:<8} {r['betas']:<10} {r['scales']:<6} {out:<12} {params:>10} "
              f"{size:>10}")
    print(f"parameters: {s['params']:,}")
    print(f"file: {s['file_bytes']:,} bytes; float32: {s['float32_bytes']:,} bytes "
          f"({s['ratio_vs_float32']:.2f}x smaller)")
    if s["ratio_vs_minimum"] is not None:
        print(f"theoretical minimum (1 bit per binarized weight + one float per segment, or 7 bits with "
              f"integer scales, floats elsewhere): "
              f"{s['minimum_bytes']:,} bytes (file is {s['ratio_vs_minimum']:.3f}x that)")
    if s["metadata"]:
        print(f"metadata: {json.dumps(s['metadata'], sort_keys=True)}")
    return 0


# ---- eval --------------------------------------------------------------------------------

def _dataset(args):
    from converters.data import DEFAULT_DATA_DIR, load_fashion_mnist
    from converters.errors import DatasetError

    try:
        images, labels = load_fashion_mnist(args.data or DEFAULT_DATA_DIR, args.split)
    except DatasetError as exc:
        raise CommandError(str(exc)) from None
    if args.limit is not None:
        if args.limit < 1:
            raise CommandError(f"Expected --limit >= 1, got {args.limit}")
        images, labels = images[:args.limit], labels[:args.limit]
    return images, labels


def evaluate(interp, images, labels, batch: int = 64, latency_frames: int = 200) -> dict:
    """Accuracy, confusion matrix, batched throughput and batch-1 latency through the runtime."""
    import numpy as np

    n, classes = len(images), len(interp.labels)
    pred = np.empty(n, dtype=np.int64)
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        pred[start:start + batch] = interp.predict(images[start:start + batch]).argmax(axis=1)
    elapsed = time.perf_counter() - t0
    truth = labels.astype(np.int64)
    confusion = np.zeros((classes, classes), dtype=np.int64)
    np.add.at(confusion, (truth, pred), 1)
    result = {"images": n, "accuracy": float((pred == truth).mean()), "confusion": confusion.tolist(),
              "per_class_accuracy": [float(confusion[c, c] / max(1, confusion[c].sum())) for c in range(classes)],
              "throughput_fps": n / elapsed if elapsed > 0 else None, "batch": batch}
    m = min(latency_frames, n)
    if m > 0:
        frames = interp.preprocess(images[:m])
        idx = interp.get_input_details()[0]["index"]
        interp.resize_tensor_input(idx, [1] + list(interp.input_shape))
        times = np.empty(m)
        for i in range(m):
            interp.set_tensor(idx, frames[i:i + 1])
            t = time.perf_counter()
            interp.invoke()
            times[i] = time.perf_counter() - t
        result["latency_ms"] = {"median": float(np.median(times) * 1e3), "p90": float(np.percentile(times, 90) * 1e3),
                                "frames": m}
    return result


def cmd_eval(args) -> int:
    from edge.interpreter import Interpreter

    if args.batch < 1 or args.threads < 0 or args.latency_frames < 0:
        raise CommandError(f"Expected --batch >= 1, --threads >= 0 and --latency-frames >= 0, got "
                           f"{args.batch}, {args.threads}, {args.latency_frames}")
    if args.threads == 0:
        import os

        args.threads = os.cpu_count() or 1
    model = _load(args.model)
    images, labels = _dataset(args)
    interp = Interpreter(model, num_threads=args.threads)
    h, w, c = interp.input_shape
    if (h, w, c) != (images.shape[1], images.shape[2], 1):
        raise CommandError(f"Expected a model with a {images.shape[1]}x{images.shape[2]}x1 input for "
                           f"Fashion-MNIST, got {h}x{w}x{c}")
    if len(interp.labels) != 10:
        raise CommandError(f"Expected a model with 10 classes for Fashion-MNIST, got {len(interp.labels)}")
    r = evaluate(interp, images, labels, args.batch, args.latency_frames)
    r.update(model=args.model, split=args.split, threads=args.threads, labels=interp.labels)
    if args.json:
        print(json.dumps(r, indent=2))
        return 0
    print(f"{args.model} on Fashion-MNIST {args.split} ({r['images']} images, {args.threads} thread(s)):")
    print(f"accuracy: {100 * r['accuracy']:.2f} %")
    short = [name[:7] for name in interp.labels]
    print("confusion matrix (rows: true, columns: predicted):")
    print(" " * 12 + " ".join(f"{s:>7}" for s in short) + "   acc")
    for name, row, acc in zip(interp.labels, r["confusion"], r["per_class_accuracy"]):
        print(f"{name[:11]:<12}" + " ".join(f"{v:>7}" for v in row) + f"  {100 * acc:5.1f}")
    if r["throughput_fps"]:
        print(f"throughput: {r['throughput_fps']:.0f} images/s (batches of {r['batch']})")
    if "latency_ms" in r:
        lat = r["latency_ms"]
        print(f"latency (batch 1, invoke): median {lat['median']:.3f} ms, p90 {lat['p90']:.3f} ms "
              f"over {lat['frames']} frames")
    return 0

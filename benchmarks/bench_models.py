"""End-to-end model latency: HBNN runtime vs LiteRT / tflite-runtime / ONNX Runtime (``hbnn bench models``).

Every engine runs the same network built from the same PyTorch definition
(``converters.zoo``) with the same weights:

* HBNN: ``converters.export.model_to_graph`` -> ``.hbn`` -> ``edge.Interpreter`` at each (beta_w, beta_a);
  (1, 1) is the full-precision graph on the runtime's exact float path.
* ONNX Runtime: ``torch.onnx.export`` of the float PyTorch model (+ softmax), NCHW input.
* LiteRT (ai-edge-litert, XNNPACK) float32 and int8, tflite-runtime 2.14 float32: the exported float
  graph rebuilt as a Keras-free ``tf.function`` of ``tf.nn`` ops with the same arrays and converted
  with ``tf.lite.TFLiteConverter`` (int8: full-integer kernels, float I/O, calibrated on 64 inputs;
  "int8 dyn-range": int8 weights with float activations, for reference).

Peers need numpy<2, so they run in a separate venv (``--peer-python``, default ``.venv-bench``)::

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install "numpy<2" ai-edge-litert "tflite-runtime==2.14.0" onnxruntime tensorflow-cpu
    .venv/bin/pip install onnx          # torch.onnx.export needs it in the main venv

Batch 1, one fixed input; warm-up, then up to ``--runs`` timed calls (or ``--max-seconds``);
median and p90 of ``set_tensor + invoke + get_tensor`` (HBNN, TFLite) or ``session.run`` (ORT).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORKER = REPO / "benchmarks" / "peer_worker.py"


def parse_betas(text):
    out = []
    for item in text.split():
        w, a = item.split(",")
        conv = lambda v: None if v in ("inf", "None") else int(v)  # noqa: E731
        out.append((conv(w), conv(a)))
    return out


def beta_label(bw, ba):
    if (bw, ba) == (1, 1):
        return "full precision"
    f = lambda b: "inf" if b is None else str(b)  # noqa: E731
    return f"beta ({f(bw)},{f(ba)})"


def float_model(arch, seed):
    """The float PyTorch model with non-trivial eval-mode BatchNorm statistics."""
    import torch
    from converters.zoo import build_model
    torch.manual_seed(seed)
    model = build_model(arch, 1, 1)
    gen = torch.Generator().manual_seed(seed + 1)
    for m in model.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            n = m.num_features
            m.weight.data = torch.rand(n, generator=gen) + 0.5
            m.bias.data = torch.randn(n, generator=gen) * 0.1
            m.running_mean = torch.randn(n, generator=gen) * 0.2
            m.running_var = torch.rand(n, generator=gen) + 0.5
    return model.eval()


def timed(run, runs, max_seconds, warmup=20):
    for _ in range(warmup):
        run()
    times = []
    end = time.perf_counter() + max_seconds
    while len(times) < runs and (len(times) < 20 or time.perf_counter() < end):
        t0 = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return float(np.median(times)), float(np.percentile(times, 90)), len(times)


def bench_hbnn(path, x, threads, runs, max_seconds):
    from edge.interpreter import Interpreter
    interp = Interpreter(str(path), num_threads=threads)
    interp.allocate_tensors()
    i = interp.get_input_details()[0]["index"]
    o = interp.get_output_details()[0]["index"]

    def run():
        interp.set_tensor(i, x)
        interp.invoke()
        return interp.get_tensor(o)
    y = np.array(run()).reshape(-1)
    return timed(run, runs, max_seconds) + (y,)


def peer(python, *args, timeout=900):
    proc = subprocess.run([python, str(WORKER)] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def export_onnx(model, arch, out):
    import warnings

    import torch
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter's notice
    from converters.zoo import get_arch
    h, w, c = get_arch(arch)["input"]
    wrapped = torch.nn.Sequential(model, torch.nn.Softmax(dim=-1)).eval()
    torch.onnx.export(wrapped, torch.zeros(1, c, h, w), str(out), input_names=["x"], output_names=["p"],
                      opset_version=17, dynamo=False)


def run_arch(arch, args, work, rows, log):
    import torch
    from converters.export import model_to_graph
    from converters.zoo import build_model, get_arch
    from edge.format import write_hbn

    h, w, c = get_arch(arch)["input"]
    fp = float_model(arch, args.seed)
    state = fp.state_dict()
    x = np.random.default_rng(args.seed).normal(size=(1, h, w, c)).astype(np.float32)
    with torch.no_grad():
        ref = torch.softmax(fp(torch.from_numpy(x).permute(0, 3, 1, 2)), -1).numpy().reshape(-1)

    def add(engine, precision, threads, med, p90, n, size, out, want=ref):
        # Correctness alongside speed: each engine's output against the PyTorch model it came from.
        diff = float(np.abs(np.asarray(out, np.float64) - want).max()) if out is not None else math.nan
        rows.append({"arch": arch, "engine": engine, "precision": precision, "threads": threads,
                     "median_ms": med, "p90_ms": p90, "runs": n, "model_kib": size / 1024,
                     "max_abs_diff_vs_torch": diff})
        log(f"  {arch:8s} {engine:26s} {precision:15s} t={threads}  median {med:8.3f} ms  p90 {p90:8.3f} ms"
            f"  ({n} runs, |dp|max {diff:.3g})")

    for bw, ba in args.betas:
        model = build_model(arch, bw, ba)
        model.load_state_dict(state)
        graph, tensors = model_to_graph(model.eval())
        path = work / f"{arch}-{bw}-{ba}.hbn"
        write_hbn(str(path), graph, tensors)
        with torch.no_grad():
            want = torch.softmax(model(torch.from_numpy(x).permute(0, 3, 1, 2)), -1).numpy().reshape(-1)
        for t in args.threads:
            med, p90, n, y = bench_hbnn(path, x, t, args.runs, args.max_seconds)
            add("hbnn (edge.Interpreter)", beta_label(bw, ba), t, med, p90, n, path.stat().st_size, y, want)

    if args.no_peers:
        return
    if not Path(args.peer_python).is_file():
        log(f"  peers skipped: no interpreter at {args.peer_python} (see the docstring to create it)")
        return
    graph, tensors = model_to_graph(fp)
    (work / f"{arch}.json").write_text(json.dumps(graph))
    np.savez(work / f"{arch}-tensors.npz", **tensors)
    np.save(work / f"{arch}-x-nhwc.npy", x)
    np.save(work / f"{arch}-x-nchw.npy", np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    np.save(work / f"{arch}-calib.npy", np.random.default_rng(7).normal(size=(64, h, w, c)).astype(np.float32))
    models = {}
    try:
        info = peer(args.peer_python, "tflite", work / f"{arch}.json", work / f"{arch}-tensors.npz",
                    work / f"{arch}-tflite", work / f"{arch}-calib.npy")
        log(f"  converted with tensorflow {info['tensorflow']}")
        models["fp32"] = work / f"{arch}-tflite" / "fp32.tflite"
        models["int8"] = work / f"{arch}-tflite" / "int8.tflite"
        models["dynamic"] = work / f"{arch}-tflite" / "dynamic.tflite"
    except Exception as exc:  # report and carry on with the other peers
        log(f"  TFLite conversion failed: {exc}")
    try:
        export_onnx(fp, arch, work / f"{arch}.onnx")
        models["onnx"] = work / f"{arch}.onnx"
    except Exception as exc:
        log(f"  ONNX export failed: {exc}")
    plan = [("litert", "fp32", "float32", "nhwc"), ("litert", "int8", "int8", "nhwc"),
            ("litert", "dynamic", "int8 dyn-range", "nhwc"),
            ("tflite", "fp32", "float32", "nhwc"), ("onnxruntime", "onnx", "float32", "nchw")]
    for runtime, key, precision, layout in plan:
        if key not in models:
            continue
        for t in args.threads:
            try:
                r = peer(args.peer_python, "run", runtime, models[key], work / f"{arch}-x-{layout}.npy", t,
                         args.runs, args.max_seconds)
            except Exception as exc:
                log(f"  {runtime} {precision} t={t} failed: {exc}")
                continue
            add(r["runtime"] + (" (XNNPACK)" if runtime == "litert" else ""), precision, t, r["median_ms"],
                r["p90_ms"], r["runs"], models[key].stat().st_size, r["output"])


def markdown(rows):
    out = ["| model | engine | precision | threads | median ms | p90 ms | vs LiteRT fp32 | model KiB |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = [b for b in rows if b["arch"] == r["arch"] and b["threads"] == r["threads"]
                and b["engine"].startswith("ai-edge-litert") and b["precision"] == "float32"]
        speed = f"{base[0]['median_ms'] / r['median_ms']:.2f}x" if base else "-"
        out.append(f"| {r['arch']} | {r['engine']} | {r['precision']} | {r['threads']} | {r['median_ms']:.3f} | "
                   f"{r['p90_ms']:.3f} | {speed} | {r['model_kib']:.1f} |")
    return "\n".join(out)


def targets(rows):
    def med(arch, engine, precision):
        for r in rows:
            if r["arch"] == arch and r["threads"] == 1 and r["engine"].startswith(engine) and r["precision"] == precision:
                return r["median_ms"]
        return None
    checks = []
    lf = med("alexnet", "ai-edge-litert", "float32")
    li = med("alexnet", "ai-edge-litert", "int8")
    for label, need in (("beta (16,16)", 2.5), ("beta (inf,inf)", 4.0)):
        h = med("alexnet", "hbnn", label)
        if h and lf and li:
            ok = lf / h >= need and h < li
            checks.append(f"AlexNet {label}: {lf / h:.2f}x LiteRT fp32 (target >= {need}x), "
                          f"{li / h:.2f}x LiteRT int8 (target > 1x): {'PASS' if ok else 'FAIL'}")
    h, lf = med("lenet", "hbnn", "beta (16,2)"), med("lenet", "ai-edge-litert", "float32")
    if h and lf:
        checks.append(f"LeNet beta (16,2): {h:.3f} ms vs LiteRT fp32 {lf:.3f} ms (target <=): "
                      f"{'PASS' if h <= lf else 'FAIL'}")
    return checks


def main(argv=None):
    from hbnn.bench_commands import add_bench_models_arguments
    p = argparse.ArgumentParser(prog="bench_models.py", description=__doc__.split("\n")[0])
    add_bench_models_arguments(p)
    return run(p.parse_args(argv))


def run(args):
    ncpu = os.cpu_count() or 1
    args.threads = sorted({ncpu if t == "all" else int(t) for t in args.threads.split(",")})
    args.betas = parse_betas(args.betas)
    log = lambda s: print(s, flush=True)  # noqa: E731
    import cy_kernels
    log(f"host: {platform.machine()} {platform.processor() or ''}, {ncpu} cpus, kernels backend "
        f"{cy_kernels.backend_name()}, python {platform.python_version()}, numpy {np.__version__}")
    rows = []
    with tempfile.TemporaryDirectory(prefix="hbnn-bench-") as tmp:
        for arch in args.archs.split(","):
            log(f"{arch}:")
            run_arch(arch, args, Path(tmp), rows, log)
    print()
    print(markdown(rows))
    print()
    for line in targets(rows):
        print(line)
    result = {"rows": rows, "argv": sys.argv, "cpus": ncpu, "backend": cy_kernels.backend_name()}
    if args.memory:
        from hbnn.bundled import BUNDLED_CLIP, BUNDLED_MODEL
        from hbnn.memory import measure_infer_memory
        if BUNDLED_MODEL.is_file():
            mem = measure_infer_memory(str(BUNDLED_MODEL), str(BUNDLED_CLIP), 10000)
            result["memory"] = mem
            print(f"\nmemory: hbnn infer, {mem['frames']} frames: peak RSS {mem['peak_rss_mib']} MiB, "
                  f"RSS warm {mem.get('rss_warm_mib')} -> end {mem.get('rss_end_mib')} MiB")
        else:
            print(f"\nmemory: skipped, {BUNDLED_MODEL} missing")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

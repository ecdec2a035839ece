"""End-to-end model latency: HBNN runtime vs LiteRT / tflite-runtime / ONNX Runtime (``hbnn bench models``).

Every engine runs the same network built from the same PyTorch definition
(``converters.zoo``) with the same weights:

* HBNN: ``converters.export.model_to_graph`` -> ``.hbn`` -> ``edge.Interpreter`` at each (beta_w, beta_a);
  (1, 1) is the full-precision graph on the runtime's exact float path. ``--int-betas`` pairs also run
  with integer scales ("beta (16,16) int"): the same weights, activation factors calibrated on the
  64 calibration inputs (what training's running range would hold).
* ONNX Runtime: ``torch.onnx.export`` of the float PyTorch model (+ softmax), NCHW input.
* LiteRT (ai-edge-litert, XNNPACK) float32 and int8, tflite-runtime 2.14 float32: the exported float
  graph rebuilt as a Keras-free ``tf.function`` of ``tf.nn`` ops with the same arrays and converted
  with ``tf.lite.TFLiteConverter`` (int8: full-integer kernels, float I/O, calibrated on 64 inputs;
  "int8 dyn-range": int8 weights with float activations, for reference).

Peers need numpy<2, so they run in a separate venv (``--peer-python``, default ``.venv-bench``)::

    python3 -m venv .venv-bench
    .venv-bench/bin/pip install "numpy<2" ai-edge-litert "tflite-runtime==2.14.0" onnxruntime tensorflow-cpu
    .venv/bin/pip install onnx          # torch.onnx.export needs it in the main venv

Batch 1, one fixed input; ``set_tensor + invoke + get_tensor`` (HBNN, TFLite) or ``session.run`` (ORT).
Rows run interleaved, in ``--rounds`` rounds: every row (engine x precision x thread count) gets a
slice of each round (2 untimed calls, then up to ``--runs / --rounds`` timed calls or
``--max-seconds / --rounds`` seconds), so a noisy neighbour hits every row alike. A row reports the
median over rounds of its per-round medians, the p90 of all its calls, and the spread of its round
medians ((max - min) / median); a spread over 20 % is flagged ("!"): its rounds disagree, treat it as
indicative. Peers run in one persistent process per runtime (``peer_worker.py serve``).
``--busy N`` keeps N busy-loop processes running during the rounds (the "other process on the other
core" case); HBNN rows then also show how many frames used the helper threads.
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


def beta_label(bw, ba, int_scales=False):
    if (bw, ba) == (1, 1):
        return "full precision"
    f = lambda b: "inf" if b is None else str(b)  # noqa: E731
    return f"beta ({f(bw)},{f(ba)})" + (" int" if int_scales else "")


def int_model(arch, bw, ba, state, calib):
    """The float model's weights with integer scales; activation ranges set on ``calib`` (NCHW)."""
    import torch
    from converters.zoo import build_model
    model = build_model(arch, bw, ba, int_scales=True)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.endswith("act_range") for k in missing), (missing, unexpected)
    model.eval()
    int_layers = [m for m in model.modules() if getattr(m, "int_scales", False)]
    for m in int_layers:  # only these in training mode: the BatchNorms keep their statistics
        m.train()
    with torch.no_grad():
        model(calib)
    return model.eval()


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


SPREAD_FLAG = 0.20   # a row whose round medians differ by more than this (of their median) is flagged


def timed_slice(run, calls, seconds, warmup):
    for _ in range(warmup):
        run()
    times = []
    end = time.perf_counter() + seconds
    while len(times) < calls and (len(times) < 3 or time.perf_counter() < end):
        t0 = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - t0) / 1e6)
    return times


def hbnn_runner(path, x, threads, per_op=False, adaptive=True):
    """A row's slice function and first output, and the executor (for how many frames were parallel).
    ``adaptive=False``: the executor always uses every thread, even when they do not pay."""
    import cy_kernels
    from edge.interpreter import Interpreter
    interp = Interpreter(str(path), num_threads=threads, per_op=per_op)
    if not adaptive and interp._plan.executor is not None:
        interp._plan.executor = cy_kernels.frame_executor(interp._plan.ops, threads, adaptive=False)
    interp.allocate_tensors()
    i = interp.get_input_details()[0]["index"]
    o = interp.get_output_details()[0]["index"]

    def run():
        interp.set_tensor(i, x)
        interp.invoke()
        return interp.get_tensor(o)
    y = np.array(run()).reshape(-1)
    return (lambda calls, seconds, warmup: timed_slice(run, calls, seconds, warmup)), y, interp._plan.executor


def peer(python, *args, timeout=900):
    proc = subprocess.run([python, str(WORKER)] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


class PeerServer:
    """One persistent ``peer_worker.py serve RUNTIME`` process holding every model of that runtime."""

    def __init__(self, python, runtime):
        self.proc = subprocess.Popen([python, str(WORKER), "serve", runtime], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer process ended (exit {self.proc.poll()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def runner(self, model, x_path, threads):
        r = self.ask(load=[str(model), str(x_path), int(threads)])

        def run_slice(calls, seconds, warmup):
            return self.ask(run=r["id"], calls=calls, seconds=seconds, warmup=warmup)["times"]
        return run_slice, r["runtime"], r["output"]

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def export_onnx(model, arch, out):
    import warnings

    import torch
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter's notice
    from converters.zoo import get_arch
    h, w, c = get_arch(arch)["input"]
    wrapped = torch.nn.Sequential(model, torch.nn.Softmax(dim=-1)).eval()
    torch.onnx.export(wrapped, torch.zeros(1, c, h, w), str(out), input_names=["x"], output_names=["p"],
                      opset_version=17, dynamo=False)


def prepare_arch(arch, args, work, rows, log, servers):
    """Build every row of one network (models, interpreters, peer models): rows get a ``slice``
    function and their first output; nothing is timed here."""
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

    def add(engine, precision, threads, run_slice, size, out, want=ref, executor=None):
        # Correctness alongside speed: each engine's output against the PyTorch model it came from.
        diff = float(np.abs(np.asarray(out, np.float64) - want).max()) if out is not None else math.nan
        rows.append({"arch": arch, "engine": engine, "precision": precision, "threads": threads,
                     "model_kib": size / 1024, "max_abs_diff_vs_torch": diff, "slice": run_slice,
                     "executor": executor, "round_ms": [], "times": []})

    calib = np.random.default_rng(7).normal(size=(64, h, w, c)).astype(np.float32)  # the LiteRT int8 calibration
    calib = torch.from_numpy(calib).permute(0, 3, 1, 2)
    configs = [(bw, ba, False) for bw, ba in args.betas] + [(bw, ba, True) for bw, ba in args.int_betas]
    for bw, ba, int_scales in configs:
        if int_scales:
            model = int_model(arch, bw, ba, state, calib)
        else:
            model = build_model(arch, bw, ba)
            model.load_state_dict(state)
        graph, tensors = model_to_graph(model.eval())
        path = work / f"{arch}-{bw}-{ba}{'-int' if int_scales else ''}.hbn"
        write_hbn(str(path), graph, tensors)
        with torch.no_grad():
            want = torch.softmax(model(torch.from_numpy(x).permute(0, 3, 1, 2)), -1).numpy().reshape(-1)
        for t in args.threads:
            run_slice, y, executor = hbnn_runner(path, x, t)
            add("hbnn (edge.Interpreter)", beta_label(bw, ba, int_scales), t, run_slice, path.stat().st_size, y, want,
                executor)

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
                if runtime not in servers:
                    servers[runtime] = PeerServer(args.peer_python, runtime)
                run_slice, version, out = servers[runtime].runner(models[key], work / f"{arch}-x-{layout}.npy", t)
            except Exception as exc:
                log(f"  {runtime} {precision} t={t} failed: {exc}")
                continue
            add(version + (" (XNNPACK)" if runtime == "litert" else ""), precision, t, run_slice,
                models[key].stat().st_size, out)


def run_rounds(rows, args, log):
    """Every row gets a slice of every round, in the same order; round medians per row."""
    calls = max(3, -(-args.runs // args.rounds))
    seconds = args.max_seconds / args.rounds
    for r in range(args.rounds):
        t0 = time.perf_counter()
        for row in list(rows):
            try:
                times = row["slice"](calls, seconds, 2)
            except Exception as exc:
                log(f"  {row['arch']} {row['engine']} {row['precision']} t={row['threads']} dropped: {exc}")
                rows.remove(row)
                continue
            row["times"] += times
            row["round_ms"].append(float(np.median(times)))
        log(f"  round {r + 1}/{args.rounds}: {time.perf_counter() - t0:.1f} s")
    for row in rows:
        rm = np.array(row.pop("round_ms"))
        times = row.pop("times")
        ex = row.pop("executor")
        row.pop("slice")
        med = float(np.median(rm))
        row.update(median_ms=med, fps=1000.0 / med, p90_ms=float(np.percentile(times, 90)), runs=len(times),
                   rounds=len(rm), round_min_ms=float(rm.min()), round_max_ms=float(rm.max()),
                   spread=float((rm.max() - rm.min()) / med), flagged=bool((rm.max() - rm.min()) / med > SPREAD_FLAG))
        if ex is not None:
            info = ex.info()
            row["parallel_frames_pct"] = 100.0 * info["parallel_frames"] / max(1, info["frames"])
            if info["pool_threads"] > 1:  # per-tile times of the split ops (a 1-thread executor has one tile each)
                row["tile_bound_speedup"] = tile_bound_speedup(ex.op_times())
        log(f"  {row['arch']:8s} {row['engine']:26s} {row['precision']:15s} t={row['threads']}  median "
            f"{med:8.3f} ms  {row['fps']:8.1f} fps  spread {100 * row['spread']:5.1f} %"
            f"{' !' if row['flagged'] else ''}  (|dp|max {row['max_abs_diff_vs_torch']:.3g})")


def tile_bound_speedup(op_times, cores=(2, 4, 8)):
    """The best N threads can do with this frame's tiles: each op takes ceil(tiles / N) of its tile
    time (one-tile ops stay serial), from the per-tile times measured on one thread. No wake-up or
    memory-bandwidth cost: an upper bound, for what a 4- or 8-core board can gain."""
    one = sum(t * us for t, us in op_times)
    return {str(n): one / sum(-(-t // n) * us for t, us in op_times) for n in cores if one > 0}


def start_busy(n):
    """n processes that only burn CPU (the 'other process on the other core')."""
    return [subprocess.Popen([sys.executable, "-c", "while 1: pass"]) for _ in range(n)]


def markdown(rows):
    out = ["| model | engine | precision | threads | median ms | fps | p90 ms | spread | vs LiteRT fp32 | model KiB |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        base = [b for b in rows if b["arch"] == r["arch"] and b["threads"] == r["threads"]
                and b["engine"].startswith("ai-edge-litert") and b["precision"] == "float32"]
        speed = f"{base[0]['median_ms'] / r['median_ms']:.2f}x" if base else "-"
        flag = " !" if r["flagged"] else ""
        out.append(f"| {r['arch']} | {r['engine']} | {r['precision']} | {r['threads']} | {r['median_ms']:.3f} | "
                   f"{r['fps']:.0f} | {r['p90_ms']:.3f} | {100 * r['spread']:.0f} %{flag} | {speed} | {r['model_kib']:.1f} |")
    return "\n".join(out)


def threads_table(rows, threads):
    """Median ms per thread count and the speed-up over the fewest threads, per engine and precision."""
    if len(threads) < 2:
        return ""
    head = " | ".join(f"{t} thr ms" for t in threads) + " | " + " | ".join(f"x{t}/{threads[0]}" for t in threads[1:])
    out = [f"| model | engine | precision | {head} | helpers used | tile bound |", "|---" * (5 + 2 * len(threads) - 1) + "|"]
    keys = []
    for r in rows:
        k = (r["arch"], r["engine"], r["precision"])
        if k not in keys:
            keys.append(k)
    for k in keys:
        by_t = {r["threads"]: r for r in rows if (r["arch"], r["engine"], r["precision"]) == k}
        ms = [f"{by_t[t]['median_ms']:.3f}{' !' if by_t[t]['flagged'] else ''}" if t in by_t else "-" for t in threads]
        base = by_t.get(threads[0])
        sc = [f"{base['median_ms'] / by_t[t]['median_ms']:.2f}x" if base and t in by_t else "-" for t in threads[1:]]
        used = [f"{by_t[t]['parallel_frames_pct']:.0f} %" for t in threads[1:] if "parallel_frames_pct" in by_t.get(t, {})]
        bound = next((by_t[t]["tile_bound_speedup"] for t in threads[1:] if "tile_bound_speedup" in by_t.get(t, {})), None)
        bound = ", ".join(f"{v:.2f}x@{n}" for n, v in bound.items()) if bound else "-"
        out.append(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(ms + sc) + f" | {', '.join(used) or '-'} | {bound} |")
    return "\n".join(out)


def med(rows, arch, engine, precision, threads=1):
    for r in rows:
        if r["arch"] == arch and r["threads"] == threads and r["engine"].startswith(engine) and r["precision"] == precision:
            return r["median_ms"]
    return None


# A LeNet frame stays on one thread at any thread count (too small to split), so its 1- and 2-thread
# medians differ by noise only; "no slower" allows that much.
LENET_NOISE = 0.03


def targets(rows, busy=0):
    """The issues' speed targets, judged on this run's medians. With busy processes running, the
    threads are judged by the loaded target only (2 threads no more than 10 % slower than 1)."""
    checks = []
    lf = med(rows, "alexnet", "ai-edge-litert", "float32")
    li = med(rows, "alexnet", "ai-edge-litert", "int8")
    for label, need in (("beta (16,16)", 2.5), ("beta (inf,inf)", 4.0)):
        h = med(rows, "alexnet", "hbnn", label)
        if h and lf and li:
            ok = lf / h >= need and h < li
            checks.append(f"AlexNet {label}: {lf / h:.2f}x LiteRT fp32 (target >= {need}x), "
                          f"{li / h:.2f}x LiteRT int8 (target > 1x): {'PASS' if ok else 'FAIL'}")
    h, lf = med(rows, "lenet", "hbnn", "beta (16,2)"), med(rows, "lenet", "ai-edge-litert", "float32")
    if h and lf:
        checks.append(f"LeNet beta (16,2): {h:.3f} ms vs LiteRT fp32 {lf:.3f} ms (target <=): "
                      f"{'PASS' if h <= lf else 'FAIL'}")
    # integer scales (issue 12): against LiteRT int8 in the same run, 1 thread
    for arch, label, need in (("alexnet", "beta (16,16) int", 1.5), ("lenet", "beta (16,2) int", 1.0)):
        h, li = med(rows, arch, "hbnn", label), med(rows, arch, "ai-edge-litert", "int8")
        if h and li:
            checks.append(f"{arch} {label}: {li / h:.2f}x LiteRT int8 (target >= {need}x): "
                          f"{'PASS' if li / h >= need else 'FAIL'}")
    # threads (issue 13): 2 threads vs 1 (idle machine: >= 1.7x; under load: no more than 10 % slower)
    for label in ("beta (16,16)", "beta (inf,inf)"):
        h1, h2 = med(rows, "alexnet", "hbnn", label, 1), med(rows, "alexnet", "hbnn", label, 2)
        if h1 and h2:
            need, when = (1 / 1.1, f"with {busy} busy process(es)") if busy else (1.7, "idle")
            checks.append(f"AlexNet {label} 2 threads: {h1 / h2:.2f}x 1 thread (target >= {need:.2f}x {when}): "
                          f"{'PASS' if h1 / h2 >= need else 'FAIL'}")
    li2 = med(rows, "alexnet", "ai-edge-litert", "int8", 2)
    for label, need in (("beta (inf,inf)", 2.0), ("beta (16,16)", 1.0)):
        h2 = med(rows, "alexnet", "hbnn", label, 2)
        if h2 and li2:
            checks.append(f"AlexNet {label} at 2 threads: {li2 / h2:.2f}x LiteRT int8 at 2 threads "
                          f"(target {'>=' if need > 1 else '>'} {need}x): {'PASS' if li2 / h2 >= need else 'FAIL'}")
    for r1 in [r for r in rows if r["arch"] == "lenet" and r["engine"].startswith("hbnn") and r["threads"] == 1]:
        h2 = med(rows, "lenet", "hbnn", r1["precision"], 2)
        if h2:
            checks.append(f"LeNet {r1['precision']} 2 threads: {h2:.3f} vs 1 thread {r1['median_ms']:.3f} ms "
                          f"(target: no slower; {LENET_NOISE:.0%} allowed for noise): "
                          f"{'PASS' if h2 <= r1['median_ms'] * (1 + LENET_NOISE) else 'FAIL'}")
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
    args.int_betas = parse_betas(getattr(args, "int_betas", "") or "")
    args.rounds = max(1, getattr(args, "rounds", 10))
    log = lambda s: print(s, flush=True)  # noqa: E731
    import cy_kernels
    log(f"host: {platform.machine()} {platform.processor() or ''}, {ncpu} cpus, kernels backend "
        f"{cy_kernels.backend_name()}, python {platform.python_version()}, numpy {np.__version__}, "
        f"load {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    rows, servers, busy = [], {}, []
    with tempfile.TemporaryDirectory(prefix="hbnn-bench-") as tmp:
        try:
            for arch in args.archs.split(","):
                log(f"{arch}:")
                prepare_arch(arch, args, Path(tmp), rows, log, servers)
            busy = start_busy(getattr(args, "busy", 0))
            log(f"{len(rows)} rows, {args.rounds} rounds" + (f", {len(busy)} busy process(es)" if busy else ""))
            run_rounds(rows, args, log)
        finally:
            for p in busy:
                p.kill()
                p.wait()
            for server in servers.values():
                server.close()
    print()
    print(markdown(rows))
    table = threads_table(rows, args.threads)
    if table:
        print()
        print(table)
    print()
    for line in targets(rows, busy=len(busy)):
        print(line)
    result = {"rows": rows, "argv": sys.argv, "cpus": ncpu, "backend": cy_kernels.backend_name(),
              "rounds": args.rounds, "busy": len(busy), "loadavg_end": os.getloadavg()}
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

"""Where a model's time goes: the median time of each step of ``Interpreter.invoke()``.

    .venv/bin/python benchmarks/layer_times.py hbnn/models/lenet-fmnist-bw16-ba2.hbn
    .venv/bin/python benchmarks/layer_times.py MODEL.hbn --runs 2000 --threads 1

Each bound step (conv/dense with its kernel path, pooling, softmax, ...) is called on its own,
after warm-up, on a seeded random input; the last line is the whole ``invoke()``. A diagnostic
for profiling, not a benchmark against peers (that is ``hbnn bench models``).
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def step_times(model, runs=1000, threads=1, seed=0):
    """[(step name, kernel path or '', median us)] and the median us of a whole invoke()."""
    from edge.interpreter import Interpreter

    interp = Interpreter(model, num_threads=threads)
    interp.allocate_tensors()
    plan = interp._plan_for(1)
    x = np.random.default_rng(seed).standard_normal(plan.input.shape).astype(np.float32)
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    for _ in range(50):
        interp.invoke()
    names = [name for name, _ in plan.tensors[1:]]

    def median_us(fn):
        times = []
        for _ in range(runs):
            t0 = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - t0)
        return float(np.median(times)) / 1e3

    rows = []
    for k, op in enumerate(plan.ops):
        name = names[k] if k < len(names) else f"step {k}"
        rows.append((name, getattr(op, "path", "") or "", median_us(op)))
    return rows, median_us(interp.invoke)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    import cy_kernels

    rows, total = step_times(args.model, args.runs, args.threads)
    print(f"{args.model}  backend {cy_kernels.backend_name()}  threads {args.threads}  (median of {args.runs})")
    for name, path, us in rows:
        print(f"  {name:24s} {path:6s} {us:9.1f} us")
    print(f"  {'sum of steps':31s} {sum(us for _, _, us in rows):9.1f} us")
    print(f"  {'invoke()':31s} {total:9.1f} us")


if __name__ == "__main__":
    main()

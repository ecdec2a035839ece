"""Threads on the frame executor, one network: 1 thread vs N threads (load-aware, and forced) vs the
per-op OpenMP path, interleaved in rounds (every variant gets a slice of each round), plus the
tile bound (the best N threads can do with this frame's tiles, from per-tile times on one thread).

    python benchmarks/frame_threads.py --arch alexnet --betas "inf,inf 16,16" --threads 2 [--busy 1]

``--busy N`` runs N busy-loop processes meanwhile (the "other process on the other core" case).
Models are the ``hbnn bench models`` ones (converters.zoo, seeded weights); needs torch.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_models import (SPREAD_FLAG, beta_label, float_model, hbnn_runner, parse_betas, start_busy,  # noqa: E402
                          tile_bound_speedup)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arch", default="alexnet")
    p.add_argument("--betas", default="inf,inf 16,16")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--rounds", type=int, default=10)
    p.add_argument("--calls", type=int, default=40, help="timed calls per variant per round")
    p.add_argument("--busy", type=int, default=0)
    args = p.parse_args(argv)
    import cy_kernels
    from converters.export import model_to_graph
    from converters.zoo import build_model, get_arch
    from edge.format import write_hbn

    n = args.threads
    h, w, c = get_arch(args.arch)["input"]
    state = float_model(args.arch, 0).state_dict()
    x = np.random.default_rng(0).normal(size=(1, h, w, c)).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for bw, ba in parse_betas(args.betas):
            model = build_model(args.arch, bw, ba)
            model.load_state_dict(state)
            path = Path(tmp) / f"{bw}-{ba}.hbn"
            write_hbn(str(path), *model_to_graph(model.eval()))
            rows.append([beta_label(bw, ba), "1 thread", hbnn_runner(path, x, 1)[0], None])
            par, _, ex = hbnn_runner(path, x, n)
            rows.append([beta_label(bw, ba), f"{n} threads", par, ex])
            rows.append([beta_label(bw, ba), f"{n} threads, always parallel", hbnn_runner(path, x, n, adaptive=False)[0],
                         None])
            rows.append([beta_label(bw, ba), f"{n} threads, per-op OpenMP", hbnn_runner(path, x, n, per_op=True)[0], None])
        busy = start_busy(args.busy)
        try:
            results = {i: [] for i in range(len(rows))}
            for _ in range(args.rounds):
                for i, r in enumerate(rows):
                    results[i].append(float(np.median(r[2](args.calls, 10.0, 2))))
        finally:
            for b in busy:
                b.kill()
                b.wait()
    print(f"{args.arch}, {os.cpu_count()} cpus, backend {cy_kernels.backend_name()}, busy {args.busy}, "
          f"load {os.getloadavg()[0]:.2f}")
    print("| precision | variant | median ms | vs 1 thread | spread |\n|---|---|---|---|---|")
    base = {}
    for i, r in enumerate(rows):
        rm = np.array(results[i])
        med = float(np.median(rm))
        base.setdefault(r[0], med)
        spread = (rm.max() - rm.min()) / med
        print(f"| {r[0]} | {r[1]} | {med:.3f} | {base[r[0]] / med:.2f}x | {100 * spread:.0f} %"
              f"{' !' if spread > SPREAD_FLAG else ''} |")
        if r[3] is not None:  # the split ops' per-tile times, measured on the calling thread
            bound = tile_bound_speedup(r[3].op_times())
            print(f"| {r[0]} | tile bound | | {', '.join(f'{v:.2f}x@{k}' for k, v in bound.items())} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

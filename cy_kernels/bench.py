"""`hbnn bench kernels`: xHBNN conv against numpy SGEMM conv, measured in the same run.

Each row times one 3x3 (or 5x5) conv at batch 1 ("int": integer scales, docs/DESIGN.md section 9,
next to the float-scale row of the same betas): ours includes activation
binarization, bit packing and bit-packed im2col (weights are packed once, as at
load time); the peer is numpy float32 im2col + matmul (OpenBLAS) with the same
thread count. The thread count of OpenBLAS is fixed when numpy loads, so each
thread count runs in its own child process with OPENBLAS_NUM_THREADS set, and the
peer and our kernels are timed in separate children so that OpenBLAS's and
OpenMP's worker threads never compete for the cores.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Dict, List

import numpy as np

# (name, C_in, C_out, H=W, kernel, padding): the AlexNet-inspired net's 3x3 convs and LeNet's conv2
SHAPES = [
    ("alex 128->128 @32", 128, 128, 32, 3, 1),
    ("alex 128->256 @16", 128, 256, 16, 3, 1),
    ("alex 256->256 @16", 256, 256, 16, 3, 1),
    ("alex 256->512 @8", 256, 512, 8, 3, 1),
    ("alex 512->512 @8", 512, 512, 8, 3, 1),
    ("lenet 20->50 @12", 20, 50, 12, 5, 0),
]

# (label, beta_w, beta_a, integer scales); None is infinity
BETAS = [("16/16", 16, 16, False), ("16/16 int", 16, 16, True), ("64/64", 64, 64, False),
         ("inf/inf", None, None, False), ("16/1", 16, 1, False), ("16/2", 16, 2, False),
         ("16/2 int", 16, 2, True)]


def backend_label() -> str:
    """The backend, and its kernel variant when it has one on this CPU (e.g. "neon (neon-dotprod)")."""
    import cy_kernels as ck
    from cy_kernels import _xhbnn
    name, variant = ck.backend_name(), _xhbnn.kernel_variant()
    return name if variant == name else f"{name} ({variant})"


def numpy_conv(x: np.ndarray, wmat: np.ndarray, k: int, pad: int) -> np.ndarray:
    """float32 conv as im2col (one strided copy) + matmul: the SGEMM peer."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    oh, ow = h + 2 * pad - k + 1, w + 2 * pad - k + 1
    s = xp.strides
    cols = np.lib.stride_tricks.as_strided(xp, (b, oh, ow, k, k, c), (s[0], s[1], s[2], s[1], s[2], s[3]))
    return (cols.reshape(b * oh * ow, k * k * c) @ wmat).reshape(b, oh, ow, -1)


def _median_time(fn, min_runs: int, min_seconds: float) -> Dict[str, float]:
    fn()  # warm-up: plans, caches, page faults
    times: List[float] = []
    start = time.perf_counter()
    while len(times) < min_runs or time.perf_counter() - start < min_seconds:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    arr = np.array(times)
    return {"median": float(np.median(arr)), "p90": float(np.percentile(arr, 90)), "runs": len(times)}


def measure(threads: int, quick: bool, side: str) -> List[dict]:
    """Time every shape (side "numpy") or every shape x beta pair (side "ours") at one thread count."""
    import cy_kernels as ck
    from cy_kernels.reference_int import act_factor_for

    rng = np.random.default_rng(0)
    min_runs, min_seconds = (5, 0.05) if quick else (30, 0.4)
    rows = []
    for name, cin, cout, hw, k, pad in SHAPES:
        x = rng.standard_normal((1, hw, hw, cin)).astype(np.float32)
        w = rng.standard_normal((cout, k, k, cin)).astype(np.float32)
        if side == "numpy":
            wmat = np.ascontiguousarray(w.reshape(cout, -1).T)
            peer = _median_time(lambda: numpy_conv(x, wmat, k, pad), min_runs, min_seconds)
            rows.append({"shape": name, "numpy_ms": peer["median"] * 1e3})
            continue
        macs = (hw + 2 * pad - k + 1) ** 2 * cout * k * k * cin
        for label, bw, ba, int_scales in BETAS:
            # integer scales: an activation factor that fits this input (what training would find)
            pw = ck.pack_weights(w, bw, act_factor=act_factor_for(x, ba) if int_scales else None)
            out = np.empty((1, hw + 2 * pad - k + 1, hw + 2 * pad - k + 1, cout), dtype=np.float32)
            ours = _median_time(lambda: ck.hbnn_conv2d(x, pw, bw, ba, padding=pad, threads=threads, out=out),
                                min_runs, min_seconds)
            rows.append({
                "shape": name, "betas": label, "threads": threads, "macs": macs,
                "ours_ms": ours["median"] * 1e3, "ours_p90_ms": ours["p90"] * 1e3,
                "weights_bytes": pw.nbytes(), "float_bytes": w.nbytes, "runs": ours["runs"],
            })
    return rows


def _child(threads: int, quick: bool, side: str) -> List[dict]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, "-m", "cy_kernels.bench", "--child", side, "--threads", str(threads)]
    if quick:
        cmd.append("--quick")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"benchmark child (threads={threads}) failed:\n{done.stderr}")
    return json.loads(done.stdout)


def format_table(rows: List[dict]) -> str:
    lines = ["| shape | beta w/a | threads | ours ms (p90) | numpy SGEMM ms | speedup | G binary MAC/s | weights vs fp32 |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['shape']} | {r['betas']} | {r['threads']} | {r['ours_ms']:.3f} ({r['ours_p90_ms']:.3f}) | "
            f"{r['numpy_ms']:.3f} | {r['speedup']:.2f}x | {r['macs'] / r['ours_ms'] / 1e6:.0f} | "
            f"{r['float_bytes'] / r['weights_bytes']:.1f}x smaller |")
    return "\n".join(lines)


def thread_scaling(rows: List[dict]) -> str:
    by_key = {(r["shape"], r["betas"], r["threads"]): r for r in rows}
    threads = sorted({r["threads"] for r in rows})
    if len(threads) < 2:
        return ""
    lo, hi = threads[0], threads[-1]
    lines = [f"| shape | beta w/a | {hi} threads vs {lo} |", "|---|---|---|"]
    for (shape, betas, t), r in by_key.items():
        if t == lo and (shape, betas, hi) in by_key:
            lines.append(f"| {shape} | {betas} | {r['ours_ms'] / by_key[(shape, betas, hi)]['ours_ms']:.2f}x |")
    return "\n".join(lines)


def run(threads_list: List[int], quick: bool = False, as_json: bool = False) -> int:
    import cy_kernels as ck

    rows: List[dict] = []
    for t in threads_list:
        peer = {r["shape"]: r["numpy_ms"] for r in _child(t, quick, "numpy")}
        for r in _child(t, quick, "ours"):
            r["numpy_ms"] = peer[r["shape"]]
            r["speedup"] = r["numpy_ms"] / r["ours_ms"]
            rows.append(r)
    if as_json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"backend: {backend_label()}  numpy {np.__version__}  cpus: {os.cpu_count()}  "
          f"(median of >= {5 if quick else 30} runs; ours includes activation binarization, packing, im2col)")
    print(format_table(rows))
    scaling = thread_scaling(rows)
    if scaling:
        print()
        print(scaling)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=["numpy", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.threads, args.quick, args.child)))
        return 0
    return run([args.threads], args.quick)


if __name__ == "__main__":
    sys.exit(main())

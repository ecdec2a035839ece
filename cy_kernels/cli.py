"""`hbnn bench kernels`."""
from __future__ import annotations

import os


def _bench_kernels(args) -> int:
    from .bench import run

    threads = args.threads or sorted({1, os.cpu_count() or 1})
    return run(threads, quick=args.quick, as_json=args.json)


def register(sub, bench_sub) -> None:
    p = bench_sub.add_parser("kernels", help="xHBNN conv kernels vs numpy SGEMM conv (same run)")
    p.add_argument("--threads", type=int, action="append",
                   help="thread count to measure (repeatable; default: 1 and all cores)")
    p.add_argument("--quick", action="store_true", help="few runs (a smoke test, not a measurement)")
    p.add_argument("--json", action="store_true", help="print raw rows as JSON")
    p.set_defaults(func=_bench_kernels)

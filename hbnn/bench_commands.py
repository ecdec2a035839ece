"""``hbnn bench kernels | models | memory | soak``.

``kernels`` times the xHBNN conv kernels (cy_kernels.bench), ``memory`` and ``soak`` watch the real
frame loop (hbnn.memory, hbnn.soak); ``models`` runs ``benchmarks/bench_models.py``, which lives in
a source checkout beside the packages (its LiteRT / ONNX Runtime peers need their own venv).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .bundled import BUNDLED_CLIP, BUNDLED_MODEL
from .errors import CommandError

REPO = Path(__file__).resolve().parents[1]  # a source checkout: benchmarks/ and .venv-bench/


def add_kernels(p) -> None:
    p.add_argument("--threads", type=int, action="append",
                   help="thread count to measure (repeatable; default: 1 and all cores)")
    p.add_argument("--quick", action="store_true", help="few runs (a smoke test, not a measurement)")
    p.add_argument("--json", action="store_true", help="print raw rows as JSON")
    p.set_defaults(func=cmd_bench_kernels)


def cmd_bench_kernels(args) -> int:
    from cy_kernels.bench import run

    threads = args.threads or sorted({1, os.cpu_count() or 1})
    return run(threads, quick=args.quick, as_json=args.json)


def add_models(p) -> None:
    add_bench_models_arguments(p)
    p.set_defaults(func=cmd_bench_models)


def add_bench_models_arguments(p) -> None:
    """Options of ``hbnn bench models`` (shared with ``python benchmarks/bench_models.py``)."""
    p.add_argument("--archs", default="lenet,alexnet")
    p.add_argument("--betas", default="16,2 16,16 64,64 inf,inf 1,1",
                   help='(beta_w,beta_a) pairs; 1,1 = full precision (default: "%(default)s")')
    p.add_argument("--int-betas", default="16,2 16,16", metavar="PAIRS",
                   help='pairs also run with integer scales (docs/DESIGN.md section 9); their rows follow '
                        'the float-scale rows; "" for none (default: "%(default)s")')
    p.add_argument("--threads", default="1,all", help="comma list; 'all' = every core (default: %(default)s)")
    p.add_argument("--runs", type=int, default=300, help="timed calls per configuration, over all rounds")
    p.add_argument("--max-seconds", type=float, default=3.0, help="time cap per configuration, over all rounds")
    p.add_argument("--rounds", type=int, default=10, help="interleaved rounds: every row gets a slice of each")
    p.add_argument("--busy", type=int, default=0, metavar="N", help="N busy-loop processes during the rounds")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--peer-python", default=os.environ.get(
        "HBNN_BENCH_PYTHON", str(REPO / ".venv-bench" / "bin" / "python")),
        help="python of the venv with ai-edge-litert, tflite-runtime, onnxruntime, tensorflow-cpu")
    p.add_argument("--no-peers", action="store_true", help="HBNN rows only")
    p.add_argument("--memory", action="store_true", help="also peak RSS of a 10,000-frame `hbnn infer`")
    p.add_argument("--json", help="write all rows to this file")


def cmd_bench_models(args) -> int:
    script = REPO / "benchmarks" / "bench_models.py"
    if not script.is_file():
        raise CommandError(f"Expected the benchmark script in a source checkout, got missing {script}")
    import runpy
    return runpy.run_path(str(script), run_name="bench_models")["run"](args)


def cmd_bench_memory(args) -> int:
    from .memory import measure_infer_memory

    if not Path(args.model).is_file():
        raise CommandError(f"Expected a model file, got missing path {args.model!r}")
    report = measure_infer_memory(args.model, str(BUNDLED_CLIP), args.frames)
    print(json.dumps(report, indent=2))
    return 0


def add_memory(p) -> None:
    p.add_argument("--model", default=str(BUNDLED_MODEL))
    p.add_argument("--frames", type=int, default=10000)
    p.set_defaults(func=cmd_bench_memory)


def add_soak(p) -> None:
    from .soak import add_soak_arguments, cmd_bench_soak

    add_soak_arguments(p)
    p.set_defaults(func=cmd_bench_soak)

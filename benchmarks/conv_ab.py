"""A/B of two builds of the kernels on the AlexNet-inspired convs: which tree is faster, by how much.

    PY=$PWD/.venv/bin/python; git worktree add /tmp/base HEAD~1 && (cd /tmp/base && $PY setup.py -q build_ext --inplace)
    .venv/bin/python benchmarks/conv_ab.py /tmp/base . --betas "inf,inf 64,64" --rounds 3

Each round runs every tree in its own process, alternating (A B A B ...), so that a change of load
or clock hits both; each conv is timed by per-process CPU time (``time.process_time``), which a
busy shared machine inflates far less than wall time. Prints the median ms per conv and tree over
the rounds and the ratio B / A. For kernel changes only: `hbnn bench kernels` and `hbnn bench models`
are the benchmarks against peers.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

SHAPES = [("128->128 @32", 128, 128, 32), ("128->256 @16", 128, 256, 16), ("256->256 @16", 256, 256, 16),
          ("256->512 @8", 256, 512, 8), ("512->512 @8", 512, 512, 8)]

CHILD = r"""
import json, sys, time
import numpy as np
import cy_kernels as ck
betas = json.loads(sys.argv[1])
rng = np.random.default_rng(0)
out = {}
for name, cin, cout, hw in json.loads(sys.argv[2]):
    x = rng.standard_normal((1, hw, hw, cin)).astype(np.float32)
    w = rng.standard_normal((cout, 3, 3, cin)).astype(np.float32)
    for bw, ba in betas:
        pw = ck.pack_weights(w, bw)
        y = np.empty((1, hw, hw, cout), np.float32)
        f = lambda: ck.hbnn_conv2d(x, pw, bw, ba, padding=1, threads=1, out=y)
        f()
        ts = []
        for _ in range(7):
            t0 = time.process_time()
            for _ in range(5):
                f()
            ts.append((time.process_time() - t0) / 5)
        out[f"{name} ({bw},{ba})".replace("None", "inf")] = sorted(ts)[3] * 1e3
print(json.dumps({"backend": ck.backend_name(), "ms": out}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("a", help="tree A (built in place)")
    p.add_argument("b", help="tree B (built in place)")
    p.add_argument("--betas", default="inf,inf", help='space-separated "w,a" pairs, inf for infinity')
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    conv = lambda v: None if v == "inf" else int(v)  # noqa: E731
    betas = [[conv(v) for v in item.split(",")] for item in args.betas.split()]
    times = {"a": {}, "b": {}}
    for _ in range(args.rounds):
        for side in ("a", "b"):
            env = dict(os.environ, PYTHONPATH=os.path.abspath(getattr(args, side)), OMP_NUM_THREADS="1")
            done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(betas), json.dumps(SHAPES)], env=env,
                                  capture_output=True, text=True, check=False, cwd=os.path.abspath(getattr(args, side)))
            if done.returncode != 0:
                raise SystemExit(f"conv_ab.py: error: tree {getattr(args, side)} failed:\n{done.stderr}")
            res = json.loads(done.stdout)
            for k, v in res["ms"].items():
                times[side].setdefault(k, []).append(v)
    print(f"| conv (beta_w,beta_a), 1 thread | A ms | B ms | B vs A |\n|---|---|---|---|")
    tot = {"a": 0.0, "b": 0.0}
    for k in times["a"]:
        ma, mb = statistics.median(times["a"][k]), statistics.median(times["b"][k])
        tot["a"] += ma
        tot["b"] += mb
        print(f"| {k} | {ma:.3f} | {mb:.3f} | {ma / mb:.2f}x |")
    print(f"| all | {tot['a']:.3f} | {tot['b']:.3f} | {tot['a'] / tot['b']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

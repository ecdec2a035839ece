"""Per-call cost of the Limited API (abi3) build against the full-API build, on the bundled LeNet.

    python benchmarks/bench_abi3.py [--rounds 6] [--calls 1000]

Builds two copies of the tracked tree in a temporary folder (`setup.py build_ext --inplace`, one with
HBNN_LIMITED_API=3.9), then times batch-1 single-thread `Interpreter.invoke` in each, alternating
between them round by round (each round a fresh process), and prints the median per call of each
and their ratio. The two extensions share a module name, hence the separate processes.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join("models", "lenet-fmnist-bw16-ba2.hbn")

TIMER = r"""
import sys, time
import numpy as np
sys.path.insert(0, ".")
from edge.interpreter import Interpreter
it = Interpreter(sys.argv[1], num_threads=1)
d = it.get_input_details()[0]
x = np.random.default_rng(0).standard_normal(d["shape"]).astype(np.float32)
for _ in range(200):
    it.set_tensor(d["index"], x); it.invoke()
ts = []
for _ in range(int(sys.argv[2])):
    t = time.perf_counter(); it.set_tensor(d["index"], x); it.invoke(); ts.append(time.perf_counter() - t)
ts.sort()
print(ts[len(ts) // 2])
"""


def build(dest: str, limited: bool) -> None:
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, files.decode().split("\0")):
        os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
        with open(os.path.join(REPO, name), "rb") as src, open(os.path.join(dest, name), "wb") as out:
            out.write(src.read())
    env = dict(os.environ)
    env.pop("HBNN_LIMITED_API", None)
    if limited:
        env["HBNN_LIMITED_API"] = "3.9"  # what scripts/cross-build ships (ABI3_PYTHON)
    subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"], cwd=dest, env=env, check=True,
                   stdout=subprocess.DEVNULL)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--calls", type=int, default=1000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"full API": os.path.join(tmp, "full"), "Limited API (abi3)": os.path.join(tmp, "abi3")}
        for label, path in trees.items():
            build(path, limited="abi3" in label)
        times = {label: [] for label in trees}
        for _ in range(args.rounds):
            for label, path in trees.items():
                out = subprocess.run([sys.executable, "-c", TIMER, MODEL, str(args.calls)], cwd=path,
                                     capture_output=True, text=True, check=True)
                times[label].append(float(out.stdout))
    medians = {label: statistics.median(v) for label, v in times.items()}
    for label, m in medians.items():
        print(f"{label:20s} median {m * 1e6:8.1f} us/call  rounds {', '.join(f'{t * 1e6:.1f}' for t in times[label])}")
    ratio = medians["Limited API (abi3)"] / medians["full API"]
    print(f"abi3 / full: {ratio:.3f} ({(ratio - 1) * 100:+.1f} %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

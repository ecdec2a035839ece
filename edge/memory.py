"""``hbnn bench memory``: peak RSS and RSS growth of a long ``hbnn infer`` run.

The run happens in a child process (so the numbers are those of ``hbnn infer`` alone);
its resident set is sampled from ``/proc/<pid>/status`` while it runs, and the peak comes
from ``getrusage(RUSAGE_CHILDREN)`` after it exits. Growth compares the RSS once warm
(after the first fifth of the run) with the RSS at the end.
"""
from __future__ import annotations

import resource
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple


def _rss_kib(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def measure_infer_memory(model: str, clip: str, frames: int = 10000, interval: float = 0.05) -> Dict:
    argv = ["infer", "--model", model, "--source", f"npz:{clip}", "--loop", "--quiet",
            "--max-frames", str(frames), "--status-interval", "1e9"]
    # What the `hbnn` entry point runs (edge.cli.main), without depending on it being on PATH.
    cmd = [sys.executable, "-c", f"import sys; from edge.cli import main; sys.exit(main({argv!r}))"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    samples: List[Tuple[float, int]] = []
    while proc.poll() is None:
        rss = _rss_kib(proc.pid)
        if rss is not None:
            samples.append((time.monotonic() - t0, rss))
        time.sleep(interval)
    out, err = proc.communicate()
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"Expected `hbnn infer` to succeed, got exit {proc.returncode}: {err.strip()[-500:]}")
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
    warm = [rss for t, rss in samples if t >= wall * 0.2] or [rss for _, rss in samples]
    report = {"command": " ".join(cmd), "frames": frames, "wall_s": round(wall, 2),
              "peak_rss_mib": round(peak_kib / 1024, 1), "samples": len(samples),
              "summary_line": out.strip().splitlines()[-1] if out.strip() else ""}
    if warm:
        report["rss_warm_mib"] = round(warm[0] / 1024, 1)
        report["rss_end_mib"] = round(warm[-1] / 1024, 1)
        report["growth_mib"] = round((warm[-1] - warm[0]) / 1024, 2)
    return report


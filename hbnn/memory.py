"""``hbnn bench memory``: peak RSS and RSS growth of a long ``hbnn infer`` run.

The run happens in a child process (so the numbers are those of ``hbnn infer`` alone);
its resident set is sampled from ``/proc/<pid>/status`` while it runs, and the peak is the
child's own ``VmHWM`` (high-water RSS, KiB), printed as it exits. Growth
compares the RSS once warm (past imports and the first fifth of the run, at least 1.5 s in)
with the RSS at the end; runs too short for that report no growth.
"""
from __future__ import annotations

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
    # What the `hbnn` entry point runs (hbnn.cli.main); the child reports its own peak RSS, so
    # other children of this process (benchmark peers) cannot inflate it.
    # VmHWM, not ru_maxrss: Linux carries the forking parent's peak into ru_maxrss across exec.
    code = ("import sys; from hbnn.cli import main; rc = main(%r); "
            "hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')]; "
            "print('maxrss_kib', hwm[0], file=sys.stderr); sys.exit(rc)" % (argv,))
    cmd = [sys.executable, "-c", code]
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
    reported = [line.split()[1] for line in err.splitlines() if line.startswith("maxrss_kib ")]
    peak_kib = int(reported[-1]) if reported else max((rss for _, rss in samples), default=0)
    # "Warm": past start-up (imports, model load: ~0.5 s here). 10,000 frames now take ~1.2 s, so a
    # short run counts its last 40 % as warm rather than everything after 1.5 s (nothing).
    warm_from = max(wall * 0.2, 1.5) if wall >= 3.0 else wall * 0.6
    warm = [rss for t, rss in samples if t >= warm_from]
    report = {"command": "hbnn " + " ".join(argv), "frames": frames, "wall_s": round(wall, 2),
              "peak_rss_mib": round(peak_kib / 1024, 1), "samples": len(samples),
              "summary_line": out.strip().splitlines()[-1] if out.strip() else ""}
    if warm:
        report["rss_warm_mib"] = round(warm[0] / 1024, 1)
        report["rss_end_mib"] = round(warm[-1] / 1024, 1)
        report["growth_mib"] = round((warm[-1] - warm[0]) / 1024, 2)
    return report


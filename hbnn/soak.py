"""``hbnn bench soak``: a long run of the real frame loop, watched for leaks, drift and errors.

The bundled clip is looped through :meth:`edge.loop.InferenceLoop.run` (preprocess, model,
top-k) and, by default, every result goes out through the bridge as MAVLink over a
pseudo-terminal whose far end a :class:`firmware_bridge.Listener` decodes, as in ``hbnn demo``.
Reported per window of frames: throughput, latency p50/p99/max and the process's resident set
(``VmRSS``); at the end the RSS growth from the start (after the warm-up) to the end, and every
error. Errors are: frames the loop rejected or failed on, a result that differs from the one the
same clip frame gave on the first pass (the kernels are deterministic, so any change is state
corruption), link errors and results lost on the link other than by the queue's "newest wins"
(which is by design, and reported apart), and frames that did not decode at the far end. The
verdict fails (exit status 1) when RSS grew by ``max_growth_mib`` or more, or on any error.
"""
from __future__ import annotations

import json
import os
import resource
import time
from typing import Callable, Dict, List, Optional

from .bundled import BUNDLED_CLIP, BUNDLED_MODEL
from .errors import CommandError
from .memory import _rss_kib

LINK_ERRORS = ("link_errors", "write_timeouts", "drops_write", "drops_link_down", "drops_on_close",
               "rx_errors", "rx_bad_signatures", "callback_errors")


def _peak_rss_mib() -> float:
    """VmHWM (the kernel's high-water RSS); ru_maxrss lags behind VmRSS on Linux."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _rss_mib() -> float:
    kib = _rss_kib(os.getpid())
    if kib is None:  # no /proc: the peak is the best we have (ru_maxrss is KiB on Linux)
        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024.0


class _FcSide:
    """The flight controller's end of the pty: decodes and counts what arrives."""

    def __init__(self, protocol: str):
        from firmware_bridge import Listener
        from firmware_bridge.ptylink import VirtualSerialPair

        self.pair = VirtualSerialPair()
        self.results = 0
        self._protocol = protocol
        self.listener = Listener(self.pair.fc_port, protocol, on_message=self._on_message).start()

    def _on_message(self, msg) -> None:
        if self._protocol == "frames":
            self.results += type(msg).__name__ == "InferenceResult"
        elif msg.get_type() == "NAMED_VALUE_INT":
            self.results += 1

    def close(self, expect_bytes: int, timeout: float = 10.0) -> Dict:
        deadline = time.monotonic() + timeout
        while self.listener.stats()["rx_bytes"] < expect_bytes and time.monotonic() < deadline:
            time.sleep(0.01)  # the last bytes cross the pty
        stats = self.listener.stop()
        self.pair.close()
        return stats


def run_soak(interpreter, clip: str, *, frames: int = 100_000, window: int = 10_000, warmup: int = 1_000,
             link: Optional[str] = "pty", protocol: str = "mavlink", max_growth_mib: float = 2.0,
             out: Callable[[str], None] = print, describe: str = "") -> Dict:
    """Run the soak; returns the report (``report["ok"]`` is the verdict)."""
    import numpy as np

    from edge.loop import InferenceLoop
    from edge.sources import open_source

    if frames < 1 or window < 1 or warmup < 0:
        raise ValueError(f"Expected frames >= 1, window >= 1, warmup >= 0, got {frames}, {window}, {warmup}")
    rss_loaded = _rss_mib()
    source = open_source(f"npz:{clip}", loop=True).open()
    loop = InferenceLoop(interpreter, topk=3)
    fc = reporter = None
    if link == "pty":
        from firmware_bridge import open_reporter
        fc = _FcSide(protocol)
        reporter = open_reporter(fc.pair.url, protocol)
        link_text = f"{protocol} over a pty, decoded at the far end"
    elif link:
        from firmware_bridge import open_reporter
        reporter = open_reporter(link, protocol)
        link_text = f"{protocol} to {link}"
    else:
        link_text = "none"

    n_clip = len(source)
    first_pass = np.full(n_clip, -1, np.int64)
    lat = np.zeros(window, np.float64)
    lat[:] = 1.0  # touch the pages now, so that they are in the start RSS
    state = {"seen": 0, "n": 0, "mismatches": 0, "bad": 0, "rss_start": None}
    windows: List[Dict] = []
    t_window = [time.monotonic()]

    def on_result(result, frame):
        i = frame.index % n_clip
        if first_pass[i] < 0:
            first_pass[i] = result.class_id
        elif first_pass[i] != result.class_id:
            state["mismatches"] += 1
        state["seen"] += 1
        if state["seen"] <= warmup:
            if state["seen"] == warmup:
                start_window()
            return
        k = state["n"] % window
        lat[k] = result.latency_ms
        state["n"] += 1
        if k == window - 1 or state["n"] == frames:
            now = time.monotonic()
            part = lat[:k + 1]
            p50, p99 = np.percentile(part, (50, 99))
            row = {"frames": state["n"], "fps": round((k + 1) / max(now - t_window[0], 1e-9), 1),
                   "p50_ms": round(float(p50), 4), "p99_ms": round(float(p99), 4),
                   "max_ms": round(float(part.max()), 4), "rss_mib": round(_rss_mib(), 2)}
            windows.append(row)
            out(f"{row['frames']:>9d} {row['fps']:>9.1f} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f} "
                f"{row['max_ms']:>8.3f} {row['rss_mib']:>9.2f}")
            t_window[0] = time.monotonic()

    def on_bad_frame(frame, exc):
        state["bad"] += 1

    def start_window():
        np.percentile(lat, (50, 99))  # its first call imports and allocates: not a leak, do it now
        state["rss_start"] = _rss_mib()
        out(f"{'frames':>9} {'fps':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'RSS MiB':>9}")
        t_window[0] = state["t_run"] = time.monotonic()

    out(f"hbnn bench soak: {describe}{frames} frames of {clip} (looped, {n_clip} frames), "
        f"warm-up {warmup}, link: {link_text}")
    exceptions: List[str] = []
    if not warmup:
        start_window()
    try:
        # One run: the warm-up frames go through the same loop, stats and link as the measured ones.
        loop.run(source, reporter=reporter, on_result=on_result, max_frames=warmup + frames,
                 latest_frame_wins=False, on_bad_frame=on_bad_frame)
    except Exception as exc:  # noqa: BLE001 - the verdict reports it
        exceptions.append(f"{type(exc).__name__}: {exc}")
    finally:
        rss_end = _rss_mib()
        run_s = time.monotonic() - state.get("t_run", time.monotonic())
        rss_start = state["rss_start"] if state["rss_start"] is not None else rss_loaded
        source.close()
        if reporter is not None:
            reporter.close()
    link_stats = reporter.stats() if reporter is not None else None
    fc_stats = fc.close(int(link_stats["bytes"])) if fc is not None else None

    errors = {"exceptions": len(exceptions), "bad_frames": state["bad"],
              "changed_results": state["mismatches"]}
    if link_stats is not None:
        for key in LINK_ERRORS:
            errors[f"link_{key}" if not key.startswith("link") else key] = int(link_stats.get(key, 0))
    if fc is not None:
        errors["fc_decode_errors"] = int(fc_stats["errors"]) + int(fc_stats["bad_signatures"])
        errors["fc_results_missing"] = int(link_stats["results_sent"]) - fc.results
    done = state["n"]
    if done != frames:
        errors["frames_short"] = frames - done
    growth = rss_end - rss_start
    n_errors = sum(abs(v) for v in errors.values())
    reasons = []
    if growth >= max_growth_mib:
        reasons.append(f"RSS grew {growth:.2f} MiB (limit {max_growth_mib:g})")
    if n_errors:
        reasons.append("errors: " + ", ".join(f"{k} {v}" for k, v in errors.items() if v) +
                       (f" ({exceptions[0]})" if exceptions else ""))
    report = {
        "frames": done, "window": window, "warmup": warmup, "clip": clip, "clip_frames": n_clip,
        "link": link_text, "run_s": round(run_s, 2), "fps": round(done / run_s, 1) if run_s > 0 else None,
        "rss_loaded_mib": round(rss_loaded, 2), "rss_start_mib": round(rss_start, 2),
        "rss_end_mib": round(rss_end, 2), "rss_growth_mib": round(growth, 3),
        "rss_growth_kib": int(round(growth * 1024)), "max_growth_mib": max_growth_mib,
        "peak_rss_mib": round(_peak_rss_mib(), 2),
        "windows": windows, "errors": errors, "exceptions": exceptions,
        "queue_drops": int(link_stats.get("drops_queue_full", 0)) if link_stats else 0,
        "results_sent": int(link_stats["results_sent"]) if link_stats else None,
        "fc_results": fc.results if fc is not None else None,
        "ok": not reasons, "reasons": reasons,
    }
    out(f"RSS: {rss_loaded:.2f} MiB after loading, {rss_start:.2f} MiB at the start (after the warm-up), "
        f"{rss_end:.2f} MiB at the end: growth {growth * 1024:+.0f} KiB (limit {max_growth_mib:g} MiB)")
    out(f"frames {done} in {run_s:.1f} s ({report['fps']} fps); errors {n_errors}"
        + (f"; link: {report['results_sent']} results sent, {report['fc_results']} decoded at the far end, "
           f"{report['queue_drops']} superseded in the queue (newest wins)" if link_stats else ""))
    out("PASS" if report["ok"] else "FAIL: " + "; ".join(reasons))
    return report


def cmd_bench_soak(args) -> int:
    from .run_commands import load_interpreter

    interp = load_interpreter(args.model, args.threads)
    link = None if args.link in ("none", "") else args.link
    try:
        report = run_soak(interp, args.clip or str(BUNDLED_CLIP), frames=args.frames, window=args.window,
                          warmup=args.warmup, link=link, protocol=args.protocol,
                          max_growth_mib=args.max_growth_mib,
                          describe=f"{os.path.basename(args.model)}, {args.threads} thread(s), ")
    except (ValueError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    report["command"] = (f"hbnn bench soak --model {args.model} --frames {args.frames} --window {args.window} "
                         f"--warmup {args.warmup} --threads {args.threads} --link {args.link} "
                         f"--protocol {args.protocol} --max-growth-mib {args.max_growth_mib:g}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1)
    return 0 if report["ok"] else 1


def add_soak_arguments(p) -> None:
    """Options of ``hbnn bench soak`` (its parser comes from hbnn.cli's table)."""
    p.add_argument("--model", default=str(BUNDLED_MODEL))
    p.add_argument("--clip", help="npz clip, looped (default: the bundled Fashion-MNIST clip)")
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--window", type=int, default=10_000, help="frames per reported window")
    p.add_argument("--warmup", type=int, default=1_000, help="frames before the start RSS is taken")
    p.add_argument("--threads", type=int, default=1, help="kernel threads (0 = all cores)")
    p.add_argument("--link", default="pty",
                   help="'pty' (a pseudo-terminal decoded at the far end), a device/URL, or 'none'")
    p.add_argument("--protocol", choices=("mavlink", "frames"), default="mavlink")
    p.add_argument("--max-growth-mib", type=float, default=2.0, help="fail at this RSS growth or more")
    p.add_argument("--json", help="write the report to this file")
    p.set_defaults(func=cmd_bench_soak)

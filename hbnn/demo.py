"""``hbnn demo``: the bundled model over a clip of real Fashion-MNIST test frames, end to end.

npz clip -> preprocess -> Interpreter -> firmware_bridge (MAVLink 2) -> pseudo-terminal ->
an in-process "flight controller" (firmware_bridge's Listener on the pty's far end) that decodes
the bytes and prints what it received. Ends with accuracy on the clip, fps, latency percentiles and model size.
Nothing is downloaded and nothing is faked: a missing model or runtime is an error.
"""
from __future__ import annotations

import collections
import time
from pathlib import Path
from typing import List

from .errors import CommandError


def describe(msg, labels: List[str]) -> str:
    """One line per MAVLink message, the way a ground station would show it."""
    kind = msg.get_type()
    if kind == "NAMED_VALUE_INT":
        name = msg.name.rstrip("\0") if isinstance(msg.name, str) else msg.name
        is_class = any(key in str(name).lower() for key in ("cls", "class"))
        extra = f" ({labels[msg.value]})" if is_class and 0 <= msg.value < len(labels) else ""
        return f"NAMED_VALUE_INT {name}={msg.value}{extra}"
    if kind == "NAMED_VALUE_FLOAT":
        return f"NAMED_VALUE_FLOAT {msg.name}={msg.value:.3f}"
    if kind == "DEBUG_VECT":
        return f"DEBUG_VECT {msg.name} x={msg.x:.3f} y={msg.y:.3f} z={msg.z:.3f}"
    if kind == "STATUSTEXT":
        return f"STATUSTEXT [{msg.severity}] {msg.text}"
    fields = " ".join(f"{k}={v}" for k, v in msg.to_dict().items() if k != "mavpackettype")
    return f"{kind} {fields}"


class FlightController:
    """The far end of the pty: a firmware_bridge Listener that counts and prints what it decodes."""

    def __init__(self, labels: List[str], show: int = 12, printer=print):
        from firmware_bridge import Listener
        from firmware_bridge.ptylink import VirtualSerialPair

        self.labels, self.show, self.printer = labels, show, printer
        self.counts: collections.Counter = collections.Counter()
        self.pair = VirtualSerialPair()
        self.listener = Listener(self.pair.fc_port, "mavlink", on_message=self._on_message).start()

    def _on_message(self, msg) -> None:
        self.counts[msg.get_type()] += 1
        if sum(self.counts.values()) <= self.show:
            self.printer(f"FC <- {describe(msg, self.labels)}")

    def drain(self, sent_bytes: int, limit_s: float = 5.0) -> dict:
        """Wait until every byte the reporter wrote has been read, then stop; the listener's counters."""
        end = time.monotonic() + limit_s
        while self.listener.stats()["rx_bytes"] < sent_bytes and time.monotonic() < end:
            time.sleep(0.01)
        return self.close()

    def close(self) -> dict:
        stats = self.listener.stop()
        self.pair.close()
        return stats


def _require(model: str, clip: str):
    missing = []
    if not Path(model).is_file():
        missing.append(f"the bundled model {model} (package data of hbnn: reinstall, or pass --model)")
    if not Path(clip).is_file():
        missing.append(f"the demo clip {clip}")
    try:
        from edge.interpreter import Interpreter
    except ImportError as exc:
        missing.append(f"the runtime edge.Interpreter ({exc})")
        Interpreter = None
    try:
        from firmware_bridge import open_reporter
    except ImportError as exc:
        missing.append(f"the MAVLink reporter firmware_bridge.open_reporter ({exc})")
        open_reporter = None
    if missing:
        raise CommandError("The demo cannot run; missing: " + "; ".join(missing))
    return Interpreter, open_reporter


def run_demo(model: str, clip: str, show: int = 12, threads: int = 1, printer=print) -> int:
    Interpreter, open_reporter = _require(model, clip)
    from edge.loop import InferenceLoop
    from edge.sources import NpzSource

    interp = Interpreter(model, num_threads=threads)
    loop = InferenceLoop(interp, topk=3)
    source = NpzSource(clip).open()
    size_kib = Path(model).stat().st_size / 1024
    printer(f"model  {model} ({size_kib:.1f} KiB), input {interp.input_spec['shape']}, "
            f"{len(loop.labels)} classes")
    printer(f"clip   {clip}: {len(source)} real Fashion-MNIST test frames")

    fc = FlightController(loop.labels, show=show, printer=printer)
    printer(f"link   MAVLink 2 over pseudo-terminal {fc.pair.url} -> in-process flight controller")
    reporter = None
    try:
        # The clip replays far faster than a camera (hundreds of fps); a deep queue lets every
        # result reach the FC instead of newest-wins dropping, so the counts below add up.
        reporter = open_reporter(fc.pair.url, protocol="mavlink", queue_size=len(source) + 16)
        stats = loop.run(source, reporter=reporter)
        reporter.close()  # sends what is still queued
        link_stats = reporter.stats()
        reporter = None
        fc_stats = fc.drain(link_stats["bytes"])
    finally:
        if reporter is not None:
            reporter.close()
        fc.close()
    shown = min(show, sum(fc.counts.values()))
    other = sum(fc.counts.values()) - shown
    if other > 0:
        printer(f"FC <- ... {other} more messages")
    s = stats.summary()
    lat = s["latency_ms"]
    printer("")
    printer(f"accuracy  {stats.correct}/{stats.labelled} = {stats.accuracy():.3f} on the clip")
    printer(f"speed     {s['fps']:.1f} fps, latency p50 {lat['p50']:.3f} / p95 {lat['p95']:.3f} / "
            f"p99 {lat['p99']:.3f} ms (capture to result, {threads} thread(s))")
    printer(f"model     {size_kib:.1f} KiB on disk")
    sent = {k: link_stats.get(k) for k in ("results_in", "results_sent", "drops", "messages", "bytes")}
    printer(f"link      FC decoded {dict(fc.counts)}; reporter {sent}")
    results = stats.frames
    if fc_stats["errors"] or not fc.counts:
        printer("link      WARNING: the flight controller did not decode the stream cleanly")
        return 1
    return 0 if results else 1

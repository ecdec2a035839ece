"""``hbnn demo``: the bundled model over a clip of real Fashion-MNIST test frames, end to end.

npz clip -> preprocess -> Interpreter -> firmware_bridge (MAVLink 2) -> pseudo-terminal ->
an in-process "flight controller" thread that decodes the bytes with pymavlink and prints
what it received. Ends with accuracy on the clip, fps, latency percentiles and model size.
Nothing is downloaded and nothing is faked: a missing model or runtime is an error.
"""
from __future__ import annotations

import collections
import os
import select
import threading
import time
import tty
from pathlib import Path
from typing import List

from .cli import CommandError


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


class FlightControllerListener(threading.Thread):
    """Reads the master side of the pty and decodes MAVLink like an autopilot would."""

    def __init__(self, fd: int, labels: List[str], show: int = 12, printer=print):
        super().__init__(name="demo-fc", daemon=True)
        from pymavlink.dialects.v20 import common as mavlink2
        self.fd, self.labels, self.show, self.printer = fd, labels, show, printer
        self.parser = mavlink2.MAVLink(None)
        self.parser.robust_parsing = True  # count garbage instead of raising
        self.counts: collections.Counter = collections.Counter()
        self.last_rx = time.monotonic()
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            ready, _, _ = select.select([self.fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.fd, 4096)
            except OSError:  # slave side closed
                return
            self.last_rx = time.monotonic()
            for msg in self.parser.parse_buffer(data) or []:
                kind = msg.get_type()
                self.counts[kind] += 1
                if kind != "BAD_DATA" and sum(self.counts.values()) <= self.show:
                    self.printer(f"FC <- {describe(msg, self.labels)}")

    def drain(self, quiet_s: float = 0.3, limit_s: float = 5.0) -> None:
        """Wait until the link has been quiet for ``quiet_s`` (all bytes arrived), then stop."""
        end = time.monotonic() + limit_s
        while time.monotonic() < end and time.monotonic() - self.last_rx < quiet_s:
            time.sleep(0.05)
        self._halt.set()
        self.join(1.0)


def _require(model: str, clip: str):
    missing = []
    if not Path(model).is_file():
        missing.append(f"the bundled model {model} (produced by the training/converter work, "
                       "converters/; it is committed with the repository once trained)")
    if not Path(clip).is_file():
        missing.append(f"the demo clip {clip}")
    try:
        from .interpreter import Interpreter
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
    from .loop import InferenceLoop
    from .sources import NpzSource

    interp = Interpreter(model, num_threads=threads)
    loop = InferenceLoop(interp, topk=3)
    source = NpzSource(clip).open()
    size_kib = Path(model).stat().st_size / 1024
    printer(f"model  {model} ({size_kib:.1f} KiB), input {interp.input_spec['shape']}, "
            f"{len(loop.labels)} classes")
    printer(f"clip   {clip}: {len(source)} real Fashion-MNIST test frames")

    master, slave = os.openpty()
    tty.setraw(slave)  # no line discipline: MAVLink is binary
    slave_path = os.ttyname(slave)
    printer(f"link   MAVLink 2 over pseudo-terminal {slave_path} -> in-process flight controller")
    listener = FlightControllerListener(master, loop.labels, show=show, printer=printer)
    listener.start()
    reporter = None
    try:
        # The clip replays far faster than a camera (hundreds of fps); a deep queue lets every
        # result reach the FC instead of newest-wins dropping, so the counts below add up.
        reporter = open_reporter(slave_path, protocol="mavlink", queue_size=len(source) + 16)
        stats = loop.run(source, reporter=reporter)
        reporter.close()  # sends what is still queued
        link_stats = reporter.stats()
        reporter = None
        listener.drain()
    finally:
        if reporter is not None:
            reporter.close()
        listener._halt.set()
        os.close(slave)
        os.close(master)
    shown = min(show, sum(listener.counts.values()))
    other = sum(listener.counts.values()) - shown
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
    printer(f"link      FC decoded {dict(listener.counts)}; reporter {sent}")
    results = stats.frames
    if listener.counts.get("BAD_DATA") or not listener.counts:
        printer("link      WARNING: the flight controller did not decode the stream cleanly")
        return 1
    return 0 if results else 1

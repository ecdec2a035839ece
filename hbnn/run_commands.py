"""``hbnn infer``, ``hbnn daemon`` and ``hbnn demo``: the on-board runtime (edge) from the command line.

Registration is cheap (argparse only); each handler imports what it needs.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
from pathlib import Path

from .bundled import BUNDLED_CLIP, BUNDLED_MODEL
from .errors import CommandError


def add_infer(p) -> None:
    p.add_argument("--model", required=True, help="model file (.hbn)")
    p.add_argument("--source", required=True,
                   help="picamera2 | v4l2:/dev/videoN | gst:<pipeline> | video:FILE | images:DIR | "
                        "npz:FILE | synthetic[:HxW[xC]]")
    p.add_argument("--link", help="send results to the autopilot/MCU, e.g. /dev/ttyAMA0?baudrate=921600")
    p.add_argument("--protocol", choices=("mavlink", "frames"), default="mavlink")
    p.add_argument("--json", action="store_true", help="one JSON object per result, summary last")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N results")
    p.add_argument("--threads", type=int, default=1, help="kernel threads (0 = all cores)")
    p.add_argument("--topk", type=int, default=3)
    p.add_argument("--loop", action="store_true", help="repeat file sources (npz, images, video)")
    p.add_argument("--crop", choices=("center", "none"), default="center")
    p.add_argument("--quiet", action="store_true", help="no per-frame lines, status and summary only")
    p.add_argument("--status-interval", type=float, default=1.0, metavar="S")
    p.add_argument("--prefetch", action="store_true",
                   help="capture and preprocess the next frame on a thread while this one runs (edge.prefetch)")
    p.set_defaults(func=cmd_infer)


def add_daemon(p) -> None:
    p.add_argument("--config", default="/etc/hbnn/daemon.toml")
    p.set_defaults(func=cmd_daemon)


def add_demo(p) -> None:
    p.add_argument("--model", default=str(BUNDLED_MODEL))
    p.add_argument("--clip", default=str(BUNDLED_CLIP))
    p.add_argument("--show", type=int, default=12, help="FC-side messages to print (rest are counted)")
    p.add_argument("--threads", type=int, default=1)
    p.set_defaults(func=cmd_demo)



def load_interpreter(path: str, threads: int = 1):
    """``edge.Interpreter`` for ``path`` or a CommandError that says what is wrong."""
    if not Path(path).is_file():
        raise CommandError(f"Expected a model file, got missing path {path!r}")
    try:
        from edge.interpreter import Interpreter
    except ImportError as exc:
        raise CommandError(f"Expected the runtime (edge.interpreter), got ImportError: {exc}") from exc
    try:
        return Interpreter(path, num_threads=threads or (os.cpu_count() or 1))  # 0 = all cores
    except (ValueError, OSError) as exc:  # ModelFormatError is a ValueError
        raise CommandError(f"Expected a model the runtime can run, got {path}: {exc}") from exc


def open_link(url, protocol: str):
    if not url:
        return None
    try:
        from firmware_bridge import open_reporter
    except ImportError as exc:
        raise CommandError(f"Expected firmware_bridge for --link, got ImportError: {exc}") from exc
    try:
        return open_reporter(url, protocol=protocol)
    except (ValueError, OSError) as exc:
        raise CommandError(f"Expected to open link {url!r}, got {exc}") from exc


def _on_signals(signals, handler=None) -> dict:
    """Install ``handler`` for ``signals`` (or restore a dict of old handlers); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    pairs = signals.items() if isinstance(signals, dict) else [(s, handler) for s in signals]
    return {s: signal.signal(s, h) for s, h in pairs}


def format_result(result, labels=()) -> str:
    name = lambda c: labels[c] if 0 <= c < len(labels) else str(c)  # noqa: E731
    top = ", ".join(f"{name(cid)} {conf:.2f}" for cid, conf in result.topk)
    return (f"#{result.sequence:<5d} {name(result.class_id):<12} {result.confidence:.3f}  "
            f"top: {top}  {result.latency_ms:.3f} ms")


def cmd_infer(args) -> int:
    from edge.errors import InputSpecError, SourceError
    from edge.loop import InferenceLoop, bad_frame_worth_logging
    from edge.sources import open_source

    interp = load_interpreter(args.model, args.threads)
    try:
        source = open_source(args.source, loop=args.loop).open()
    except SourceError as exc:
        raise CommandError(str(exc)) from exc
    try:
        loop = InferenceLoop(interp, topk=args.topk, crop=args.crop)
    except InputSpecError as exc:
        raise CommandError(f"Expected a usable input spec in {args.model}, got {exc}") from exc
    if args.prefetch:
        from edge.prefetch import PrefetchSource
        source = PrefetchSource(source, type(loop.pre)(interp.input_spec, crop=args.crop)).open()
    tty = sys.stderr.isatty()

    def on_result(result, frame):
        if args.json:
            print(json.dumps({"sequence": result.sequence, "class_id": result.class_id, "label": result.label,
                              "confidence": round(result.confidence, 5), "latency_ms": round(result.latency_ms, 4),
                              "topk": [[c, round(p, 5)] for c, p in result.topk], "truth": frame.label}))
        elif not args.quiet:
            print(format_result(result, loop.labels))

    def on_status(stats):
        sys.stderr.write(("\r" + stats.status_line() + "\033[K") if tty else stats.status_line() + "\n")
        sys.stderr.flush()

    bad = 0

    def on_bad_frame(frame, exc):
        nonlocal bad
        bad += 1
        if bad_frame_worth_logging(bad):
            print(f"hbnn: frame {frame.index} skipped ({bad} so far): {exc}", file=sys.stderr)

    link = open_link(args.link, args.protocol)
    stop = threading.Event()
    saved = _on_signals((signal.SIGINT, signal.SIGTERM), lambda *_: stop.set())  # Ctrl-C: summary, exit 0
    try:
        stats = loop.run(source, reporter=link, on_result=on_result, on_status=on_status,
                         status_interval=args.status_interval, max_frames=args.max_frames, stop=stop,
                         on_bad_frame=on_bad_frame)
    except (SourceError, TimeoutError) as exc:
        raise CommandError(str(exc)) from exc
    finally:
        _on_signals(saved)
        source.close()
        if link is not None:
            link.close()
    if tty:
        sys.stderr.write("\n")
    summary = stats.summary()
    if link is not None and hasattr(link, "stats"):
        summary["link"] = link.stats()
    if args.json:
        print(json.dumps({"summary": summary}, default=str))
    else:
        print("summary: " + stats.status_line())
    return 0


def cmd_daemon(args) -> int:
    from edge.daemon import Daemon
    from edge.errors import DaemonError

    daemon = Daemon(args.config)
    daemon.install_signal_handlers()
    try:
        daemon.start()
    except DaemonError as exc:
        raise CommandError(str(exc)) from exc
    return daemon.run()


def cmd_demo(args) -> int:
    from .demo import run_demo
    return run_demo(args.model, args.clip, show=args.show, threads=args.threads)

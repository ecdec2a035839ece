"""``hbnn listen`` and ``hbnn bridge-test``: bench tools for the autopilot/MCU link (firmware_bridge).

Registration imports nothing heavy; pyserial and pymavlink load inside the handlers.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

from .errors import CommandError

LINK_HELP = ("device path (/dev/ttyUSB0?baudrate=57600, default 921600 baud), "
             "loop:// or socket://host:port (SITL)")


def add_listen(p: argparse.ArgumentParser) -> None:
    p.description = ("Decode MAVLink 2 or framed-protocol traffic on a link and print one line per message. "
                     "Ctrl-C stops and prints the counters.")
    p.add_argument("--link", required=True, help=LINK_HELP)
    p.add_argument("--protocol", choices=("mavlink", "frames"), default="mavlink")
    p.add_argument("--baudrate", type=int, help="overrides ?baudrate= in --link")
    p.add_argument("--signing-key-file", help="verify MAVLink 2 signatures with this key (docs/PROTOCOL.md)")
    p.add_argument("--autopilot-heartbeat", type=float, default=0.0, metavar="HZ",
                   help="also send HEARTBEATs as a PX4 autopilot would (mavlink), e.g. 1")
    p.add_argument("--count", type=int, help="stop after this many messages")
    p.add_argument("--duration", type=float, help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print each message as a JSON object")
    p.set_defaults(func=_listen)


def add_bridge_test(t: argparse.ArgumentParser) -> None:
    t.description = ("Send STATUSTEXT 'hbnn bridge-test' and a burst of synthetic results, then print the link "
                     "counters. Exit status 1 if any result was dropped.")
    t.add_argument("--link", required=True, help=LINK_HELP)
    t.add_argument("--protocol", choices=("mavlink", "frames"), default="mavlink")
    t.add_argument("--baudrate", type=int, help="overrides ?baudrate= in --link")
    t.add_argument("--count", type=int, default=20, help="results to send (default 20)")
    t.add_argument("--rate-hz", type=float, default=10.0, help="results per second (default 10)")
    t.add_argument("--system-id", type=int, default=1)
    t.add_argument("--component-id", type=int, default=191)
    t.add_argument("--signing-key-file", help="sign with this MAVLink 2 key (docs/PROTOCOL.md)")
    t.add_argument("--debug-vect", action="store_true", help="also send the top-3 as DEBUG_VECT")
    t.set_defaults(func=_bridge_test)


def _as_json(msg: Any) -> str:
    import dataclasses
    import json

    if dataclasses.is_dataclass(msg):
        return json.dumps({"type": type(msg).__name__, **dataclasses.asdict(msg)})
    data = msg.to_dict()
    data["srcSystem"], data["srcComponent"] = msg.get_srcSystem(), msg.get_srcComponent()
    return json.dumps(data, default=str)


def _listen(args: argparse.Namespace) -> int:
    from firmware_bridge import BridgeError, Listener, describe

    if args.count is not None and args.count < 1:
        raise CommandError(f"Expected --count >= 1, got {args.count}")
    if args.duration is not None and not args.duration > 0:
        raise CommandError(f"Expected --duration > 0, got {args.duration}")

    def show(msg: Any) -> None:
        print(_as_json(msg) if args.json else describe(msg), flush=True)

    try:
        listener = Listener(args.link, args.protocol, show, baudrate=args.baudrate,
                            signing_key_file=args.signing_key_file,
                            autopilot_heartbeat_hz=args.autopilot_heartbeat)
    except BridgeError as exc:
        raise CommandError(str(exc)) from None
    try:
        stats = listener.run(duration=args.duration, count=args.count)
    except KeyboardInterrupt:
        stats = listener.stats()
    print(f"hbnn listen: {stats['messages']} messages, {stats['errors']} bad frames skipped, "
          f"{stats['bad_signatures']} bad signatures, {stats['reconnects']} reconnects", file=sys.stderr)
    return 0


def _bridge_test(args: argparse.Namespace) -> int:
    import time

    from firmware_bridge import BridgeError, InferenceResult, open_reporter

    if args.count < 1:
        raise CommandError(f"Expected --count >= 1, got {args.count}")
    if not args.rate_hz > 0:
        raise CommandError(f"Expected --rate-hz > 0, got {args.rate_hz}")
    options: dict = {"baudrate": args.baudrate}
    if args.protocol == "mavlink":
        options.update(system_id=args.system_id, component_id=args.component_id,
                       signing_key_file=args.signing_key_file, debug_vect=args.debug_vect)
    elif args.signing_key_file or args.debug_vect:
        raise CommandError("Expected --signing-key-file and --debug-vect only with --protocol mavlink")
    try:
        reporter = open_reporter(args.link, args.protocol, **options)
    except BridgeError as exc:
        raise CommandError(str(exc)) from None
    with reporter:
        reporter.status_text("hbnn bridge-test", "info")
        t0 = time.monotonic()
        for i in range(args.count):
            # Synthetic but plausible: a cycling class with a fixed top-3 spread.
            cls = i % 10
            result = InferenceResult(sequence=i, timestamp_us=int((time.monotonic() - t0) * 1e6), class_id=cls,
                                     confidence=0.7, topk=[(cls, 0.7), ((cls + 1) % 10, 0.2), ((cls + 2) % 10, 0.1)],
                                     latency_ms=1.0, label=f"test{cls}")
            reporter.report(result)
            time.sleep(max(0.0, t0 + (i + 1) / args.rate_hz - time.monotonic()))
        reporter.flush()
    stats = reporter.stats()
    print(f"hbnn bridge-test: sent {stats['results_sent']}/{args.count} results, {stats['messages']} messages, "
          f"{stats['bytes']} bytes, {stats['drops']} dropped, {stats['reconnects']} reconnects, "
          f"peer {'alive' if stats['peer_alive'] else 'not seen'}")
    return 0 if stats["results_sent"] == args.count else 1

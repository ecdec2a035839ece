"""Record the traffic corpus of the serial fuzz targets (run by hand; the output is committed).

    .venv/bin/python tests/fuzz/record_corpus.py        # rewrites tests/fuzz/corpus/*.bin + manifest.json

Reporter -> flight controller (what ``hbnn listen`` and an MCU parse): a real ``Reporter``
writes through its I/O thread into a pty (``VirtualSerialPair``) and the far end is read back,
byte for byte as it went over the "cable":

* ``frames.bin``: framed protocol; the resync delimiter sent at connect, 48 results (top-k 0-4,
  extreme field values: class 65535, sequence 2**32-1, timestamp 2**64-1, latency saturated,
  confidence -0.0, 3.4e38, denormal) and 8 STATUS frames (ASCII, UTF-8 cut at 50 bytes,
  one-character, severities 0-7);
* ``mavlink-reporter.bin`` and ``mavlink-reporter-signed.bin``: MAVLink 2 with heartbeats,
  NAMED_VALUE_INT/FLOAT and DEBUG_VECT per result, STATUSTEXT short and chunked; the second
  signed with ``SIGNING_KEY`` (MAVLink 2 signing, link id 3).

Flight controller -> reporter (what the reporter's inbound parser sees): ``mavlink-autopilot.bin``
and ``mavlink-autopilot-signed.bin``, written with pymavlink's encoder as PX4 would send them:
our ``AutopilotHeartbeat`` plus common telemetry (SYS_STATUS, ATTITUDE, GPS_RAW_INT with
extension fields, GLOBAL_POSITION_INT, PARAM_VALUE, COMMAND_LONG, STATUSTEXT, TIMESYNC,
BATTERY_STATUS with arrays, AUTOPILOT_VERSION, SYSTEM_TIME) and, unsigned only, MAVLink 1 frames.

``manifest.json`` records each file's size, SHA-256 and the messages today's parsers decode
from it; ``test_fuzz_corpus.py`` checks the files still decode to exactly that.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from collections import Counter

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
#: The corpus's MAVLink signing key: fixed and public, it protects nothing.
SIGNING_KEY = hashlib.sha256(b"hbnn fuzz corpus").digest()
SIGNING_LINK_ID = 3


def key_bytes() -> bytes:
    return SIGNING_KEY


def _results():
    from firmware_bridge import InferenceResult

    out = []
    for i in range(48):
        k = i % 5
        topk = [((i + j) % 10, round(0.9 / (j + 1), 3)) for j in range(k)]
        out.append(InferenceResult(sequence=i, timestamp_us=1_000_000 + 33_333 * i, class_id=i % 10,
                                   confidence=0.5 + i / 100, topk=topk, latency_ms=2.5 + i / 10))
    out += [
        InferenceResult(0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF, 0xFFFF, 3.4e38, [(0xFFFF, 3.4e38)] * 4, latency_ms=1e9),
        InferenceResult(0, 0, 0, -0.0, [(0, -0.0)], latency_ms=0.0),
        InferenceResult(7, 123456789, 3, 1e-45, [(3, 1e-45), (4, -1.0)], latency_ms=0.001),
    ]
    return out


STATUS_TEXTS = [("model loaded: lenet-fmnist-bw16-ba2", "info"), ("camera lost", "warning"),
                ("camera back", "notice"), ("caméra perdue, caméra perdue, caméra perdue, éééé", "error"),
                ("x" * 80, "debug"), ("!", "critical"), ("link ok", 0), ("reload rejected: checksum", 1)]


def _read_all(port, quiet_s: float = 0.3) -> bytes:
    out = bytearray()
    last = time.monotonic()
    while time.monotonic() - last < quiet_s:
        data = port.read(65536)
        if data:
            out += data
            last = time.monotonic()
        else:
            time.sleep(0.01)
    return bytes(out)


def record_reporter(protocol: str, **options) -> bytes:
    """Drive a real Reporter into a pty and return what arrived at the far end."""
    from firmware_bridge import open_reporter
    from firmware_bridge.ptylink import VirtualSerialPair

    results = _results()
    with VirtualSerialPair() as pair:
        rep = open_reporter(pair.url, protocol, queue_size=1024, status_rate_hz=1000, status_queue=64, **options)
        with rep:
            for i, r in enumerate(results):
                rep.report(r)
                if i % 12 == 11:
                    text, severity = STATUS_TEXTS[i // 12 % len(STATUS_TEXTS)]
                    rep.status_text(text, severity)
                    rep.flush()
            for text, severity in STATUS_TEXTS[4:]:
                rep.status_text(text, severity)
            rep.flush()
        stats = rep.stats()
        data = _read_all(pair.fc_port)
    assert stats["results_sent"] == len(results) and len(data) >= stats["bytes"], (len(data), stats)
    return data


def record_autopilot(signed: bool) -> bytes:
    """What a PX4-like autopilot sends: heartbeats and common telemetry, encoded by pymavlink."""
    from pymavlink.dialects.v20 import common as m

    from firmware_bridge.mavlink import AutopilotHeartbeat

    key = key_bytes() if signed else None
    hb = AutopilotHeartbeat(system_id=1, component_id=1, signing_key=key)
    mav = hb.mav  # same stream (sys 1, comp 1): sequence numbers and signing timestamps continue
    sink = hb._sink
    out = bytearray()
    for i in range(6):
        out += hb()
        mav.sys_status_send(0x3F, 0x3F, 0x3F, 250 + i, 12400, 850, 77, 0, 0, 0, 0, 0, 0)
        mav.attitude_send(1000 * i, 0.01 * i, -0.02, 3.1, 0.0, 0.001, -0.5)
        mav.gps_raw_int_send(1_700_000_000_000_000 + i, 3, 473977420, 85455940, 488000, 65535, 65535, 0, 0, 12,
                             500000 + i, 1000, 1000, 1000, 0, 0)
        mav.global_position_int_send(1000 * i, 473977420, 85455940, 488000, 20000, 1, -1, 0, 18000)
        mav.param_value_send(b"SYSID_THISMAV", 1.0, m.MAV_PARAM_TYPE_INT32, 900, i)
        mav.command_long_send(1, 191, m.MAV_CMD_REQUEST_MESSAGE, 0, 33.0, 0, 0, 0, 0, 0, 0)
        mav.statustext_send(m.MAV_SEVERITY_INFO, b"PX4: armed" if i % 2 else b"PX4: preflight ok " * 2)
        mav.timesync_send(0, 1_000_000 * i)
        mav.battery_status_send(0, 1, 0, 2500, [4000, 4010, 3990] + [65535] * 7, -120, 1000, 500, 80)
        mav.system_time_send(1_700_000_000_000_000 + i, 1000 * i)
        if i == 2:
            mav.autopilot_version_send(0xFFFF, 0x01020300, 0, 0, 0, b"abcdefgh", b"\x00" * 8, b"12345678",
                                       0x26AC, 0x0011, 0x1234567890, bytes(18))
        if not signed and i % 3 == 0:  # a MAVLink 1 frame (a v1-only radio or an old GCS)
            mav.send(m.MAVLink_heartbeat_message(m.MAV_TYPE_QUADROTOR, m.MAV_AUTOPILOT_PX4, 0, 0,
                                                 m.MAV_STATE_ACTIVE, 3), force_mavlink1=True)
        out += sink.take()
    return bytes(out)


def decode_counts(name: str, data: bytes) -> dict:
    """What today's parsers decode from a corpus file (message types and counters)."""
    if name.startswith("frames"):
        from firmware_bridge import FrameDecoder

        dec = FrameDecoder()
        msgs = dec.feed(data)
        return {"messages": dec.messages, "errors": sum(dec.errors.values()),
                "types": dict(sorted(Counter(type(msg).__name__ for msg in msgs).items()))}
    from firmware_bridge.mavlink import MavlinkParser

    parser = MavlinkParser(key_bytes() if name.endswith("-signed.bin") else None)
    msgs = parser.feed(data)
    return {"messages": parser.messages, "errors": parser.errors,
            "types": dict(sorted(Counter(msg.get_type() for msg in msgs).items()))}


FILES = {
    "frames.bin": lambda: record_reporter("frames"),
    "mavlink-reporter.bin": lambda: record_reporter("mavlink", heartbeat=True, debug_vect=True),
    "mavlink-reporter-signed.bin": lambda: record_reporter("mavlink", heartbeat=True, debug_vect=True,
                                                           signing_key_file=_key_file(),
                                                           signing_link_id=SIGNING_LINK_ID),
    "mavlink-autopilot.bin": lambda: record_autopilot(signed=False),
    "mavlink-autopilot-signed.bin": lambda: record_autopilot(signed=True),
}


def _key_file() -> str:
    import tempfile

    fd, path = tempfile.mkstemp(suffix=".key")  # 0600, as load_signing_key wants
    os.write(fd, SIGNING_KEY.hex().encode() + b"\n")
    os.close(fd)
    return path


def main() -> int:
    os.makedirs(CORPUS, exist_ok=True)
    manifest = {}
    for name, make in FILES.items():
        data = make()
        with open(os.path.join(CORPUS, name), "wb") as fh:
            fh.write(data)
        manifest[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest(), **decode_counts(name, data)}
        print(f"{name}: {len(data)} bytes, {manifest[name]['messages']} messages, {manifest[name]['types']}")
    with open(os.path.join(CORPUS, "manifest.json"), "w") as fh:
        json.dump(manifest, fh, indent=1, sort_keys=True)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, os.path.abspath(os.path.join(HERE, "..", "..")))
    sys.exit(main())

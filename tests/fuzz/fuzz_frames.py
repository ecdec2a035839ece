"""Fuzz target: the framed-protocol decoder (firmware_bridge.frames), as the listener uses it.

Entry points and contracts (docs/PROTOCOL.md, "Decoding and error codes"):

* ``FrameDecoder.events(data)`` / ``.feed(data)`` (what ``FramesProtocol.new_parser()`` wraps for
  the Listener and the reporter's link loop): never raises on any bytes; returns decoded
  ``InferenceResult`` / ``StatusMessage`` values and ``FrameError`` events whose ``code`` is one of
  ``frames.ERROR_CODES``; counts them in ``messages`` / ``errors``;
* ``decode_frame(encoded)``: one frame without its delimiter -> a message, or ``FrameError``.

Corpus: ``corpus/frames.bin``, recorded from a real frames Reporter through a pty (59 frames).

Strategies: a window of 1-8 recorded frames, then per frame (a) a field edit of the decoded body
(version, type, payload length, topk_count, severity, confidences NaN/inf, class ids, text bytes)
re-framed with the right CRC (so it reaches the field checks) or a wrong one, COBS re-encoded or
raw; (b) COBS edits (code bytes, a removed or added delimiter, frames merged past 64 bytes);
then, on the joined stream, byte havoc, garbage, truncation, splices of other frames.

Oracle, per case: ``FrameParser.feed`` (the live path, measured) and ``events`` do not raise
and agree (messages and counters); every event has a documented type and code;
``messages + errors == len(events)``; feeding the same bytes in random pieces (read boundaries
of a serial port) gives the same events; every delimited segment gives what ``decode_frame``
gives for it alone (and ERR_OVERFLOW past 64 bytes); each decoded result round-trips through
``encode_result``; ``describe()`` and the JSON form of ``hbnn listen --json`` work on every
message; after the case, a delimiter and a good frame decode (resynchronization).
Memory bound, on the live ``feed`` path: 32 x input + 64 KiB (a stream of full results decodes
to 11x its size: a dataclass, its top-k list and tuples, ~600 bytes per 53-byte frame; garbage
costs nothing since feed drops each error as it comes). ``events()`` returns every FrameError by
design (tests and tools): ~210x for a stream of 2-byte bad frames, so it is not bounded here.
Time: 1 s per case (typical: 0.2 ms).
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import struct
from collections import Counter
from typing import Any, List, Tuple

from fuzz_core import (Case, Limits, OracleFailure, chunk_cuts, cut_short, describe_exception, havoc, splice_junk,
                       split_at)

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS_FILE = os.path.join(HERE, "corpus", "frames.bin")

LIMITS = Limits(time_s=1.0, hard_s=10.0, mem_factor=32, mem_const=64 << 10)


def event_key(event: Any) -> Tuple:
    """A comparable form of a decoder event (float fields by bit pattern: -0.0 != 0.0, NaN == NaN)."""
    from firmware_bridge import FrameError, InferenceResult, StatusMessage

    def bits(x: float) -> int:
        return struct.unpack("<I", struct.pack("<f", x))[0]

    if isinstance(event, FrameError):
        return ("E", event.code)
    if isinstance(event, StatusMessage):
        return ("S", event.severity, event.text)
    if isinstance(event, InferenceResult):
        return ("R", event.sequence, event.timestamp_us, event.class_id, bits(event.confidence), event.latency_ms,
                tuple((c, bits(p)) for c, p in event.topk))
    raise OracleFailure(f"decoder returned an undocumented event type {type(event).__name__}: {event!r}")


def c_line_key(line: str) -> Tuple:
    """``event_key`` of a line printed by tests/firmware_bridge/c_harness.c (the C decoder differential).

    STATUS text comes as raw hex from C; Python decodes it with errors="replace", so compare that.
    """
    from firmware_bridge.frames import ERROR_CODES

    kind, *fields = line.split()
    if kind == "E":
        names = {v: k for k, v in ERROR_CODES.items()}
        return ("E", names.get(int(fields[0]), fields[0]))
    if kind == "S":
        text = bytes.fromhex(fields[1] if len(fields) > 1 else "").decode("utf-8", errors="replace")
        return ("S", int(fields[0]), text)
    seq, ts, cls, conf, lat, count = fields[:6]
    top = fields[6:]
    return ("R", int(seq), int(ts), int(cls), int(conf, 16), int(lat) / 1000.0,
            tuple((int(top[i]), int(top[i + 1], 16)) for i in range(0, 2 * int(count), 2)))


def split_frames(stream: bytes) -> List[bytes]:
    """Recorded stream -> frames, each with its 0x00 delimiter (empty frames dropped)."""
    return [part + b"\x00" for part in stream.split(b"\x00") if part]


class FramesTarget:
    """FrameDecoder (stream) and decode_frame (per frame) on mutated recorded traffic."""

    name = "frames"
    limits = LIMITS
    ratio_min_bytes = 256

    def __init__(self) -> None:
        from firmware_bridge import encode_result, encode_status
        from firmware_bridge.framing import cobs_decode

        with open(CORPUS_FILE, "rb") as fh:
            self.stream = fh.read()
        self.frames = split_frames(self.stream)
        self.bodies = [cobs_decode(f[:-1])[:-2] for f in self.frames]  # version | type | payload
        from firmware_bridge import InferenceResult

        self.probe_msgs = [InferenceResult(4242, 99, 7, 0.75, [(7, 0.75), (1, 0.25)], latency_ms=1.5)]
        self.probe = encode_result(self.probe_msgs[0]) + encode_status("probe", "info")

    # ---- generation -----------------------------------------------------------------------
    def generate(self, rng) -> Case:
        n = len(self.frames)
        count = rng.choice([1, 1, 2, 3, 4, 8])
        if rng.random() < 0.7:
            start = rng.randrange(n)
            picked = [self.frames[(start + i) % n] for i in range(count)]
            idx = [(start + i) % n for i in range(count)]
        else:
            idx = [rng.randrange(n) for _ in range(count)]
            picked = [self.frames[i] for i in idx]
        out = []
        frame_ops = set()
        for i, frame in zip(idx, picked):
            r = rng.random()
            if r < 0.35:
                out.append(self._field_edit(rng, self.bodies[i]))
                frame_ops.add("field")
            elif r < 0.5:
                out.append(self._cobs_edit(rng, frame))
                frame_ops.add("cobs")
            else:
                out.append(frame)
        data = b"".join(out)
        r = rng.random()
        stream_op = "none"
        if r < 0.45 or not frame_ops:
            data = havoc(rng, data, donors=self.frames, max_insert=32)
            stream_op = "havoc"
        elif r < 0.55:
            data = cut_short(rng, data)
            stream_op = "truncate"
        elif r < 0.65:
            data = splice_junk(rng, data, [1, 5, 40, 70, 200])
            stream_op = "garbage"
        if rng.random() < 0.1:
            data = data[rng.randrange(len(data) + 1):]  # joined mid-stream
        strategy = ("field" if "field" in frame_ops else "cobs" if frame_ops else "frames") + "+" + stream_op
        return Case(data, {"cuts": chunk_cuts(rng, len(data))}, strategy)

    def _field_edit(self, rng, body: bytes) -> bytes:
        from firmware_bridge.framing import cobs_encode, crc16_ccitt_false

        b = bytearray(body)
        op = rng.randrange(9)
        if op == 0:
            b[0] = rng.choice([0, 2, 0x7F, 0xFF])                        # version
        elif op == 1:
            b[1] = rng.choice([0, 1, 2, 3, 0x7F, 0xFF])                  # type (1 <-> 2 swaps the layout)
        elif op == 2:                                                    # payload length
            if rng.random() < 0.5:
                del b[rng.randrange(2, len(b) + 1):]
            else:
                b += bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 20)))
        elif op == 3 and b[1] == 1 and len(b) >= 25:
            b[2 + 22] = rng.choice([4, 5, 0x80, 0xFF])                   # topk_count
        elif op == 4 and b[1] == 2 and len(b) >= 3:
            b[2] = rng.choice([7, 8, 0x80, 0xFF])                        # severity
        elif op == 5 and b[1] == 1 and len(b) >= 49:                     # a confidence: NaN, inf, ...
            off = 2 + rng.choice([14, 25, 31, 37, 43])
            b[off:off + 4] = struct.pack("<I", rng.choice([0x7FC00000, 0x7F800000, 0xFF800000, 0x7F800001,
                                                           0x80000000, 0x00000001, 0x7F7FFFFF]))
        elif op == 6 and b[1] == 2:                                      # text: invalid UTF-8, no NUL
            i = rng.randrange(3, max(4, len(b)))
            b[i:i + 4] = bytes(rng.choice([[0xFF, 0xFE, 0xC3, 0x28], [0xED, 0xA0, 0x80, 0x41], [0x41] * 4,
                                           [0xE2, 0x82, 0, 0]]))
        else:                                                            # any payload byte
            i = rng.randrange(len(b))
            b[i] = rng.getrandbits(8)
        crc = crc16_ccitt_false(bytes(b))
        if rng.random() < 0.2:
            crc ^= 1 << rng.randrange(16)                                 # wrong CRC
        raw = bytes(b) + struct.pack("<H", crc)
        if rng.random() < 0.1:
            return raw + b"\x00"                                         # not COBS-encoded at all
        return cobs_encode(raw) + b"\x00"

    def _cobs_edit(self, rng, frame: bytes) -> bytes:
        f = bytearray(frame)
        op = rng.randrange(5)
        if op == 0:
            f[0] = rng.choice([1, 2, 0xFE, 0xFF, len(f), len(f) - 1, len(f) + 1]) & 0xFF   # first code byte
        elif op == 1:
            del f[-1]                                                    # delimiter lost: frames merge
        elif op == 2:
            f.insert(rng.randrange(len(f)), 0)                           # spurious delimiter
        elif op == 3:
            f = f[:-1] * rng.choice([2, 3]) + b"\x00"                    # past 64 bytes: ERR_OVERFLOW
        else:
            codes = [i for i in range(len(f) - 1)]
            i = rng.choice(codes)
            f[i] = rng.randrange(1, 256)
        return bytes(f)

    # ---- running --------------------------------------------------------------------------
    def run(self, case: Case, meter) -> Tuple[str, Counter]:
        from firmware_bridge import FrameDecoder, FrameError, InferenceResult, StatusMessage, describe
        from firmware_bridge.frames import ERROR_CODES, MAX_ENCODED_LEN, decode_frame, encode_result

        from firmware_bridge.protocols import FramesProtocol

        def live(data: bytes):  # what the Listener and the reporter's link loop run on each read
            parser = FramesProtocol().new_parser()
            return parser, parser.feed(data)

        res, exc = meter.call(live, case.data)
        if exc is not None:
            raise OracleFailure(f"FrameParser.feed raised {describe_exception(exc)}")
        parser, msgs = res
        dec = FrameDecoder()
        try:
            events = dec.events(case.data)
        except Exception as err:  # noqa: BLE001
            raise OracleFailure(f"FrameDecoder.events raised {describe_exception(err)}") from None
        keys = [event_key(e) for e in events]
        if [event_key(m) for m in msgs] != [k for k in keys if k[0] != "E"] \
                or parser.messages != len(msgs) or parser.errors != len(events) - len(msgs):
            raise OracleFailure("feed() and events() disagree (messages or counters)")
        details: Counter = Counter()
        for e in events:
            if isinstance(e, FrameError):
                if e.code not in ERROR_CODES:
                    raise OracleFailure(f"undocumented error code {e.code!r}")
                details[e.code] += 1
            elif isinstance(e, InferenceResult):
                details["RESULT"] += 1
            elif isinstance(e, StatusMessage):
                details["STATUS"] += 1
        if dec.messages + sum(dec.errors.values()) != len(events):
            raise OracleFailure(f"counters {dec.messages} + {dict(dec.errors)} disagree with {len(events)} events")

        # Same bytes, other read boundaries: same events.
        dec2 = FrameDecoder()
        chunked = []
        for piece in split_at(case.data, case.params.get("cuts", [])):
            chunked += dec2.events(piece)
        if [event_key(e) for e in chunked] != keys:
            raise OracleFailure("events depend on how the bytes were split into reads")

        # Each delimited segment alone through decode_frame: the same outcome.
        expected = []
        for segment in case.data.split(b"\x00")[:-1]:
            if not segment:
                continue
            if len(segment) > MAX_ENCODED_LEN:
                expected.append(("E", "ERR_OVERFLOW"))
                continue
            try:
                expected.append(event_key(decode_frame(segment)))
            except FrameError as err:
                if err.code not in ERROR_CODES:
                    raise OracleFailure(f"decode_frame: undocumented code {err.code!r}") from None
                expected.append(("E", err.code))
            except Exception as err:  # noqa: BLE001
                raise OracleFailure(f"decode_frame raised {describe_exception(err)}") from None
        if expected != keys:
            raise OracleFailure(f"stream decoder and decode_frame disagree: {keys[:6]} vs {expected[:6]}")

        for e in events:
            if isinstance(e, FrameError):
                continue
            try:
                describe(e)
                json.dumps({"type": type(e).__name__, **dataclasses.asdict(e)})  # hbnn listen --json
            except Exception as err:  # noqa: BLE001
                raise OracleFailure(f"describe/JSON of a decoded message raised {describe_exception(err)}") from None
            if isinstance(e, InferenceResult):
                if not (math.isfinite(e.confidence) and all(math.isfinite(p) for _, p in e.topk)) or len(e.topk) > 4:
                    raise OracleFailure(f"decoded result breaks the field rules: {e!r}")
                again = decode_frame(encode_result(e)[:-1])
                if event_key(again) != event_key(e):
                    raise OracleFailure(f"decoded result does not round-trip: {e!r} -> {again!r}")
            elif not 0 <= e.severity <= 7:
                raise OracleFailure(f"decoded status severity {e.severity} out of 0-7")

        # Whatever came before, a delimiter and a good frame decode.
        tail = [event_key(m) for m in dec.feed(b"\x00" + self.probe)]
        if tail[-2:] != [event_key(m) for m in self.probe_msgs] + [("S", 6, "probe")]:
            raise OracleFailure(f"no resynchronization after the case: {tail}")

        n_msgs = details["RESULT"] + details["STATUS"]
        n_err = len(events) - n_msgs
        outcome = "empty" if not events else "decoded" if not n_err else "rejected" if not n_msgs else "mixed"
        return outcome, details

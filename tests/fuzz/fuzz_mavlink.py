"""Fuzz target: the inbound MAVLink 2 parser, ``firmware_bridge.mavlink.MavlinkParser``.

Entry point and contract (docs/PROTOCOL.md, "Inbound"): ``MavlinkProtocol.new_parser()`` gives
the reporter's link loop and the Listener a ``MavlinkParser(signing_key)``; ``feed(data)`` never
raises on any bytes and returns only CRC-checked messages of the ``common`` dialect (with a key:
only correctly signed ones); garbage is counted in ``errors``, rejected signatures in
``bad_signatures``, unverifiable ids in ``unknown``.

Corpus (corpus/*.bin, see record_corpus.py): reporter -> FC traffic recorded from a real
Reporter through a pty, unsigned and signed; FC -> reporter traffic (heartbeats and common
telemetry, MAVLink 1 frames too) written with pymavlink's encoder, unsigned and signed.

Strategies: a window of 1-6 recorded frames (sometimes from two recordings), then per frame:
header fields (length, incompat/compat flags, seq, ids, message id: another known id, an
unknown one) with the CRC recomputed or not; payload edits with the CRC recomputed (and, for a
keyed parser, sometimes re-signed, so the edit reaches payload decoding); payload length
changes (MAVLink 2 truncates trailing zeros, so short payloads are legal); signature block
edits (link id, timestamp, signature bytes, block removed or added); conversion to MAVLink 1;
magic byte damage. Then on the joined stream: byte havoc, truncation, garbage, replayed frames.
The parser gets the signing key most of the time for signed recordings, rarely for unsigned.

Oracle, per case: ``feed`` does not raise and does not hit its internal "parser exception"
reset; every message is a known ``common`` type, not BAD_DATA/UNKNOWN, and re-decodes alone
from its bytes with a fresh strict pymavlink parser (same type and payload: a valid CRC, and
with a key a valid signature); with a key every message is signed; ``messages`` counts them;
feeding the same bytes in random pieces gives the same messages; ``describe()``,
``to_dict()`` as JSON (``hbnn listen --json``) and ``is_autopilot_heartbeat`` work on each;
after the case, 300 padding bytes and a probe (signed with newer timestamps when keyed)
decode completely (recovery, and no lock-out of the legitimate streams).
Memory bound: 96 x input + 256 KiB (a stream of 21-byte HEARTBEATs decodes to 27x its size:
pymavlink message objects of ~570 bytes; the margin covers smaller frames and the parser's buffer).
Time: 1 s per case (typical: 1-3 ms).
"""
from __future__ import annotations

import json
import os
import struct
from collections import Counter
from typing import Any, List, Optional, Tuple

from fuzz_core import (Case, Limits, OracleFailure, chunk_cuts, cut_short, describe_exception, havoc, splice_junk,
                       split_at)

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
RECORDINGS = ["mavlink-reporter.bin", "mavlink-reporter-signed.bin", "mavlink-autopilot.bin",
              "mavlink-autopilot-signed.bin"]
PADDING = b"\x00" * 300  # longer than the longest MAVLink 2 frame (280 bytes)

LIMITS = Limits(time_s=1.0, hard_s=10.0, mem_factor=96, mem_const=256 << 10)


def signing_key() -> bytes:
    from record_corpus import SIGNING_KEY

    return SIGNING_KEY


def _m():
    from pymavlink.dialects.v20 import common

    return common


def split_frames(data: bytes) -> List[bytes]:
    """A recorded stream -> its frames' bytes (a strict parser that checks no signature)."""
    m = _m()
    mav = m.MAVLink(None)
    frames = [bytes(msg.get_msgbuf()) for msg in mav.parse_buffer(data) or []]
    if b"".join(frames) != data:
        raise ValueError("corpus file is not a clean sequence of MAVLink frames")
    return frames


def _header_len(frame: bytes) -> int:
    return 10 if frame[:1] == b"\xfd" else 6


def _msgid(frame: bytes) -> int:
    if frame[:1] == b"\xfd":
        return frame[7] | frame[8] << 8 | frame[9] << 16
    return frame[5]


def _is_signed(frame: bytes) -> bool:
    return frame[:1] == b"\xfd" and len(frame) > 2 and bool(frame[2] & 0x01)


def fix_crc(frame: bytearray) -> None:
    """Recompute the X.25 CRC (with the message's CRC_EXTRA) in place, if the id is known."""
    m = _m()
    hl = _header_len(frame)
    if len(frame) < hl:
        return
    n = frame[1]
    cls = m.mavlink_map.get(_msgid(frame))
    if cls is None or len(frame) < hl + n + 2:
        return
    crc = m.x25crc(bytes(frame[1:hl + n]) + bytes([cls.crc_extra])).crc
    frame[hl + n:hl + n + 2] = struct.pack("<H", crc)


def resign(frame: bytearray, key: bytes) -> None:
    """Recompute the signature of a signed frame in place (a peer that holds the key)."""
    import hashlib

    if _is_signed(frame) and len(frame) >= 10 + frame[1] + 2 + 13:
        end = 10 + frame[1] + 2 + 13
        frame[end - 6:end] = hashlib.sha256(key + bytes(frame[:end - 6])).digest()[:6]


class MavlinkTarget:
    """MavlinkParser.feed on mutated recorded MAVLink traffic, with and without the signing key."""

    name = "mavlink"
    limits = LIMITS
    ratio_min_bytes = 256

    def __init__(self) -> None:
        self.key = signing_key()
        self.recordings = {}
        for name in RECORDINGS:
            with open(os.path.join(CORPUS, name), "rb") as fh:
                self.recordings[name] = split_frames(fh.read())
        self.all_frames = [f for frames in self.recordings.values() for f in frames]
        self.known_ids = sorted(_m().mavlink_map)
        self.probe, self.probe_types = self._probe()

    def _probe(self) -> Tuple[bytes, List[Tuple[str, int, int]]]:
        """Good traffic from every recorded stream, signed with timestamps newer than the corpus."""
        from firmware_bridge.mavlink import AutopilotHeartbeat, MavlinkEncoder
        from firmware_bridge.results import InferenceResult

        from record_corpus import SIGNING_LINK_ID

        newest = 0
        for frames in self.recordings.values():
            for f in frames:
                if _is_signed(f):
                    ts = f[-12:-6]
                    newest = max(newest, int.from_bytes(ts, "little"))
        start = newest + 100_000_000  # 1000 s after the corpus
        enc = MavlinkEncoder(signing_key=self.key, signing_link_id=SIGNING_LINK_ID, debug_vect=True,
                             clock=lambda: 0.0)
        enc.mav.signing.timestamp = start
        fc = AutopilotHeartbeat(signing_key=self.key)
        fc.mav.signing.timestamp = start
        data = enc.heartbeat() + enc.result(InferenceResult(1, 2, 3, 0.5, [(3, 0.5)]))[0] + fc()
        types = [("HEARTBEAT", 1, 191), ("NAMED_VALUE_INT", 1, 191), ("NAMED_VALUE_FLOAT", 1, 191),
                 ("DEBUG_VECT", 1, 191), ("DEBUG_VECT", 1, 191), ("HEARTBEAT", 1, 1)]
        return data, types

    # ---- generation -----------------------------------------------------------------------
    def generate(self, rng) -> Case:
        name = rng.choice(RECORDINGS)
        frames = self.recordings[name]
        signed = name.endswith("-signed.bin")
        keyed = rng.random() < (0.8 if signed else 0.15)
        count = rng.choice([1, 1, 2, 3, 4, 6])
        start = rng.randrange(len(frames))
        window = [bytearray(frames[(start + i) % len(frames)]) for i in range(count)]
        if rng.random() < 0.1:  # frames from another recording in between
            window.insert(rng.randrange(len(window) + 1), bytearray(rng.choice(self.all_frames)))
        ops = []
        for frame in window:
            if rng.random() < 0.5:
                ops.append(self._frame_edit(rng, frame, keyed))
        data = b"".join(bytes(f) for f in window)
        r = rng.random()
        stream_op = "none"
        if r < 0.35 or not ops:
            data = havoc(rng, data, donors=self.all_frames, max_insert=48)
            stream_op = "havoc"
        elif r < 0.45:
            data = cut_short(rng, data)
            stream_op = "truncate"
        elif r < 0.55:
            data = splice_junk(rng, data, [1, 3, 20, 100, 300])
            stream_op = "garbage"
        elif r < 0.62:
            f = bytes(rng.choice(window))
            data = data + f if rng.random() < 0.5 else f + data  # a replayed frame
            stream_op = "replay"
        strategy = (ops[0] if len(set(ops)) == 1 else "mixed" if ops else "frames") + "+" + stream_op
        return Case(data, {"keyed": keyed, "cuts": chunk_cuts(rng, len(data))}, strategy)

    def _frame_edit(self, rng, f: bytearray, keyed: bool) -> str:
        v2 = f[:1] == b"\xfd"
        hl = _header_len(f)
        op = rng.choice(["header", "header", "payload", "payload", "payload", "length", "signature", "v1",
                         "magic"])
        if op == "header":
            field = rng.randrange(1, hl)
            if v2 and field in (7, 8, 9) and rng.random() < 0.7:  # a message id: known or not
                mid = rng.choice(self.known_ids + [0xFFFFFF, 0x7FFFFF, 256, 42424])
                f[7:10] = mid.to_bytes(3, "little")
            elif field == 1:
                f[1] = rng.choice([0, 1, f[1] - 1, f[1] + 1, 0xFF, rng.getrandbits(8)]) & 0xFF
            elif v2 and field == 2:
                f[2] = rng.choice([f[2] ^ 0x01, 0x02, 0x80, 0xFF, 0])
            else:
                f[field] = rng.getrandbits(8)
            if rng.random() < 0.6:
                fix_crc(f)
        elif op == "payload":
            n = f[1]
            if n:
                payload = havoc(rng, bytes(f[hl:hl + n]), ops=rng.randint(1, 3), max_insert=4)[:n]
                payload = payload.ljust(n, b"\x00")
                f[hl:hl + n] = payload
            if rng.random() < 0.8:
                fix_crc(f)
            if keyed and rng.random() < 0.5:
                resign(f, self.key)
        elif op == "length":
            n = f[1]
            payload = bytes(f[hl:hl + n])
            payload = payload[:rng.randrange(n + 1)] if rng.random() < 0.6 or n == 255 else \
                payload + bytes(rng.getrandbits(8) for _ in range(rng.randint(1, min(40, 255 - n))))
            tail = bytes(f[hl + n:])
            f[hl:] = payload + tail
            f[1] = len(payload)
            fix_crc(f)
            if keyed and rng.random() < 0.5:
                resign(f, self.key)
        elif op == "signature":
            if _is_signed(f):
                end = len(f)
                r = rng.random()
                if r < 0.4:    # the timestamp: often forward (a replay-window lock-out attempt)
                    i = end - 12 + rng.randrange(6)
                    f[i] = rng.choice([0xFF, f[i] + 1 & 0xFF, rng.getrandbits(8)])
                elif r < 0.55:
                    f[end - 13] = rng.getrandbits(8)  # link id
                elif r < 0.8:
                    f[end - 6 + rng.randrange(6)] ^= 1 << rng.randrange(8)
                else:
                    del f[end - 13:]  # block gone, flag still set
            elif v2:
                f[2] |= 0x01  # claims a signature
                block = bytes([rng.getrandbits(8)]) + rng.getrandbits(48).to_bytes(6, "little") + bytes(6)
                f += block
                if rng.random() < 0.5:
                    resign(f, self.key)
        elif op == "v1":
            if v2 and _msgid(f) < 256:
                n = f[1]
                cls = _m().mavlink_map.get(_msgid(f))
                full = cls.unpacker.size if cls is not None else n
                payload = bytes(f[10:10 + n]).ljust(min(full, 255), b"\x00")
                v1 = bytearray(b"\xfe" + bytes([len(payload), f[4], f[5], f[6], _msgid(f)]) + payload + b"\0\0")
                fix_crc(v1)
                f[:] = v1
        else:
            f[0] = rng.choice([0xFE, 0xFD, 0x55, rng.getrandbits(8)])
        return op

    # ---- running --------------------------------------------------------------------------
    def run(self, case: Case, meter) -> Tuple[str, Counter]:
        from firmware_bridge.mavlink import MavlinkParser

        key = self.key if case.params.get("keyed") else None

        def parse(data: bytes):
            parser = MavlinkParser(key)
            mav = parser.mav
            return parser, mav, parser.feed(data)

        res, exc = meter.call(parse, case.data)
        if exc is not None:
            raise OracleFailure(f"MavlinkParser.feed raised {describe_exception(exc)}")
        parser, mav, msgs = res
        if parser.mav is not mav:
            raise OracleFailure(f"pymavlink raised inside feed (the parser reset itself): "
                                f"{self._internal_error(case.data, key)}")
        details = Counter()
        for msg in msgs:
            self._check_message(msg, key)
            details[msg.get_type()] += 1
        if parser.messages != len(msgs) or parser.bad_signatures > parser.errors:
            raise OracleFailure(f"counters: messages {parser.messages} for {len(msgs)} delivered, "
                                f"bad_signatures {parser.bad_signatures} > errors {parser.errors}")
        errors, unknown = parser.errors, parser.unknown
        details["bad_data"] += errors
        details["bad_signature"] += parser.bad_signatures
        details["unknown_id"] += unknown

        # Same bytes, other read boundaries: same messages.
        chunked = MavlinkParser(key)
        again = []
        for piece in split_at(case.data, case.params.get("cuts", [])):
            again += chunked.feed(piece)
        if [bytes(m.get_msgbuf()) for m in again] != [bytes(m.get_msgbuf()) for m in msgs]:
            raise OracleFailure("messages depend on how the bytes were split into reads")

        # Recovery: after padding, good traffic from the recorded streams decodes in full.
        tail = parser.feed(PADDING + self.probe)
        got = [(m.get_type(), m.get_srcSystem(), m.get_srcComponent()) for m in tail]
        if got[-len(self.probe_types):] != self.probe_types:
            raise OracleFailure(f"no recovery after the case: the probe decoded as {got} "
                                f"(bad_signatures {parser.bad_signatures})")

        skipped = errors + unknown
        outcome = "empty" if not msgs and not skipped else "decoded" if not skipped else \
            "rejected" if not msgs else "mixed"
        return outcome, details

    def _check_message(self, msg: Any, key: Optional[bytes]) -> None:
        from firmware_bridge import describe
        from firmware_bridge.mavlink import is_autopilot_heartbeat

        m = _m()
        if isinstance(msg, (m.MAVLink_bad_data, m.MAVLink_unknown)) or msg.get_msgId() not in m.mavlink_map:
            raise OracleFailure(f"parser delivered {msg.get_type()}: {msg}")
        if key is not None and not msg.get_signed():
            raise OracleFailure(f"keyed parser delivered an unsigned {msg.get_type()}")
        strict = m.MAVLink(None)
        if key is not None:
            strict.signing.secret_key = key
        try:
            again = strict.decode(bytearray(msg.get_msgbuf()))
        except Exception as exc:  # noqa: BLE001
            raise OracleFailure(f"delivered {msg.get_type()} does not re-decode strictly: {exc}") from None
        if again.get_type() != msg.get_type() or bytes(again.get_payload()) != bytes(msg.get_payload()):
            raise OracleFailure(f"delivered {msg.get_type()} re-decodes as {again.get_type()}")
        try:
            describe(msg)
            json.dumps(msg.to_dict(), default=str)
            is_autopilot_heartbeat(msg)
        except Exception as exc:  # noqa: BLE001
            raise OracleFailure(f"describe/to_dict of a delivered {msg.get_type()} raised "
                                f"{describe_exception(exc)}") from None

    @staticmethod
    def _internal_error(data: bytes, key: Optional[bytes]) -> str:
        """Replay with a bare pymavlink parser to show what MavlinkParser swallowed."""
        m = _m()
        mav = m.MAVLink(None)
        mav.robust_parsing = True
        if key is not None:
            mav.signing.secret_key = key
        try:
            mav.parse_buffer(data)
        except Exception as exc:  # noqa: BLE001
            return describe_exception(exc)
        return "(not reproduced with a bare parser)"

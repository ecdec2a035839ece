"""Hostile input: random garbage and truncated frames never raise, and decoding recovers.

Thousands of hypothesis cases in total; derandomized so a run is reproducible.
"""
from __future__ import annotations

import dataclasses
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firmware_bridge import FrameDecoder, encode_result, encode_status
from firmware_bridge.mavlink import MavlinkEncoder, MavlinkParser

from fb_helpers import make_result

# The decoders are pure Python, the same on every architecture: the full count runs on x86, a tenth
# under emulated ARM (scripts/qemu-test), where it would take 2 of the suite's minutes.
FUZZ = settings(max_examples=150 if os.environ.get("HBNN_EMULATED") else 1500, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

FRAMES = [encode_result(make_result(i, topk=[(i, 0.5)] * (i % 5))) for i in range(6)] + \
         [encode_status("camera lost", "warning")]


def _mav_stream():
    enc = MavlinkEncoder(debug_vect=True)
    out = [enc.heartbeat()]
    for i in range(4):
        out.append(enc.result(make_result(i))[0])
    out.append(enc.status("camera back " * 6, "info")[0])
    return out


MAV = _mav_stream()
MAV_BYTES = b"".join(MAV)
MAV_COUNT = len(MavlinkParser().feed(MAV_BYTES))


def _chunks(data: bytes, cuts: list) -> list:
    points = sorted({c % (len(data) + 1) for c in cuts})
    edges = [0] + points + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]


@FUZZ
@given(st.binary(max_size=400), st.lists(st.integers(0, 10_000), max_size=6))
def test_frame_decoder_survives_garbage_and_recovers(garbage, cuts):
    dec = FrameDecoder()
    events = []
    for chunk in _chunks(garbage, cuts):  # arbitrary read boundaries
        events += dec.events(chunk)
    assert dec.messages + sum(dec.errors.values()) == len(events)
    # Whatever came before, a delimiter then a good frame decodes.
    tail = dec.feed(b"\x00" + FRAMES[1])
    assert [m.sequence for m in tail] == [1]


@FUZZ
@given(st.data())
def test_frame_decoder_loses_only_frames_touched_by_a_dropout(data):
    count = data.draw(st.integers(2, 8))
    frames = [encode_result(make_result(i)) for i in range(count)]  # distinct contents
    originals = [dataclasses.replace(make_result(i), label=None) for i in range(count)]  # labels stay home
    stream = b"".join(frames)
    start = data.draw(st.integers(0, len(stream) - 1))
    stop = data.draw(st.integers(start, min(len(stream), start + 120)))
    good = FrameDecoder().feed(stream[:start] + stream[stop:])
    bounds = [0]
    for f in frames:
        bounds.append(bounds[-1] + len(f))
    synced_at_stop = start in bounds  # the byte before the gap is a delimiter (or nothing)
    # A frame survives if it ends before the gap, or starts after it with a delimiter in front.
    expected = [originals[i] for i in range(count)
                if bounds[i + 1] <= start or bounds[i] > stop or (bounds[i] == stop and synced_at_stop)]
    assert [m for m in good if m in expected] == expected
    assert all(m in originals for m in good)  # no phantom messages (CRC)


@FUZZ
@given(st.binary(max_size=300), st.lists(st.integers(0, 10_000), max_size=4))
def test_mavlink_parser_survives_garbage_and_recovers(garbage, cuts):
    parser = MavlinkParser()
    for chunk in _chunks(garbage, cuts):
        parser.feed(chunk)  # must not raise
    # MAVLink has no delimiter: a bogus header may swallow up to 280 bytes. After that
    # much padding every following message decodes.
    msgs = parser.feed(b"\x00" * 300 + MAV_BYTES)
    assert len(msgs) == MAV_COUNT
    assert [m.get_type() for m in msgs[:3]] == ["HEARTBEAT", "NAMED_VALUE_INT", "NAMED_VALUE_FLOAT"]


@FUZZ
@given(st.data())
def test_mavlink_parser_survives_truncated_and_mangled_messages(data):
    cut = data.draw(st.integers(0, len(MAV_BYTES)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
    mangled = bytearray(MAV_BYTES[:cut])
    for pos, value in flips:
        if mangled:
            mangled[pos % len(mangled)] = value
    parser = MavlinkParser()
    msgs = parser.feed(bytes(mangled))
    assert len(msgs) <= MAV_COUNT
    assert len(parser.feed(b"\x00" * 300 + MAV_BYTES)) == MAV_COUNT


@pytest.mark.no_emulation
def test_reporter_inbound_survives_a_garbage_burst(pty_pair):
    import random

    from firmware_bridge import open_reporter

    from fb_helpers import FcReader, wait_until

    rng = random.Random(5)
    burst = bytes(rng.randrange(256) for _ in range(20_000)) + b"\x00" * 300 + MAV_BYTES
    fc = FcReader(pty_pair.fc_port, "mavlink")
    with open_reporter(pty_pair.url, "mavlink", heartbeat=False) as rep:
        pty_pair.fc_port.write(burst)
        wait_until(lambda: rep.stats()["rx_bytes"] == len(burst), what="burst consumed")
        rep.report(make_result(8))
        rep.flush()
        stats = rep.stats()
    fc.sync(rep)
    assert stats["rx_errors"] > 0 and stats["link_errors"] == 0
    assert stats["peer_heartbeats"] == 0  # our own kind of HEARTBEAT (autopilot INVALID) is not a peer
    assert [m.value for m in fc.of_type("NAMED_VALUE_INT")] == [8]

"""Framed protocol: COBS, CRC, message layout, golden frames, error codes, result validation."""
from __future__ import annotations

import json
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import (FrameDecoder, FrameError, InferenceResult, InvalidResultError, StatusMessage,
                             decode_frame, encode_result, encode_status)
from firmware_bridge.frames import ERROR_CODES, MAX_ENCODED_LEN, PROTOCOL_VERSION, TYPE_RESULT, _frame
from firmware_bridge.framing import cobs_decode, cobs_encode, crc16_ccitt_false

from fb_helpers import make_result
from fb_golden import CASES, encode

GOLDEN = os.path.join(os.path.dirname(__file__), "golden_frames.json")


def test_crc_matches_the_catalogue_check_value():
    assert crc16_ccitt_false(b"123456789") == 0x29B1
    assert crc16_ccitt_false(b"") == 0xFFFF


@pytest.mark.parametrize("raw, encoded", [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (bytes(range(1, 255)), b"\xff" + bytes(range(1, 255)) + b"\x01"),
])
def test_cobs_known_vectors(raw, encoded):
    assert cobs_encode(raw) == encoded
    assert cobs_decode(encoded) == raw


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.binary(max_size=600))
def test_cobs_roundtrip_has_no_zero_bytes(data):
    enc = cobs_encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + 1 + len(data) // 254
    assert cobs_decode(enc) == data


def test_golden_frames_are_stable():
    """The wire format must not change by accident: MCU firmware in the field decodes it."""
    with open(GOLDEN) as fh:
        golden = json.load(fh)
    assert [dict(g) for g in golden] == [dict(c, frame=g["frame"]) for c, g in zip(CASES, golden)]
    for case in golden:
        assert encode(case).hex() == case["frame"], case


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**64 - 1), st.integers(0, 65535),
       st.floats(-1e6, 1e6, width=32),
       st.lists(st.tuples(st.integers(0, 65535), st.floats(0, 1, width=32)), max_size=4),
       st.floats(0, 4e6))
@settings(max_examples=300, deadline=None, derandomize=True)
def test_result_roundtrip(seq, ts, cls, conf, topk, latency):
    r = InferenceResult(seq, ts, cls, conf, topk, latency, label="ignored")
    frame = encode_result(r)
    assert frame.endswith(b"\x00") and 0 not in frame[:-1]
    assert len(frame) <= MAX_ENCODED_LEN + 1
    back = decode_frame(frame[:-1])
    assert (back.sequence, back.timestamp_us, back.class_id, back.confidence) == (seq, ts, cls, conf)
    assert list(back.topk) == list(topk)
    assert back.latency_ms == round(latency * 1000) / 1000
    assert back.label is None


def test_topk_beyond_four_is_cut_and_latency_saturates():
    r = make_result(1, topk=[(i, 0.1) for i in range(6)], latency_ms=1e9)
    back = decode_frame(encode_result(r)[:-1])
    assert list(back.topk) == [(i, pytest.approx(0.1)) for i in range(4)]
    assert back.latency_ms == (2**32 - 1) / 1000


def test_status_roundtrip_and_utf8_cut_on_character_boundary():
    assert decode_frame(encode_status("camera lost", "warning")[:-1]) == StatusMessage(4, "camera lost")
    text = "é" * 30  # 60 bytes of UTF-8: cut to 25 characters, not 25.5
    assert decode_frame(encode_status(text, 6)[:-1]) == StatusMessage(6, "é" * 25)


def _corrupt_cases():
    good = make_result(5)
    body = bytearray(cobs_decode(encode_result(good)[:-1]))

    def reframe(raw: bytes) -> bytes:  # recompute the CRC so only the intended defect remains
        raw = bytes(raw[:-2])
        return cobs_encode(raw + struct.pack("<H", crc16_ccitt_false(raw)))

    bad_crc = bytearray(body)
    bad_crc[10] ^= 0x40
    bad_version = bytearray(body)
    bad_version[0] = PROTOCOL_VERSION + 1
    bad_type = bytearray(body)
    bad_type[1] = 9
    nan = bytearray(body)
    nan[2 + 14:2 + 18] = struct.pack("<f", float("nan"))
    many = bytearray(body)
    many[2 + 22] = 5
    yield "ERR_COBS", b"\x05\x01\x02"
    yield "ERR_SHORT", cobs_encode(b"\x01\x01\x02")
    yield "ERR_CRC", cobs_encode(bytes(bad_crc))
    yield "ERR_VERSION", reframe(bad_version)
    yield "ERR_TYPE", reframe(bad_type)
    yield "ERR_LENGTH", reframe(bytes(body[:-3]) + b"\x00\x00")
    yield "ERR_FIELD", reframe(nan)
    yield "ERR_FIELD", reframe(many)
    yield "ERR_FIELD", _frame(2, bytes([8]) + b"hi".ljust(50, b"\x00"))[:-1]
    yield "ERR_OVERFLOW", b"\x01" * (MAX_ENCODED_LEN + 1)


CORRUPT = list(_corrupt_cases())


@pytest.mark.parametrize("code, frame", CORRUPT, ids=[c for c, _ in CORRUPT])
def test_each_defect_is_rejected_with_its_code(code, frame):
    with pytest.raises(FrameError) as info:
        decode_frame(frame)
    assert info.value.code == code
    assert str(info.value).startswith("Expected")
    assert code in ERROR_CODES


def test_stream_decoder_skips_bad_frames_and_resyncs():
    good = [encode_result(make_result(i)) for i in range(3)]
    stream = good[0] + b"\x07\x07\x07" + b"\x00" + good[1] + b"\x00\x00" + b"\x09" * 200 + b"\x00" + good[2]
    dec = FrameDecoder()
    out = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        out += dec.feed(stream[i:i + 7])
    assert [m.sequence for m in out] == [0, 1, 2]
    assert dict(dec.errors) == {"ERR_COBS": 1, "ERR_OVERFLOW": 1}
    assert dec.messages == 3


@pytest.mark.parametrize("kwargs, fragment", [
    (dict(sequence=-1), "sequence in 0..4294967295"),
    (dict(sequence=2**32), "sequence in 0..4294967295"),
    (dict(class_id=70000), "class_id in 0..65535"),
    (dict(class_id=1.5), "class_id to be an int"),
    (dict(class_id=True), "class_id to be an int"),
    (dict(confidence=float("nan")), "confidence to be a finite number"),
    (dict(confidence="high"), "confidence to be a number"),
    (dict(confidence=1e39), "float32 range"),
    (dict(latency_ms=-1.0), "latency_ms >= 0"),
    (dict(topk=[(1,)]), "topk[0] to be a (class_id, confidence) pair"),
    (dict(topk="ab"), "topk to be a list"),
    (dict(topk=[(1, 0.5), (-2, 0.1)]), "topk[1] class_id in 0..65535"),
    (dict(label=5), "label to be a str"),
])
def test_invalid_results_are_refused_with_clear_messages(kwargs, fragment):
    with pytest.raises(InvalidResultError) as info:
        make_result(1, **kwargs)
    assert str(info.value).startswith("Expected") and fragment in str(info.value)


def test_numpy_scalars_are_accepted():
    import numpy as np
    r = InferenceResult(np.int64(3), np.uint64(10), np.int32(2), np.float32(0.5), [(np.int64(2), np.float32(0.5))])
    assert (r.sequence, r.class_id, r.confidence, list(r.topk)) == (3, 2, 0.5, [(2, 0.5)])
    assert type(r.class_id) is int


def test_unknown_type_constant_is_what_c_uses():
    assert TYPE_RESULT == 1 and ERROR_CODES["ERR_OVERFLOW"] == -8

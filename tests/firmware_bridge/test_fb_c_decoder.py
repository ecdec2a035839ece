"""The header-only C decoder: strict compile, golden frames, corrupted frames, and
differential agreement with the Python decoder on random streams."""
from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess

import pytest

from firmware_bridge import FrameDecoder, FrameError, InferenceResult, StatusMessage, encode_result, encode_status
from firmware_bridge.frames import ERROR_CODES

from fb_golden import CASES
from fb_helpers import make_result

pytestmark = pytest.mark.no_emulation

HERE = os.path.dirname(__file__)
HEADER_DIR = os.path.join(HERE, "..", "..", "firmware_bridge", "c")
HARNESS = os.path.join(HERE, "c_harness.c")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wconversion", "-O1"]


def _compile(out: str, extra: list) -> subprocess.CompletedProcess:
    return subprocess.run(["gcc", *STRICT, *extra, "-I", HEADER_DIR, HARNESS, "-o", out],
                          capture_output=True, text=True)


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed")
    out = str(tmp_path_factory.mktemp("c") / "harness")
    # Sanitizers turn any out-of-bounds read on hostile input into a failure; not every
    # toolchain ships them, so fall back to a plain strict build.
    res = _compile(out, ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"])
    if res.returncode != 0:
        res = _compile(out, [])
    assert res.returncode == 0, res.stderr
    return out


def _run(harness: str, data: bytes, *args: str) -> list:
    res = subprocess.run([harness, *args], input=data, capture_output=True, timeout=60)
    assert res.returncode == 0, res.stderr.decode(errors="replace")
    return res.stdout.decode().splitlines()


def _bits(value: float) -> str:
    return "%08x" % struct.unpack("<I", struct.pack("<f", value))[0]


def expected_line(event) -> str:
    """What the harness prints for a Python decoder event."""
    if isinstance(event, FrameError):
        return f"E {ERROR_CODES[event.code]}"
    if isinstance(event, StatusMessage):
        return f"S {event.severity} {event.text.encode('utf-8').hex()}"
    assert isinstance(event, InferenceResult)
    parts = [f"R {event.sequence} {event.timestamp_us} {event.class_id} {_bits(event.confidence)}",
             f"{round(event.latency_ms * 1000)} {len(event.topk)}"]
    parts += [f"{c} {_bits(p)}" for c, p in event.topk]
    return " ".join(parts)


def test_header_compiles_strictly_as_c99(harness):
    assert os.path.exists(harness)


def test_decoder_state_is_small(harness):
    decoder, message = map(int, _run(harness, b"", "sizes")[0].split()[1::2])
    assert decoder <= 80 and message <= 80


def test_golden_frames_decode_to_their_fields(harness):
    with open(os.path.join(HERE, "golden_frames.json")) as fh:
        golden = json.load(fh)
    lines = _run(harness, b"".join(bytes.fromhex(g["frame"]) for g in golden))
    assert len(lines) == len(CASES)
    for case, line in zip(CASES, lines):
        if case["kind"] == "status":
            assert line == f"S {case['severity']} {case['text'].encode().hex()}"
        else:
            want = InferenceResult(case["sequence"], case["timestamp_us"], case["class_id"], case["confidence"],
                                   [tuple(p) for p in case["topk"]], case["latency_ms"])
            assert line == expected_line(want)


def test_corrupted_frames_are_rejected_with_the_python_codes(harness):
    from test_fb_frames import CORRUPT

    stream = b"".join(frame + b"\x00" for _, frame in CORRUPT)
    assert _run(harness, stream) == [f"E {ERROR_CODES[code]}" for code, _ in CORRUPT]


def test_every_single_bit_flip_is_rejected(harness):
    frame = encode_result(make_result(77))[:-1]
    stream = bytearray()
    flips = 0
    for i in range(len(frame)):
        for bit in range(8):
            bad = bytearray(frame)
            bad[i] ^= 1 << bit
            if bad[i] == 0:  # a zero is a delimiter, not a flipped bit inside the frame
                continue
            stream += bad + b"\x00"
            flips += 1
    lines = _run(harness, bytes(stream))
    assert len(lines) == flips > 7 * len(frame)
    assert all(line.startswith("E ") for line in lines)


def _random_stream(rng: random.Random, segments: int) -> bytes:
    good = [encode_result(make_result(i, topk=[(i % 9, 0.5)] * (i % 5))) for i in range(50)]
    good += [encode_status(t, i % 8) for i, t in enumerate(["model loaded", "camera lost", "é" * 30, ""])]
    out = bytearray()
    for _ in range(segments):
        pick = rng.random()
        frame = rng.choice(good)
        if pick < 0.35:
            out += frame
        elif pick < 0.55:  # truncated frame
            out += frame[:rng.randrange(len(frame))]
        elif pick < 0.75:  # corrupted frame
            bad = bytearray(frame)
            bad[rng.randrange(len(bad))] = rng.randrange(256)
            out += bad
        elif pick < 0.9:  # raw garbage, sometimes long enough to overflow
            out += bytes(rng.randrange(256) for _ in range(rng.choice([3, 20, 70, 200])))
        else:
            out += b"\x00" * rng.randrange(1, 4)
    return bytes(out)


def test_c_and_python_decoders_agree_on_random_streams(harness):
    rng = random.Random(20261128)
    stream = _random_stream(rng, 4000)
    py_events = FrameDecoder().events(stream)
    c_lines = _run(harness, stream)
    assert c_lines == [expected_line(e) for e in py_events]
    kinds = {line[0] for line in c_lines}
    assert kinds == {"R", "S", "E"}  # the stream exercised all three outcomes
    assert len(c_lines) > 2000


@pytest.mark.skipif(shutil.which("arm-none-eabi-gcc") is None, reason="no ARM cross compiler")
def test_decoder_fits_a_cortex_m0(tmp_path):
    """Cross-compile a UART hook for Cortex-M0 (-Os): small flash, RAM and stack."""
    obj = tmp_path / "m0.o"
    res = subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-Os", *STRICT[:-1], "-fstack-usage",
                          "-I", HEADER_DIR, "-c", os.path.join(HERE, "c_cortex_m.c"), "-o", str(obj)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    size = subprocess.run(["arm-none-eabi-size", str(obj)], capture_output=True, text=True, check=True)
    text, data, bss = map(int, size.stdout.splitlines()[1].split()[:3])
    assert text < 1024 and data == 0 and bss < 128
    stack = {line.split()[0].rsplit(":", 1)[-1]: int(line.split()[1])
             for line in (tmp_path / "m0.su").read_text().splitlines()}
    assert stack["uart_rx"] < 256

"""MAVLink 2 over a real pty, checked with pymavlink's own strict parser:
framing, CRC, ids, fields, heartbeat cadence, STATUSTEXT, signing, inbound."""
from __future__ import annotations

import os
import struct
import threading
import warnings

import pytest
from pymavlink.dialects.v20 import common as mavlink2
from pymavlink.generator.mavcrc import x25crc

from firmware_bridge import LinkConfigError, Listener, SigningKeyError, load_signing_key, open_reporter
from firmware_bridge.keyfile import parse_signing_key
from firmware_bridge.mavlink import MavlinkParser

from fb_helpers import FcReader, make_result, wait_until

pytestmark = pytest.mark.no_emulation

KEY = bytes(range(1, 33))


def check_frame(msg) -> None:
    """MAVLink 2 framing checked byte by byte, independently of pymavlink's decode."""
    buf = bytes(msg.get_msgbuf())
    signed = bool(buf[2] & mavlink2.MAVLINK_IFLAG_SIGNED)
    assert buf[0] == 0xFD, "MAVLink 2 magic"
    assert buf[1] == len(buf) - 12 - (13 if signed else 0), "payload length"
    assert buf[5:7] == bytes([1, 191]), "system id 1, component id 191 (onboard computer)"
    assert int.from_bytes(buf[7:10], "little") == msg.get_msgId()
    end = len(buf) - (13 if signed else 0)
    crc = x25crc(buf[1:end - 2])
    crc.accumulate(bytes([mavlink2.mavlink_map[msg.get_msgId()].crc_extra]))
    assert struct.unpack("<H", buf[end - 2:end])[0] == crc.crc, "X.25 CRC with CRC_EXTRA"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "link.key"
    path.write_text("# shared with the autopilot\n" + KEY.hex()[:32] + "\n" + KEY.hex()[32:] + "\n")
    os.chmod(path, 0o600)
    return str(path)


def test_every_message_decodes_with_pymavlink(pty_pair, fake_clock):
    fc = FcReader(pty_pair.fc_port, "mavlink")
    with open_reporter(pty_pair.url, "mavlink", debug_vect=True, clock=fake_clock) as rep:
        fake_clock.advance(0.25)
        for seq in range(20):
            rep.report(make_result(seq, class_id=seq * 3, confidence=seq / 32,
                                   topk=[(seq, 0.5), (2, 0.25)][: seq % 3]))
            assert rep.flush()
        rep.status_text("model loaded", "notice")
        assert rep.flush()
    fc.sync(rep)
    assert [m.get_type() for m in fc.messages[:1]] == ["HEARTBEAT"]
    for msg in fc.messages:
        check_frame(msg)
        assert not msg.get_signed()
    hb = fc.of_type("HEARTBEAT")[0]
    assert (hb.type, hb.autopilot, hb.mavlink_version) == (
        mavlink2.MAV_TYPE_ONBOARD_CONTROLLER, mavlink2.MAV_AUTOPILOT_INVALID, 3)
    ints, floats = fc.of_type("NAMED_VALUE_INT"), fc.of_type("NAMED_VALUE_FLOAT")
    assert [(m.name, m.value) for m in ints] == [("HBNN_CLS", s * 3) for s in range(20)]
    assert [m.name for m in floats] == ["HBNN_CONF"] * 20
    assert [m.value for m in floats] == pytest.approx([s / 32 for s in range(20)])
    assert {m.time_boot_ms for m in ints + floats} == {250}  # from the (fake) monotonic clock
    vects = fc.of_type("DEBUG_VECT")
    assert [v.name for v in vects[:2]] == ["HBNN_TOPC", "HBNN_TOPP"]
    ids, confs = vects[2], vects[3]  # result 1: top-k [(1, 0.5)]
    assert (ids.x, confs.x, ids.time_usec) == (1.0, 0.5, make_result(1).timestamp_us)
    assert ids.y != ids.y and confs.z != confs.z  # NaN marks an absent top-k slot
    st = fc.of_type("STATUSTEXT")
    assert [(m.severity, m.text) for m in st] == [(mavlink2.MAV_SEVERITY_NOTICE, "model loaded")]
    assert rep.stats()["messages"] == len(fc.messages)


def test_names_ids_and_rate_are_configurable(pty_pair, fake_clock):
    fc = FcReader(pty_pair.fc_port, "mavlink")
    with open_reporter(pty_pair.url, "mavlink", system_id=42, component_id=200, names=["CAT", "P"],
                       heartbeat=False, rate_hz=2, clock=fake_clock) as rep:
        rep.report(make_result(1))
        assert rep.flush()
        for seq in (2, 3, 4):  # within 0.5 s of the last: held back, the newest wins
            rep.report(make_result(seq))
        assert rep.flush()
        assert fc.sync(rep) and rep.stats()["results_sent"] == 1
        fake_clock.advance(0.5)
        assert rep.flush()
        stats = rep.stats()
    fc.sync(rep)
    assert [m.value for m in fc.of_type("NAMED_VALUE_INT")] == [1, 4]
    assert {m.name for m in fc.of_type("NAMED_VALUE_INT")} == {"CAT"}
    assert {m.name for m in fc.of_type("NAMED_VALUE_FLOAT")} == {"P"}
    assert {(m.get_srcSystem(), m.get_srcComponent()) for m in fc.messages} == {(42, 200)}
    assert not fc.of_type("HEARTBEAT")
    assert stats["drops_rate_limited"] == 2


@pytest.mark.parametrize("options, fragment", [
    (dict(names=["TOO_LONG_NAME"]), "1-10 ASCII"),
    (dict(names="HBNN"), "1-4 strings"),
    (dict(system_id=0), "system_id in 1..255"),
    (dict(component_id=256), "component_id in 1..255"),
    (dict(heartbeat=-1), "heartbeat"),
    (dict(rate_hz=0), "rate_hz"),
    (dict(queue_size=0), "queue_size"),
    (dict(baudrate="fast"), "baudrate"),
    (dict(sistem_id=3), "options among"),
])
def test_bad_options_are_refused(options, fragment):
    with pytest.raises(LinkConfigError) as info:
        open_reporter("loop://", "mavlink", **options)
    assert fragment in str(info.value) and str(info.value).startswith("Expected")


def test_heartbeat_cadence_is_1hz_on_the_monotonic_clock(pty_pair, fake_clock):
    fc = FcReader(pty_pair.fc_port, "mavlink")
    with open_reporter(pty_pair.url, "mavlink", clock=fake_clock) as rep:
        assert rep.flush()
        assert [m.get_type() for m in fc.sync(rep)] == ["HEARTBEAT"]  # at once on connect
        beats = []
        for step in range(40):  # 10 simulated seconds in 0.25 s steps
            fake_clock.advance(0.25)
            assert rep.flush()
            beats += [step for m in fc.sync(rep) if m.get_type() == "HEARTBEAT"]
        # One at start, then exactly one per simulated second (steps 3, 7, ... are t = 1, 2, ...).
        assert beats == list(range(3, 40, 4))
        fake_clock.advance(5.0)  # a stall: one beat, not a burst of five
        assert rep.flush()
        assert [m.get_type() for m in fc.sync(rep)] == ["HEARTBEAT"]
        assert rep.stats()["heartbeats"] == 1 + 10 + 1


def test_long_status_text_goes_out_in_chunks_and_repeats_are_suppressed(pty_pair, fake_clock):
    fc = FcReader(pty_pair.fc_port, "mavlink")
    text = "camera lost: " + "x" * 90
    with open_reporter(pty_pair.url, "mavlink", heartbeat=False, clock=fake_clock) as rep:
        assert rep.status_text(text, "warning")
        assert not rep.status_text(text, "warning")  # same state again: not a change
        assert rep.flush()
        fake_clock.advance(0.5)
        assert rep.status_text("camera back", "info")
        assert rep.flush()
        stats = rep.stats()
    fc.sync(rep)
    st = fc.of_type("STATUSTEXT")
    assert [m.chunk_seq for m in st[:3]] == [0, 1, 2] and len({m.id for m in st[:3]}) == 1 and st[0].id != 0
    assert "".join(m.text for m in st[:3]) == text
    assert (st[3].text, st[3].id) == ("camera back", 0)
    assert stats["status_suppressed"] == 1 and stats["status_sent"] == 4


def test_status_texts_are_rate_limited_not_lost(pty_pair, fake_clock):
    fc = FcReader(pty_pair.fc_port, "mavlink")
    with open_reporter(pty_pair.url, "mavlink", heartbeat=False, status_rate_hz=2, clock=fake_clock) as rep:
        for text in ("camera lost", "camera back", "model loaded"):
            rep.status_text(text)
        assert rep.flush()
        assert [m.text for m in fc.sync(rep)] == ["camera lost"]
        fake_clock.advance(0.5)
        assert rep.flush()
        assert [m.text for m in fc.sync(rep)] == ["camera back"]
    fc.sync(rep)
    assert [m.text for m in fc.of_type("STATUSTEXT")] == ["camera lost", "camera back", "model loaded"]


def test_signed_messages_verify_with_the_key_and_fail_without_it(pty_pair, key_file):
    with open_reporter(pty_pair.url, "mavlink", signing_key_file=key_file) as rep:
        for seq in range(5):
            rep.report(make_result(seq))
            rep.flush()
    data = bytearray()
    # The pty hands bytes over asynchronously: read until all that was written has arrived.
    wait_until(lambda: data.extend(pty_pair.fc_port.read(65536)) or len(data) == rep.stats()["bytes"],
               what="all bytes at the FC end")
    data = bytes(data)

    good = mavlink2.MAVLink(None)
    good.signing.secret_key = KEY
    msgs = good.parse_buffer(data)
    assert len(msgs) == 1 + 2 * 5
    assert all(m.get_signed() for m in msgs)
    assert good.signing.goodsig_count == len(msgs) and good.signing.badsig_count == 0
    for m in msgs:
        check_frame(m)
        assert m.get_msgbuf()[2] & mavlink2.MAVLINK_IFLAG_SIGNED

    wrong = mavlink2.MAVLink(None)
    wrong.signing.secret_key = bytes(32 * [7])
    with pytest.raises(mavlink2.MAVError, match="Invalid signature"):
        wrong.parse_buffer(data)
    robust = MavlinkParser(signing_key=bytes(32 * [7]))
    assert robust.feed(data) == [] and robust.bad_signatures == len(msgs)

    # Tampering with a payload byte and fixing the CRC still fails the signature.
    first = bytearray(msgs[1].get_msgbuf())
    first[10] ^= 0xFF
    crc = x25crc(bytes(first[1:-15]))
    crc.accumulate(bytes([mavlink2.mavlink_map[msgs[1].get_msgId()].crc_extra]))
    first[-15:-13] = struct.pack("<H", crc.crc)
    checker = MavlinkParser(signing_key=KEY)
    assert checker.feed(bytes(first)) == [] and checker.bad_signatures == 1


@pytest.mark.parametrize("content, fragment", [
    (b"\x00" * 32, "non-zero"),
    (b"abc", "3 characters"),
    (b"\xff\xfe" * 20, "binary"),
    (b"zz" * 32, "64 characters"),
])
def test_bad_key_files_are_refused(tmp_path, content, fragment):
    path = tmp_path / "k"
    path.write_bytes(content)
    os.chmod(path, 0o600)
    with pytest.raises(SigningKeyError) as info:
        load_signing_key(str(path))
    assert fragment in str(info.value)


def test_key_file_formats(tmp_path):
    assert parse_signing_key(KEY) == KEY
    assert parse_signing_key(("  " + KEY.hex().upper() + "  # key\n").encode()) == KEY
    path = tmp_path / "open.key"
    path.write_bytes(KEY)
    os.chmod(path, 0o644)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_signing_key(str(path)) == KEY
    assert any("readable by other users" in str(w.message) for w in caught)
    with pytest.raises(SigningKeyError, match="readable signing key file"):
        load_signing_key(str(tmp_path / "missing"))


def test_autopilot_heartbeat_marks_the_peer_alive_and_listener_sees_results(pty_pair, key_file):
    seen = []
    listener = Listener(pty_pair.fc_port, "mavlink", seen.append, signing_key_file=key_file,
                        autopilot_heartbeat_hz=20).start()
    try:
        with open_reporter(pty_pair.url, "mavlink", signing_key_file=key_file) as rep:
            wait_until(lambda: rep.stats()["peer_alive"], what="autopilot heartbeat")
            rep.report(make_result(9))
            rep.flush()
            wait_until(lambda: any(m.get_type() == "NAMED_VALUE_INT" for m in seen), what="result at FC")
            stats = rep.stats()
    finally:
        lstats = listener.stop()
    assert stats["peer_heartbeats"] >= 1 and stats["rx_bad_signatures"] == 0
    assert lstats["bad_signatures"] == 0 and lstats["heartbeats_sent"] >= 1
    assert all(m.get_signed() for m in seen)


@pytest.mark.parametrize("autopilot_key", ["other", None])
def test_wrong_key_or_unsigned_autopilot_is_rejected_by_the_reporter(pty_pair, key_file, tmp_path, autopilot_key):
    other = None
    if autopilot_key:
        other = str(tmp_path / "other.key")
        with open(other, "wb") as fh:
            fh.write(bytes(32 * [9]))
        os.chmod(other, 0o600)
    listener = Listener(pty_pair.fc_port, "mavlink", signing_key_file=other, autopilot_heartbeat_hz=50).start()
    try:
        with open_reporter(pty_pair.url, "mavlink", signing_key_file=key_file) as rep:
            wait_until(lambda: rep.stats()["rx_bad_signatures"] >= 2, what="rejected heartbeats")
            stats = rep.stats()
    finally:
        listener.stop()
    assert not stats["peer_alive"] and stats["peer_heartbeats"] == 0


def test_inbound_garbage_is_counted_and_the_link_keeps_working(pty_pair):
    fc = FcReader(pty_pair.fc_port, "mavlink")
    with open_reporter(pty_pair.url, "mavlink", heartbeat=False) as rep:
        pty_pair.fc_port.write(bytes(range(256)) * 4 + b"\xfd\x09\x00")
        pty_pair.fc_port.write(b"\x00" * 300)
        wait_until(lambda: rep.stats()["rx_bytes"] == 256 * 4 + 303, what="garbage read")
        rep.report(make_result(3))
        rep.flush()
        stats = rep.stats()
    fc.sync(rep)
    assert stats["rx_errors"] > 0 and stats["link_up"] is True
    assert stats["link_errors"] == 0 and stats["results_sent"] == 1
    assert [m.value for m in fc.of_type("NAMED_VALUE_INT")] == [3]


def test_loopback_url_roundtrip_through_our_own_parser():
    got = []
    with open_reporter("loop://", "mavlink", on_message=got.append, heartbeat=False) as rep:
        rep.report(make_result(5))
        wait_until(lambda: len(got) >= 2, what="loopback messages")
        stats = rep.stats()
    assert [m.get_type() for m in got[:2]] == ["NAMED_VALUE_INT", "NAMED_VALUE_FLOAT"]
    assert stats["rx_messages"] >= 2 and not stats["peer_alive"]  # our own heartbeats would not count


def test_on_message_errors_do_not_kill_the_link():
    def boom(msg):
        raise RuntimeError("callback bug")

    with open_reporter("loop://", "frames", on_message=boom) as rep:
        rep.report(make_result(1))
        wait_until(lambda: rep.stats()["callback_errors"] >= 1, what="callback error")
        assert rep.stats()["link_up"]


def test_frames_ignores_mavlink_identity_options():
    with open_reporter("loop://", "frames", system_id=7, names=["A"], heartbeat=True) as rep:
        assert rep.protocol == "frames"


def test_signing_key_is_refused_for_frames(key_file):
    with pytest.raises(LinkConfigError, match="only with protocol 'mavlink'"):
        open_reporter("loop://", "frames", signing_key_file=key_file)
    with pytest.raises(LinkConfigError, match="Expected protocol"):
        open_reporter("loop://", "can-bus")


def test_listen_function_stops_on_event(pty_pair):
    stop = threading.Event()
    seen = []
    from firmware_bridge import listen

    def on_message(msg):
        seen.append(msg)
        stop.set()

    with open_reporter(pty_pair.url, "mavlink"):
        stats = listen(pty_pair.fc_port, "mavlink", on_message, stop)
    assert seen and seen[0].get_type() == "HEARTBEAT" and stats["messages"] >= 1


class SocketEnd:
    """The SITL side of a socket:// link, readable like a port."""

    def __init__(self, conn) -> None:
        self.conn = conn
        conn.setblocking(False)

    def read(self, size: int) -> bytes:
        try:
            return self.conn.recv(size)
        except BlockingIOError:
            return b""


def test_socket_url_for_sitl_delivers_and_reconnects():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    url = "socket://127.0.0.1:%d" % server.getsockname()[1]
    try:
        with open_reporter(url, "mavlink", heartbeat=False, reconnect_min_s=0.02, reconnect_max_s=0.05) as rep:
            conn, _ = server.accept()
            first = FcReader(SocketEnd(conn), "mavlink")
            rep.report(make_result(1))
            rep.flush()
            first.sync(rep)
            conn.close()  # SITL restarts
            wait_until(lambda: rep.stats()["reconnects"] == 1, what="reconnect to SITL")
            conn, _ = server.accept()
            second = FcReader(SocketEnd(conn), "mavlink")
            second.nbytes = first.nbytes
            rep.report(make_result(2))
            rep.flush()
            second.sync(rep)
            conn.close()
    finally:
        server.close()
    assert (first.sequences(), second.sequences()) == ([1], [2])

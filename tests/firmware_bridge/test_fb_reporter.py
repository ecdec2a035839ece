"""Reporter behaviour: never blocks the producer, newest wins, reconnects, counts every loss."""
from __future__ import annotations

import dataclasses
import threading
import time

import pytest

from firmware_bridge import BridgeError, FrameDecoder, InvalidResultError, LinkError, open_reporter

from fb_helpers import FcReader, make_result, wait_until

pytestmark = pytest.mark.no_emulation


class StuckPort:
    """A port whose write blocks until released: a far end that stopped reading."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.data = bytearray()

    def read(self, size: int = 1) -> bytes:
        return b""

    def write(self, data: bytes) -> int:
        self.entered.set()
        self.release.wait(30)
        self.data += data
        return len(data)

    def close(self) -> None:
        self.release.set()


def accounting_holds(stats: dict) -> bool:
    return stats["results_in"] == stats["results_sent"] + stats["drops"]


@pytest.mark.parametrize("protocol", ["frames", "mavlink"])
def test_a_blocked_writer_never_blocks_report_and_the_newest_win(protocol):
    port = StuckPort()
    rep = open_reporter("loop://", protocol, port_factory=lambda: port, queue_size=4)
    assert port.entered.wait(10)  # the I/O thread is now stuck inside write()
    # If report() waited on the writer in any way, this loop would hang here.
    assert all(rep.report(make_result(seq)) for seq in range(1000))
    stats = rep.stats()
    assert (stats["results_in"], stats["queue_depth"], stats["queue_max"]) == (1000, 4, 4)
    assert (stats["drops_queue_full"], stats["results_sent"]) == (996, 0)
    port.release.set()
    rep.close()
    stats = rep.stats()
    assert stats["results_sent"] == 4 and accounting_holds(stats)
    if protocol == "frames":
        assert [m.sequence for m in FrameDecoder().feed(bytes(port.data))] == [996, 997, 998, 999]
    else:
        fc = FcReader(None, "mavlink")
        msgs = fc.mav.parse_buffer(bytes(port.data))
        assert [m.value for m in msgs if m.get_type() == "NAMED_VALUE_INT"] == [996, 997, 998, 999]


def test_a_slow_reader_on_a_real_pty_never_slows_the_producer(pty_pair):
    fc = FcReader(pty_pair.fc_port, "frames")
    rep = open_reporter(pty_pair.url, "frames", queue_size=4)
    # Nobody reads the pty: its ~18 KB buffer fills after a few hundred frames.
    assert all(rep.report(make_result(seq)) for seq in range(3000))
    stats = rep.stats()
    assert stats["queue_max"] <= 4 and stats["drops_queue_full"] > 0
    assert stats["results_sent"] < 3000 and stats["drops_link_down"] == 0

    stop = threading.Event()
    drain = threading.Thread(target=lambda: [fc.poll() for _ in iter(lambda: stop.wait(0.002), True)])
    drain.start()  # the reader comes back: what is queued goes out, newest last
    rep.close()
    stop.set()
    drain.join()
    fc.sync(rep)
    stats = rep.stats()
    seqs = fc.sequences()
    assert accounting_holds(stats) and stats["drops_on_close"] == 0
    assert len(seqs) == stats["results_sent"] and seqs == sorted(set(seqs))
    assert seqs[-1] == 2999  # the newest result always gets through


@pytest.mark.parametrize("protocol", ["frames", "mavlink"])
def test_unplug_and_replug_loses_only_what_was_produced_while_down(pty_pair, protocol):
    rep = open_reporter(pty_pair.url, protocol, reconnect_min_s=0.02, reconnect_max_s=0.1)
    before = FcReader(pty_pair.fc_port, protocol)
    seq = 0
    for _ in range(20):
        rep.report(make_result(seq))
        seq += 1
        rep.flush()
    before.sync(rep)
    assert before.sequences() == list(range(20))

    pty_pair.unplug()  # the USB adapter vanishes
    down_start = seq
    deadline = time.monotonic() + 10
    while rep.stats()["link_up"]:  # the camera loop keeps producing until the loss is noticed
        assert time.monotonic() < deadline, "link loss never detected"
        rep.report(make_result(seq))
        seq += 1
        time.sleep(0.002)
    for _ in range(10):  # produced while down: dropped at once, counted
        assert rep.report(make_result(seq)) is False
        seq += 1
    down = list(range(down_start, seq))
    base = rep.stats()["bytes"]

    pty_pair.replug()  # ... and comes back under the same path
    wait_until(lambda: rep.stats()["link_up"], what="reconnect")
    after = FcReader(pty_pair.fc_port, protocol)
    after.nbytes = base  # only count bytes written since the reconnect
    for _ in range(20):
        rep.report(make_result(seq))
        seq += 1
        rep.flush()
    rep.close()
    after.sync(rep)
    stats = rep.stats()
    assert stats["reconnects"] == 1 and stats["link_errors"] == 1
    assert after.sequences() == list(range(seq - 20, seq))
    assert stats["drops_link_down"] == len(down) == stats["drops"]
    assert stats["results_sent"] == 40 and accounting_holds(stats)
    if protocol == "mavlink":  # a heartbeat at once after reconnecting
        assert after.messages[0].get_type() == "HEARTBEAT"


def test_close_sends_what_the_rate_limit_held_back(pty_pair, fake_clock):
    fc = FcReader(pty_pair.fc_port, "frames")
    rep = open_reporter(pty_pair.url, "frames", rate_hz=1, clock=fake_clock)
    rep.report(make_result(0))
    assert rep.flush()
    rep.report(make_result(1))  # within the same second: waits
    assert rep.flush() and rep.stats()["results_sent"] == 1
    rep.close()
    fc.sync(rep)
    assert fc.sequences() == [0, 1]
    assert rep.stats()["drops"] == 0


def test_a_missing_device_fails_fast_or_is_waited_for(pty_pair):
    pty_pair.unplug()
    with pytest.raises(LinkError, match="Expected a reachable serial device"):
        open_reporter(pty_pair.url, "frames")
    rep = open_reporter(pty_pair.url, "frames", require_link=False, reconnect_min_s=0.02, reconnect_max_s=0.05)
    try:
        stats = rep.stats()
        assert not stats["link_up"] and "No such file" in stats["last_error"]
        assert rep.report(make_result(0)) is False
        pty_pair.replug()
        wait_until(lambda: rep.stats()["link_up"], what="first connect")
        fc = FcReader(pty_pair.fc_port, "frames")
        rep.report(make_result(1))
        rep.flush()
        fc.sync(rep)
        assert fc.sequences() == [1]
        assert rep.stats()["reconnects"] == 0  # the first connection is not a reconnect
    finally:
        rep.close()
    assert accounting_holds(rep.stats())


def test_misuse_is_reported_clearly():
    rep = open_reporter("loop://", "frames")
    with pytest.raises(InvalidResultError, match="Expected an InferenceResult"):
        rep.report({"class_id": 1})
    checked = make_result(1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        checked.class_id = -5  # checked once when made, so it cannot change before the I/O thread encodes it
    with pytest.raises(InvalidResultError, match="severity"):
        rep.status_text("x", "loud")
    with pytest.raises(InvalidResultError, match="non-empty status text"):
        rep.status_text("")
    rep.close()
    rep.close()  # idempotent
    with pytest.raises(BridgeError, match="open reporter"):
        rep.report(make_result(1))


def test_frames_status_text_and_resync_byte(pty_pair):
    fc = FcReader(pty_pair.fc_port, "frames")
    with open_reporter(pty_pair.url, "frames") as rep:
        rep.status_text("model loaded", "notice")
        rep.report(make_result(4))
        rep.flush()
    fc.sync(rep)
    assert [type(m).__name__ for m in fc.messages] == ["StatusMessage", "InferenceResult"]
    assert (fc.messages[0].severity, fc.messages[0].text) == (5, "model loaded")
    assert fc.decoder.errors == {}  # the leading 0x00 is an empty frame, not an error

"""``hbnn listen`` and ``hbnn bridge-test`` (hbnn.link_commands) end to end over a pty."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from firmware_bridge import Listener, encode_result, encode_status
from hbnn.cli import main as run_cli

from fb_helpers import make_result, wait_until

pytestmark = pytest.mark.no_emulation

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def test_registration_imports_nothing_heavy():
    code = ("import sys; from hbnn.cli import build_parser; build_parser(); "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'pymavlink', 'serial', 'torch', 'cv2'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_hbnn_lists_the_commands():
    from hbnn.cli import build_parser

    text = build_parser().format_help()
    assert "listen" in text and "bridge-test" in text


def test_bridge_test_sends_a_burst_the_fc_decodes(pty_pair, capsys):
    seen = []
    listener = Listener(pty_pair.fc_port, "mavlink", seen.append).start()
    try:
        status = run_cli(["bridge-test", "--link", pty_pair.url, "--count", "5", "--rate-hz", "100",
                          "--debug-vect"])
        wait_until(lambda: sum(m.get_type() == "NAMED_VALUE_INT" for m in seen) == 5, what="5 results at FC")
    finally:
        listener.stop()
    assert status == 0
    assert "sent 5/5 results" in capsys.readouterr().out
    assert [m.value for m in seen if m.get_type() == "NAMED_VALUE_INT"] == [0, 1, 2, 3, 4]
    assert [m.text for m in seen if m.get_type() == "STATUSTEXT"] == ["hbnn bridge-test"]
    assert sum(m.get_type() == "DEBUG_VECT" for m in seen) == 10


def _listen_while_feeding(pty_pair, argv, payload: bytes):
    """Run ``hbnn listen`` on the device side while the test plays the sender on the other."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("status", run_cli(argv)))
    thread.start()
    while thread.is_alive():  # pyserial flushes input on open, so keep sending until heard
        pty_pair.fc_port.write(payload)
        thread.join(0.05)
    return result["status"]


def test_listen_prints_framed_results(pty_pair, capsys):
    payload = encode_status("camera lost", "warning") + encode_result(make_result(7)) + b"\x13\x37\x00"
    status = _listen_while_feeding(pty_pair, ["listen", "--link", pty_pair.url, "--protocol", "frames",
                                              "--count", "2"], payload)
    out, err = capsys.readouterr()
    assert status == 0
    lines = out.splitlines()
    assert len(lines) == 2 and {lines[0].split()[0], lines[1].split()[0]} == {"STATUS", "RESULT"}
    assert any("seq=7" in line and "class=7" in line for line in lines)
    assert "hbnn listen: 2 messages" in err


def test_listen_json_for_mavlink(pty_pair, capsys):
    from firmware_bridge.mavlink import MavlinkEncoder

    enc = MavlinkEncoder()
    payload = enc.result(make_result(12))[0]
    status = _listen_while_feeding(pty_pair, ["listen", "--link", pty_pair.url, "--json", "--count", "2"], payload)
    out, _ = capsys.readouterr()
    assert status == 0
    rows = [json.loads(line) for line in out.splitlines()]
    types = {r["mavpackettype"] for r in rows}
    assert types <= {"NAMED_VALUE_INT", "NAMED_VALUE_FLOAT"} and rows[0]["srcComponent"] == 191


@pytest.mark.parametrize("argv, fragment", [
    (["bridge-test", "--link", "/nonexistent/ttyX"], "Expected a reachable serial device"),
    (["bridge-test", "--link", "loop://", "--count", "0"], "Expected --count >= 1"),
    (["bridge-test", "--link", "loop://", "--protocol", "frames", "--debug-vect"], "only with --protocol mavlink"),
    (["bridge-test", "--link", "loop://", "--system-id", "0"], "system_id in 1..255"),
    (["listen", "--link", "/nonexistent/ttyX"], "Expected a reachable serial device"),
    (["listen", "--link", "loop://", "--duration", "-1"], "Expected --duration > 0"),
    (["listen", "--link", "loop://", "--signing-key-file", "/nonexistent/key"], "readable signing key file"),
])
def test_bad_arguments_give_one_line_errors(argv, fragment, capsys):
    assert run_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hbnn: error: Expected") and fragment in err and err.count("\n") == 1


def test_listener_on_a_url_reconnects_after_unplug(pty_pair):
    seen = []
    listener = Listener(pty_pair.url, "frames", seen.append).start()
    try:
        feed = lambda seq: pty_pair.fc_port.write(encode_result(make_result(seq)))  # noqa: E731
        wait_until(lambda: feed(1) is not None and any(m.sequence == 1 for m in seen), what="first result")
        pty_pair.unplug()
        pty_pair.replug()
        wait_until(lambda: listener.stats()["reconnects"] == 1, what="listener reconnect")
        wait_until(lambda: feed(2) is not None and any(m.sequence == 2 for m in seen), what="result after replug")
    finally:
        stats = listener.stop()
    assert stats["link_errors"] == 1 and stats["reconnects"] == 1
    assert {m.sequence for m in seen} == {1, 2}

"""The daemon, driven in-process: signals, atomic reload, camera loss, bad frames, sd_notify."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from edge.daemon import Daemon, DaemonError, SystemdNotifier
from edge.daemon_config import DaemonConfigError, load_config, parse_config
from edge.sources import CameraUnavailable
from edge_fakes import FakeInterpreter, FakeReporter, FlakyCamera, ListSource, Recorder

BASE = """
[model]
path = "{model}"
threads = 1
[source]
spec = "{source}"
frame_timeout_s = 1
[link]
url = "fake://fc"
protocol = "mavlink"
[daemon]
log_level = "debug"
status_interval_s = 0.05
retry_initial_s = 0.01
retry_max_s = 0.04
"""


def write_config(tmp_path, model="good.hbn", source="fake:list", extra=""):
    path = tmp_path / "daemon.toml"
    path.write_text(BASE.format(model=model, source=source) + extra)
    return path


def interpreter_factory(path, threads):
    """Models are files in tmp_path: 'good' loads, anything containing 'corrupt' fails like a bad file."""
    if not os.path.exists(path):
        raise FileNotFoundError(path)
    if "corrupt" in open(path).read():
        raise ValueError(f"Expected a .hbn model, got garbage in {path}")
    return FakeInterpreter(path, threads)


def make_daemon(tmp_path, source_factory, **kw):
    (tmp_path / "good.hbn").write_text("good")
    cfg = write_config(tmp_path, **kw)
    reporters = []

    def reporter_factory(c):
        reporters.append(FakeReporter(c.link_url, protocol=c.protocol))
        return reporters[-1]
    d = Daemon(cfg, interpreter_factory=interpreter_factory, reporter_factory=reporter_factory,
               source_factory=source_factory, notifier=Recorder())
    return d, reporters, cfg


def test_sigterm_stops_cleanly_and_closes_the_link(tmp_path):
    holder = {}
    kill = {30: lambda: os.kill(os.getpid(), signal.SIGTERM)}
    d, reporters, _ = make_daemon(tmp_path, lambda c: holder.setdefault(
        "src", ListSource([np.full((28, 28), 7, np.uint8)] * 1000, hooks=kill)))
    d.start()
    d.install_signal_handlers()
    assert d.run() == 0
    assert 30 <= d.stats.frames <= 32          # stopped right after the signal, not at the end
    rep = reporters[0]
    assert rep.closed and len(rep.results) == d.stats.frames
    assert all(r.class_id == 7 for r in rep.results)
    assert holder["src"].closed >= 1
    msgs = d.notifier.messages
    assert msgs[0] == "READY=1" and "STOPPING=1" in msgs


def test_sighup_with_corrupt_model_keeps_the_old_one(tmp_path):
    d, reporters, cfg = make_daemon(tmp_path, lambda c: ListSource([np.full((28, 28), 2, np.uint8)] * 400))

    def break_model_and_hup():
        (tmp_path / "good.hbn").write_text("corrupt")
        os.kill(os.getpid(), signal.SIGHUP)
    d.start()
    old_model = d.model
    d.source.hooks = {20: break_model_and_hup}
    d.install_signal_handlers()
    assert d.run(max_frames=60) == 0
    assert d.failed_reloads == 1 and d.reloads == 0
    assert d.model is old_model and d.stats.frames == 60  # never stopped serving
    assert any("reload rejected" in t for t in reporters[0].texts)
    assert "RELOADING=1" in d.notifier.messages


def test_sighup_reload_swaps_model_config_and_link_atomically(tmp_path):
    d, reporters, cfg = make_daemon(tmp_path, lambda c: ListSource([np.full((28, 28), 4, np.uint8)] * 400))
    (tmp_path / "new.hbn").write_text("good too")

    def new_config_and_hup():
        cfg.write_text(BASE.format(model="new.hbn", source="fake:list").replace("fake://fc", "fake://fc2"))
        d.request_reload()
    d.start()
    d.source.hooks = {10: new_config_and_hup}
    d.run(max_frames=30)
    assert d.reloads == 1 and d.model.interpreter.path.endswith("new.hbn")
    assert len(reporters) == 2 and reporters[0].closed and reporters[1].closed  # old closed at swap
    assert len(reporters[0].results) + len(reporters[1].results) == 30


def test_reload_with_unreadable_config_keeps_running(tmp_path):
    d, reporters, cfg = make_daemon(tmp_path, lambda c: ListSource([np.full((28, 28), 1, np.uint8)] * 400))

    def garble():
        cfg.write_text("[model\npath = ")
        d.request_reload()
    d.start()
    d.source.hooks = {5: garble}
    d.run(max_frames=20)
    assert d.failed_reloads == 1 and d.stats.frames == 20


def test_camera_vanishes_and_returns(tmp_path):
    FlakyCamera.opens = 0
    made = []

    def factory(c):
        # The first camera dies after 5 frames; reopening fails twice (backoff), then works.
        made.append(FlakyCamera(fail_opens={2, 3}, lose_after=5 if not made else None))
        return made[-1]
    d, reporters, _ = make_daemon(tmp_path, factory)
    d.start()
    assert d.run(max_frames=15) == 0
    assert d.stats.frames == 15 and d.camera_losses == 3
    texts = reporters[0].texts
    assert any("camera lost" in t for t in texts) and any("camera back" in t for t in texts)
    delays = [float(t.split("retry in ")[1].split()[0]) for t in texts if "retry in" in t]
    assert delays == [0.01, 0.02, 0.04]  # exponential backoff, capped at retry_max_s


def test_camera_missing_at_start_is_retried_not_fatal(tmp_path):
    FlakyCamera.opens = 0
    d, reporters, _ = make_daemon(tmp_path, lambda c: FlakyCamera(fail_opens={1, 2, 3, 4}))
    d.start()
    assert d.run(max_frames=3) == 0 and d.camera_losses == 4
    assert d.config.retry_max_s == 0.04


def test_bad_frame_counted_and_skipped(tmp_path):
    images = [np.full((28, 28), 5, np.uint8)] * 3 + [np.zeros((3, 3, 2), np.uint8)] + [np.full((28, 28), 6, np.uint8)] * 3
    d, reporters, _ = make_daemon(tmp_path, lambda c: ListSource(images))
    d.start()
    assert d.run() == 0  # a file source that ends stops the daemon cleanly
    assert d.stats.bad_frames == 1 and d.stats.frames == 6
    assert [r.class_id for r in reporters[0].results] == [5, 5, 5, 6, 6, 6]


def test_inference_error_on_one_frame_is_survived(tmp_path):
    d, reporters, _ = make_daemon(tmp_path, lambda c: ListSource([np.full((28, 28), 5, np.uint8)] * 10))
    d.start()
    d.model.interpreter.fail = True
    d.source.hooks = {4: lambda: setattr(d.model.interpreter, "fail", False)}
    d.run()
    assert d.model_errors == 4 and d.stats.frames == 6


def test_start_errors(tmp_path):
    d, _, cfg = make_daemon(tmp_path, lambda c: ListSource([]))
    (tmp_path / "good.hbn").write_text("corrupt")
    with pytest.raises(DaemonError, match="runnable model"):
        d.start()
    cfg.write_text("not toml [")
    with pytest.raises(DaemonError, match="valid TOML"):
        d.start()
    missing = Daemon(tmp_path / "nope.toml")
    with pytest.raises(DaemonError, match="readable config"):
        missing.start()


@pytest.mark.parametrize("doc, match", [
    ({"model": {"path": "m"}}, "source.spec"),
    ({"source": {"spec": "synthetic"}}, "model.path"),
    ({"model": {"path": "m", "thread": 2}, "source": {"spec": "s"}}, "'thread'"),
    ({"model": {"path": "m", "threads": "2"}, "source": {"spec": "s"}}, "int"),
    ({"model": {"path": "m", "threads": True}, "source": {"spec": "s"}}, "int"),
    ({"model": {"path": "m"}, "source": {"spec": "s"}, "cam": {}}, r"\[cam\]"),
    ({"model": {"path": "m"}, "source": {"spec": "s"}, "link": {"protocol": "udp"}}, "protocol"),
    ({"model": {"path": "m"}, "source": {"spec": "s"}, "daemon": {"log_level": "loud"}}, "log_level"),
    ({"model": {"path": "m"}, "source": {"spec": "s"}, "daemon": {"retry_initial_s": 0}}, "retry"),
])
def test_config_errors(doc, match):
    with pytest.raises(DaemonConfigError, match=match):
        parse_config(doc)


def test_example_config_in_deploy_is_valid():
    cfg = load_config("deploy/daemon.toml")
    assert cfg.model.startswith("/") and cfg.protocol == "mavlink" and cfg.link_url


def test_relative_paths_resolve_against_the_config_dir(tmp_path):
    path = write_config(tmp_path, model="m.hbn", source="npz:clip.npz")
    cfg = load_config(path)
    assert cfg.model == str(tmp_path / "m.hbn") and cfg.source == f"npz:{tmp_path / 'clip.npz'}"


def test_sd_notify_over_a_real_socket(tmp_path):
    addr = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(addr)
    server.settimeout(2)
    try:
        n = SystemdNotifier(env={"NOTIFY_SOCKET": addr, "WATCHDOG_USEC": "2000000"})
        assert n.watchdog_interval == 1.0
        assert n.notify("READY=1")
        assert server.recv(256) == b"READY=1"
        n.watchdog(now=100.0)
        n.watchdog(now=100.5)  # too soon: no second ping
        n.watchdog(now=101.1)
        assert server.recv(256) == b"WATCHDOG=1" and server.recv(256) == b"WATCHDOG=1"
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.recv(256)
    finally:
        server.close()
    assert not SystemdNotifier(env={}).notify("READY=1")  # outside systemd: a no-op
    assert SystemdNotifier(env={"WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert SystemdNotifier(env={"NOTIFY_SOCKET": "@abstract"}).address == "\0abstract"


@pytest.mark.no_emulation
def test_daemon_process_ready_then_sigterm(tmp_path):
    """The real `hbnn daemon` as a process: READY over NOTIFY_SOCKET, SIGTERM -> exit 0."""
    from edge.format import write_hbn
    from model_fakes import random_lenet
    graph, tensors = random_lenet()
    write_hbn(str(tmp_path / "m.hbn"), graph, tensors)
    cfg = tmp_path / "daemon.toml"
    cfg.write_text(textwrap.dedent("""
        [model]
        path = "m.hbn"
        [source]
        spec = "synthetic:120x160x3"
        [daemon]
        status_interval_s = 0.2
    """))
    addr = str(tmp_path / "n.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(addr)
    server.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=addr, WATCHDOG_USEC="1000000")
    proc = subprocess.Popen([sys.executable, "-m", "hbnn.cli", "daemon", "--config", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        got = []
        server.settimeout(0.5)
        deadline = time.monotonic() + 60
        while not ("READY=1" in got and "WATCHDOG=1" in got) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[0]
            try:
                got.append(server.recv(4096).decode())
            except socket.timeout:
                pass
        assert "READY=1" in got and "WATCHDOG=1" in got, got
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.close()
    assert proc.returncode == 0, out
    assert "INFO hbnn.daemon: stopped: frames" in out


class _LiveCamera(FlakyCamera):
    """Live (capture-thread) camera; ``stall`` makes it stop delivering without an error."""

    live = True

    def __init__(self, lose_after=None, stall=False):
        super().__init__(lose_after=lose_after)
        self.stall = stall

    def read(self):
        time.sleep(0.002)
        while self.stall and self._index >= 3:
            time.sleep(0.01)
            if getattr(self, "closed", False):
                raise CameraUnavailable("Expected a frame, got closed")
        return super().read()

    def close(self):
        self.closed = True


def test_live_camera_error_in_capture_thread_is_recovered(tmp_path):
    made = []

    def factory(c):
        made.append(_LiveCamera(lose_after=4 if not made else None))
        return made[-1]
    d, reporters, _ = make_daemon(tmp_path, factory)
    d.start()
    assert d.run(max_frames=20) == 0
    assert d.stats.frames == 20 and d.camera_losses == 1 and len(made) == 2
    assert any("USB disconnect" in t for t in reporters[0].texts)


def test_stalled_camera_counts_as_lost_after_frame_timeout(tmp_path):
    made = []

    def factory(c):
        made.append(_LiveCamera(stall=not made))
        return made[-1]
    d, reporters, _ = make_daemon(tmp_path, factory)
    d.start()
    d.run(max_frames=10)
    assert d.stats.frames == 10 and d.camera_losses == 1
    assert any("no frame for 1 s" in t for t in reporters[0].texts)


def test_reload_with_bad_source_spec_is_rejected_and_sequence_continues(tmp_path):
    from edge.sources import open_source

    def factory(c):
        if c.source == "fake:list":
            return ListSource([np.full((28, 28), 1, np.uint8)] * 400)
        return open_source(c.source)
    d, reporters, cfg = make_daemon(tmp_path, factory)

    def bad_spec():
        cfg.write_text(BASE.format(model="good.hbn", source="webcam0"))
        d.request_reload()

    def good_again():
        cfg.write_text(BASE.format(model="good.hbn", source="fake:list"))
        d.request_reload()
    d.start()
    d.source.hooks = {5: bad_spec, 10: good_again}
    d.run(max_frames=20)
    assert d.failed_reloads == 1 and d.reloads == 1
    assert any("webcam0" in t for t in reporters[0].texts)
    assert [r.sequence for r in reporters[0].results] == list(range(20))


def test_real_model_and_real_bridge_in_process(tmp_path):
    """Default factories: edge.Interpreter + firmware_bridge.open_reporter (pyserial loop://)."""
    from edge.format import write_hbn
    from model_fakes import random_lenet
    graph, tensors = random_lenet()
    write_hbn(str(tmp_path / "m.hbn"), graph, tensors)
    cfg = tmp_path / "d.toml"
    cfg.write_text('[model]\npath = "m.hbn"\n[source]\nspec = "synthetic:60x80x3"\n'
                   '[link]\nurl = "loop://"\nprotocol = "frames"\n')
    d = Daemon(cfg, notifier=Recorder())
    d.start()
    reporter = d.reporter
    assert d.run(max_frames=25) == 0
    stats = reporter.stats()
    assert stats["results_in"] == 25 and stats["results_sent"] + stats["drops"] == 25
    assert d.reporter is None  # closed on shutdown


def test_absent_flight_controller_does_not_stop_the_daemon(tmp_path):
    (tmp_path / "good.hbn").write_text("good")
    cfg = tmp_path / "d.toml"
    cfg.write_text(f'[model]\npath = "good.hbn"\n[source]\nspec = "synthetic:28x28"\n'
                   f'[link]\nurl = "{tmp_path / "ttyNOPE"}"\n')
    d = Daemon(cfg, interpreter_factory=interpreter_factory, notifier=Recorder())
    d.start()
    reporter = d.reporter
    assert d.run(max_frames=10) == 0 and d.stats.frames == 10
    stats = reporter.stats()
    assert stats["results_in"] == 10 and stats["results_sent"] == 0 and not stats["link_up"]


def test_logging_levels_and_journald_priorities(monkeypatch):
    import io
    import logging

    from edge.daemon import setup_logging
    buf = io.StringIO()
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    setup_logging("warning", stream=buf)
    log = logging.getLogger("hbnn.daemon")
    log.info("hidden")
    log.warning("camera lost")
    log.error("reload rejected")
    assert buf.getvalue().splitlines() == ["<4>hbnn.daemon: camera lost", "<3>hbnn.daemon: reload rejected"]
    monkeypatch.delenv("JOURNAL_STREAM")
    buf = io.StringIO()
    setup_logging("debug", stream=buf)
    log.debug("frame")
    assert buf.getvalue().rstrip().endswith("DEBUG hbnn.daemon: frame")

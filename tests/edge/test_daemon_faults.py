"""Fault injection for the daemon: camera loss, link loss, corrupt model + SIGHUP, SIGTERM during
inference, full disk for logs and the stats file (issue 7, part 3; docs/RELIABILITY.md).

Each test runs the real daemon loop on the bundled model (``edge.Interpreter``) and, where the
autopilot has to hear about the fault, the real bridge over a pseudo-terminal, decoded on the
flight-controller side by an independent parser (pymavlink / FrameDecoder). Each checks that
the daemon kept serving with the last good model, said what happened (log + STATUSTEXT),
recovered, and counted what was lost while the fault lasted. Faults are injected from a helper
thread while ``Daemon.run`` runs in the main thread (signals need it); the last tests run the
real ``hbnn daemon`` process.
"""
from __future__ import annotations

import errno
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.daemon import Daemon
from edge_fakes import Recorder
from hbnn.bundled import BUNDLED_CLIP, BUNDLED_MODEL as BUNDLED

REPO = Path(__file__).resolve().parents[2]


# ---- helpers ---------------------------------------------------------------------------------
@pytest.fixture
def model(tmp_path):
    path = tmp_path / "m.hbn"
    shutil.copy(BUNDLED, path)
    return path


@pytest.fixture
def pty_pair():
    from firmware_bridge.ptylink import VirtualSerialPair

    with VirtualSerialPair() as pair:
        yield pair


def write_config(tmp_path, source, *, link=None, protocol="mavlink", max_fps=300, loop=False, extra=""):
    text = f"""
[model]
path = "m.hbn"
[source]
spec = "{source}"
loop = {str(loop).lower()}
frame_timeout_s = 1
max_fps = {max_fps}
[daemon]
log_level = "info"
status_interval_s = 0.05
retry_initial_s = 0.02
retry_max_s = 0.08
{extra}
"""
    if link:
        text += (f'[link]\nurl = "{link}"\nprotocol = "{protocol}"\n'
                 "[link.options]\nreconnect_min_s = 0.02\nreconnect_max_s = 0.1\n")
    path = tmp_path / "daemon.toml"
    path.write_text(text)
    return path


class FlightController:
    """The autopilot's end of the pty, read in a thread; survives unplug/replug of the cable."""

    def __init__(self, pair, protocol="mavlink"):
        self.pair, self.protocol = pair, protocol
        self.lock = threading.Lock()  # held while the cable is (un)plugged
        self.messages = []
        self._stop = threading.Event()
        self._parser = self._new_parser()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _new_parser(self):
        if self.protocol == "mavlink":
            from pymavlink.dialects.v20 import common as mavlink2
            mav = mavlink2.MAVLink(None)
            return lambda data: mav.parse_buffer(data) or []
        from firmware_bridge import FrameDecoder
        return FrameDecoder().feed

    def _read(self):
        port = self.pair.fc_port
        if port is None:
            return b""
        try:
            return port.read(65536)
        except OSError:
            return b""

    def _run(self):
        while not self._stop.is_set():
            with self.lock:
                data = self._read()
                if data:
                    self.messages += self._parser(data)
            if not data:
                time.sleep(0.002)

    def unplug(self):
        with self.lock:
            while self._read():  # what already crossed the cable before it was pulled
                pass
            self.pair.unplug()

    def replug(self):
        with self.lock:
            self.pair.replug()
            self._parser = self._new_parser()

    def stop(self):
        time.sleep(0.05)  # let the last bytes cross the pty
        self._stop.set()
        self._thread.join(2)
        with self.lock:
            while True:
                data = self._read()
                if not data:
                    break
                self.messages += self._parser(data)

    def texts(self):
        """STATUSTEXTs (chunks joined) or STATUS frames, in arrival order."""
        out, chunks = [], {}
        for m in self.messages:
            if self.protocol != "mavlink":
                if type(m).__name__ == "StatusMessage":
                    out.append(m.text)
            elif m.get_type() == "STATUSTEXT":
                if not m.id:
                    out.append(m.text)
                else:
                    chunks.setdefault(m.id, []).append(m.text)
                    if len(m.text) < 50 or len(chunks[m.id]) == 4:
                        out.append("".join(chunks.pop(m.id)))
        return out

    def results(self):
        if self.protocol == "mavlink":
            return [m for m in self.messages if m.get_type() == "NAMED_VALUE_INT" and m.name == "HBNN_CLS"]
        return [m for m in self.messages if type(m).__name__ == "InferenceResult"]


def show(title, faults, texts=(), link=None):
    """What held, for `pytest tests/edge/test_daemon_faults.py -rP` (docs/RELIABILITY.md)."""
    nonzero = {k: v for k, v in faults.items() if v}
    print(f"{title}: faults {json.dumps(nonzero, sort_keys=True)}")
    if link:
        keys = ("results_in", "results_sent", "drops_link_down", "drops_queue_full", "drops_on_close", "reconnects")
        print("  link: " + ", ".join(f"{k} {link.get(k, 0)}" for k in keys))
    for text in texts:
        print(f"  STATUSTEXT: {text}")


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def run_with_faults(daemon, inject, max_frames, timeout=20.0):
    """``daemon.run(max_frames)`` in this (main) thread while ``inject(daemon)`` runs in another.

    A failing injector (or the timeout) stops the daemon so the test never hangs; its exception
    is re-raised here.
    """
    errors = []

    def injector():
        try:
            inject(daemon)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test
            errors.append(exc)
            daemon.request_stop()

    thread = threading.Thread(target=injector, daemon=True)
    watchdog = threading.Timer(timeout, daemon.request_stop)
    watchdog.start()
    thread.start()
    try:
        rc = daemon.run(max_frames=max_frames)
    finally:
        watchdog.cancel()
        thread.join(5)
    if errors:
        raise errors[0]
    assert daemon.stats.frames == max_frames, f"stopped early after {daemon.stats.frames} frames"
    return rc


def clip_images(n=8):
    with np.load(BUNDLED_CLIP, allow_pickle=False) as data:
        return np.asarray(data["images"][:n])


# ---- in-process faults ------------------------------------------------------------------------
@pytest.mark.no_emulation
def test_camera_disappears_and_returns(tmp_path, model, pty_pair, capsys):
    """The image folder the frames come from vanishes mid-run (a file read fails with
    FileNotFoundError: before this test, that escaped and killed the daemon) and comes back."""
    frames = tmp_path / "cam"
    frames.mkdir()
    for i, image in enumerate(clip_images()):
        np.save(frames / f"{i:03d}.npy", image)
    cfg = write_config(tmp_path, f"images:{frames}", link=pty_pair.url, loop=True)
    fc = FlightController(pty_pair)
    d = Daemon(cfg, notifier=Recorder())
    d.start()

    def inject(d):
        wait_for(lambda: d.stats.frames >= 40, what="frames before the fault")
        frames.rename(tmp_path / "cam.unplugged")   # the camera goes away...
        wait_for(lambda: d.camera_losses >= 3, what="reopen retries")
        at_loss = d.stats.frames
        time.sleep(0.1)
        assert d.stats.frames == at_loss            # (nothing is inferred without a camera)
        (tmp_path / "cam.unplugged").rename(frames)  # ...and comes back

    assert run_with_faults(d, inject, max_frames=120) == 0
    fc.stop()
    s = d.summary()
    f = s["faults"]
    assert f["camera_losses"] >= 3 and f["camera_outage_s"] > 0.1 and not f["camera_down"]
    assert f["results_lost_link_down"] == 0 and f["model_errors"] == 0
    texts = fc.texts()
    lost = [t for t in texts if t.startswith("camera lost")]
    assert lost and "FileNotFoundError" in lost[0]
    assert any(t.startswith("camera back after") for t in texts)
    # Nothing produced was lost to the fault: every result the bridge sent reached the flight
    # controller (a "newest wins" queue drop under CPU load is by design, and counted apart).
    link = s["link"]
    assert link["results_in"] == 120 and link["drops"] == link["drops_queue_full"]
    assert len(fc.results()) == link["results_sent"] == 120 - link["drops"]
    out = capsys.readouterr().out
    assert "WARNING hbnn.daemon: camera lost" in out and "INFO hbnn.daemon: camera back after" in out
    assert f"camera lost {f['camera_losses']}x" in out.splitlines()[-1]  # the "stopped:" line
    show("camera gone and back", f, texts, link)


@pytest.mark.no_emulation
@pytest.mark.parametrize("protocol", ["frames", "mavlink"])
def test_serial_link_closed_and_reopened_mid_run(tmp_path, model, pty_pair, capsys, protocol):
    """The USB-serial adapter to the autopilot vanishes for a while and comes back under the same
    path; the daemon keeps inferring, the bridge counts what it could not send."""
    (tmp_path / "clip.npz").write_bytes((BUNDLED_CLIP).read_bytes())
    cfg = write_config(tmp_path, "npz:clip.npz", link=pty_pair.url, protocol=protocol, max_fps=250, loop=True)
    fc = FlightController(pty_pair, protocol)
    d = Daemon(cfg, notifier=Recorder())
    d.start()
    during = {}

    def inject(d):
        wait_for(lambda: d.stats.frames >= 40, what="frames before the fault")
        fc.unplug()
        wait_for(lambda: d.link_outages == 1, what="the daemon noticing the link loss")
        start = d.stats.frames
        wait_for(lambda: d.stats.frames >= start + 30, what="frames during the outage")
        during["frames"] = d.stats.frames - start
        fc.replug()
        wait_for(lambda: d.summary()["faults"]["link_down"] is False, what="reconnect")

    assert run_with_faults(d, inject, max_frames=160) == 0
    fc.stop()
    s = d.summary()
    f, link = s["faults"], s["link"]
    assert f["link_outages"] == 1 and f["link_outage_s"] > 0 and not f["link_down"]
    assert link["reconnects"] == 1 and link["results_in"] == 160
    # Results produced during the outage are lost, and counted; all the others arrive.
    lost = f["results_lost_link_down"]
    assert lost == link["drops_link_down"] >= during["frames"]
    assert link["results_in"] == link["results_sent"] + link["drops"]
    received = len(fc.results())
    # Bytes already in the pty when it was pulled out count as sent, as with a real UART.
    assert 0 <= (160 - link["drops"]) - received <= 2
    if protocol == "frames":
        seqs = [m.sequence for m in fc.results()]
        assert seqs == sorted(seqs) and seqs[-1] == 159  # in order, newest delivered
    texts = fc.texts()  # sent after reconnecting: the bridge kept them while the link was down
    assert any(t.startswith("link lost") for t in texts)
    assert any(t.startswith("link back after") and f"{lost} results lost" in t for t in texts)
    out = capsys.readouterr().out
    assert "WARNING hbnn.daemon: link lost" in out and f"{lost} results lost" in out
    show(f"serial link pulled and put back ({protocol}; {during['frames']} frames inferred while down, "
         f"{received} results decoded at the FC)", f, texts, link)


@pytest.mark.no_emulation
def test_corrupt_model_pushed_with_sighup_keeps_the_last_good_model(tmp_path, model):
    """A bad model is written over the live one in place (``cp``: same inode) and SIGHUP sent.
    Before the daemon ran from a private snapshot, the in-place write changed the weights of the
    running model (the runtime maps its file); cutting the file shorter killed it with SIGBUS."""
    from edge_fakes import FakeReporter

    images = clip_images(8)
    reporters = []
    cfg = write_config(tmp_path, "fake:list", max_fps=300)
    (tmp_path / "daemon.toml").write_text(cfg.read_text() + '[link]\nurl = "fake://fc"\n')

    class Frames:
        """The clip, round and round."""
        live, spec = False, "fake:list"

        def __init__(self):
            self.i = 0

        def open(self):
            return self

        def read(self):
            from edge.sources import Frame
            frame = Frame(images[self.i % len(images)], self.i, time.monotonic_ns() // 1000)
            self.i += 1
            return frame

        def close(self):
            pass

    d = Daemon(tmp_path / "daemon.toml", notifier=Recorder(), source_factory=lambda c: Frames(),
               reporter_factory=lambda c: reporters.append(FakeReporter()) or reporters[-1])
    d.start()
    good = model.read_bytes()

    def inject(d):
        wait_for(lambda: d.stats.frames >= 16, what="frames with the good model")
        with open(model, "r+b") as fh:  # same size, flipped bytes in the weights: in place
            data = bytearray(good)
            for i in range(len(data) // 2, len(data), 5):
                data[i] ^= 0x5A
            fh.write(data)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: d.failed_reloads == 1, what="the first rejected reload")
        with open(model, "wb") as fh:  # and cut short: the mapping of the old file would SIGBUS
            fh.write(b"corrupt")
        n = d.stats.frames
        wait_for(lambda: d.stats.frames >= n + 16, what="frames after the truncation")
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: d.failed_reloads == 2, what="the second rejected reload")
        tmp = model.with_suffix(".new")  # the right way: a new file renamed over the old
        tmp.write_bytes(good)
        os.replace(tmp, model)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_for(lambda: d.reloads == 1, what="the good reload")

    d.install_signal_handlers()
    first_model = d.model
    assert run_with_faults(d, inject, max_frames=400) == 0
    assert d.failed_reloads == 2 and d.reloads == 1 and d.model is not first_model
    results = reporters[0].results
    assert [r.sequence for r in results] == list(range(400))  # never stopped serving
    # Same frame, same answer, before and after the corrupt pushes: the old model never changed.
    by_frame = {}
    for i, r in enumerate(results):
        by_frame.setdefault(i % len(images), set()).add((r.class_id, round(r.confidence, 6)))
    assert all(len(answers) == 1 for answers in by_frame.values()), by_frame
    texts = reporters[0].texts
    rejected = [t for t in texts if t.startswith("reload rejected, keeping m.hbn")]
    assert len(rejected) == 2 and "checksum" in rejected[0] and "truncated" in rejected[1]
    assert rejected[1].startswith("reload rejected, keeping m.hbn: m.hbn: Expected")  # no folder for the FC
    assert any(t.startswith("reloaded: model m.hbn") for t in texts)
    assert d.summary()["faults"]["failed_reloads"] == 2
    show("corrupt model + SIGHUP, twice, then a good one (400 results, same answers throughout)",
         d.summary()["faults"], texts)


@pytest.mark.no_emulation
def test_sigterm_during_inference_finishes_the_frame_and_flushes_the_link(tmp_path, model, pty_pair):
    """SIGTERM lands while the model runs: that frame's result still goes out, the link is
    flushed and closed, nothing queued is lost, exit status 0."""
    from edge import Interpreter
    from edge.daemon import load_model_snapshot

    cfg = write_config(tmp_path, "synthetic:28x28", link=pty_pair.url, protocol="frames", max_fps=200)
    fc = FlightController(pty_pair, "frames")
    inside = {}

    class SignalledInterpreter(Interpreter):
        def invoke(self):
            inside["calls"] = inside.get("calls", 0) + 1
            if inside["calls"] == 41:  # 1 smoke test at load + 40 frames, then the signal
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.02)  # the handler runs in here, mid-inference
                inside["stop_seen_during_invoke"] = d._stop
            super().invoke()

    d = Daemon(cfg, notifier=Recorder(),
               interpreter_factory=lambda p, t: SignalledInterpreter(load_model_snapshot(p), num_threads=1))
    d.start()
    d.install_signal_handlers()
    assert d.run() == 0
    fc.stop()
    assert inside["stop_seen_during_invoke"] is True
    assert d.stats.frames == 40  # the interrupted frame counted and reported, no more after it
    link = d.summary()["link"]
    assert link["results_in"] == 40 and link["drops_on_close"] == link["drops_link_down"] == 0
    assert link["drops"] == link["drops_queue_full"]  # only "newest wins" under CPU load, if any
    seqs = [r.sequence for r in fc.results()]
    assert len(seqs) == link["results_sent"] and seqs[-1] == 39  # the interrupted frame's result
    show(f"SIGTERM inside invoke() (last result at the FC: #{seqs[-1]})", d.summary()["faults"], link=link)
    assert "STOPPING=1" in d.notifier.messages


@pytest.mark.no_emulation
def test_disk_full_for_the_stats_file_is_counted_and_survived(tmp_path, model, pty_pair, monkeypatch):
    """The stats file's disk fills up (ENOSPC after a partial write) and frees up again."""
    import edge.daemon as daemon_mod

    full = threading.Event()
    real_write = daemon_mod._write_text

    def write_text(path, text):
        if full.is_set():
            with open(path, "w") as fh:
                fh.write(text[: len(text) // 2])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
        real_write(path, text)
    monkeypatch.setattr(daemon_mod, "_write_text", write_text)
    stats_path = tmp_path / "run" / "stats.json"
    stats_path.parent.mkdir()
    cfg = write_config(tmp_path, "synthetic:28x28", link=pty_pair.url, max_fps=300,
                       extra=f'stats_file = "{stats_path}"')
    fc = FlightController(pty_pair)
    d = Daemon(cfg, notifier=Recorder())
    d.start()
    seen = {}

    def inject(d):
        wait_for(lambda: d.stats_file.writes >= 2, what="stats written")
        full.set()
        wait_for(lambda: d.stats_file.errors >= 3, what="failed stats writes")
        # The reader still finds the last complete snapshot, never a half-written file.
        seen["during"] = json.loads(stats_path.read_text())
        assert not (stats_path.parent / "stats.json.tmp").exists()
        full.clear()
        n = d.stats_file.writes
        wait_for(lambda: d.stats_file.writes > n, what="a stats write after the disk freed up")

    assert run_with_faults(d, inject, max_frames=150) == 0
    fc.stop()
    final = json.loads(stats_path.read_text())
    assert final["state"] == "stopped" and final["frames"] == 150
    assert final["faults"]["stats_write_errors"] == d.stats_file.errors >= 3
    assert seen["during"]["state"] == "running" and seen["during"]["faults"]["stats_write_errors"] == 0
    texts = fc.texts()
    assert any(t.startswith("stats file write failed (ENOSPC") for t in texts)
    assert any(t.startswith("stats file ") and "written again" in t for t in texts)
    link = final["link"]  # results unaffected
    assert link["results_in"] == 150 and link["drops"] == link["drops_queue_full"]
    assert len(fc.results()) == link["results_sent"]
    show("stats file on a full disk (ENOSPC), then freed", final["faults"], texts, link)


class FillableStream:
    """stdout on a disk that can fill up: while ``full`` is set every write raises ENOSPC."""

    def __init__(self):
        self.full = False
        self.lines = []

    def write(self, text):
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.lines.append(text)
        return len(text)

    def flush(self):
        if self.full:
            raise OSError(errno.ENOSPC, "No space left on device")


@pytest.mark.no_emulation
def test_disk_full_for_the_log_is_counted_and_survived(tmp_path, model, pty_pair, monkeypatch):
    import io

    stream, err = FillableStream(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", stream)
    monkeypatch.setattr(sys, "stderr", err)
    cfg = write_config(tmp_path, "synthetic:28x28", link=pty_pair.url, max_fps=300)
    fc = FlightController(pty_pair)
    d = Daemon(cfg, notifier=Recorder())
    d.start()

    def inject(d):
        wait_for(lambda: len(stream.lines) >= 3, what="log lines")
        stream.full = True
        wait_for(lambda: d._log.errors >= 5, what="lost log lines")
        stream.full = False
        wait_for(lambda: any("log writes work again" in line for line in stream.lines), what="recovery line")

    assert run_with_faults(d, inject, max_frames=150) == 0
    fc.stop()
    lost = d.summary()["faults"]["log_write_errors"]
    assert lost >= 5
    assert "Logging error" not in err.getvalue()  # counted, not a traceback per line
    texts = fc.texts()
    assert any(t.startswith("log writes failing (ENOSPC") for t in texts)
    assert any(t.startswith("log writes work again") for t in texts)
    assert any(f"log lines lost {lost}" in line for line in stream.lines[-1:])  # the "stopped:" line
    link = d.summary()["link"]
    assert link["results_in"] == 150 and link["drops"] == link["drops_queue_full"]
    assert len(fc.results()) == link["results_sent"]
    monkeypatch.undo()  # stdout back, for show()
    show("log stream on a full disk (ENOSPC), then freed", d.summary()["faults"], texts, link)


# ---- the real `hbnn daemon` process -----------------------------------------------------------
def _start_daemon(cfg, tmp_path, stdout):
    addr = str(tmp_path / "notify.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(addr)
    server.settimeout(0.2)
    env = dict(os.environ, NOTIFY_SOCKET=addr)
    proc = subprocess.Popen([sys.executable, "-m", "hbnn.cli", "daemon", "--config", str(cfg)],
                            stdout=stdout, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    got = []
    deadline = time.monotonic() + 30
    while "READY=1" not in got:
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1]
        try:
            got.append(server.recv(4096).decode())
        except socket.timeout:
            pass
    server.close()
    return proc


def _stats(path):
    for _ in range(50):  # replaced atomically, but it may not exist yet
        try:
            return json.loads(Path(path).read_text())
        except (OSError, ValueError):
            time.sleep(0.02)
    raise AssertionError(f"no stats file at {path}")


@pytest.mark.no_emulation
def test_daemon_process_fault_drill(tmp_path, model, pty_pair):
    """The real process: a truncated model pushed with SIGHUP, the link pulled and put back, the
    disk "full" for logs and stats (RLIMIT_FSIZE dropped to 0 under the running process, so every
    file write fails in the kernel with EFBIG), then SIGTERM. It serves throughout and exits 0."""
    stats_path = tmp_path / "stats.json"
    cfg = write_config(tmp_path, "synthetic:28x28", link=pty_pair.url, max_fps=300,
                       extra=f'stats_file = "{stats_path}"')
    fc = FlightController(pty_pair)
    log_path = tmp_path / "daemon.log"
    with open(log_path, "w") as log_file:
        proc = _start_daemon(cfg, tmp_path, log_file)
    try:
        wait_for(lambda: _stats(stats_path)["frames"] >= 30, what="frames")
        model.write_bytes(model.read_bytes()[:1000])  # in place, cut short: SIGBUS before the fix
        proc.send_signal(signal.SIGHUP)
        wait_for(lambda: _stats(stats_path)["faults"]["failed_reloads"] == 1, what="rejected reload")
        n = _stats(stats_path)["frames"]
        wait_for(lambda: _stats(stats_path)["frames"] >= n + 30, what="frames after the bad push")

        fc.unplug()
        wait_for(lambda: _stats(stats_path)["faults"]["link_down"], what="link loss noticed")
        time.sleep(0.1)
        fc.replug()
        wait_for(lambda: not _stats(stats_path)["faults"]["link_down"], what="reconnect")

        soft, hard = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, hard))  # the disk is full
        time.sleep(0.4)
        full_at = _stats(stats_path)["frames"]
        resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (soft, hard))
        wait_for(lambda: _stats(stats_path)["frames"] > full_at, what="stats written again")
        wait_for(lambda: "log writes work again" in log_path.read_text(), what="log written again")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    fc.stop()
    log_text = log_path.read_text()
    assert proc.returncode == 0, (err, log_text[-2000:])
    assert "Traceback" not in err and "Logging error" not in err, err
    final = _stats(stats_path)
    f = final["faults"]
    assert final["state"] == "stopped" and final["frames"] >= 60
    assert f["failed_reloads"] == 1 and f["link_outages"] == 1 and f["reloads"] == 0
    assert f["log_write_errors"] >= 1 and f["stats_write_errors"] >= 1
    link = final["link"]
    assert link["results_in"] == final["frames"] == link["results_sent"] + link["drops"]
    assert f["results_lost_link_down"] == link["drops_link_down"] > 0
    texts = fc.texts()
    for prefix in ("running m.hbn", "reload rejected, keeping m.hbn", "link lost", "link back after",
                   "log writes failing (EFBIG", "log writes work again", "stats file write failed (EFBIG"):
        assert any(t.startswith(prefix) for t in texts), (prefix, texts)
    assert any(t.startswith("stats file ") and "written again" in t for t in texts), texts
    assert "ERROR hbnn.daemon: reload rejected" in log_text and "truncated" in log_text
    assert "log writes work again" in log_text and "INFO hbnn.daemon: stopped: frames" in log_text
    # Results kept flowing through every fault except the link outage itself.
    assert len(fc.results()) >= link["results_sent"] - 2
    show(f"process drill, exit status {proc.returncode}, {final['frames']} frames, {len(fc.results())} results "
         "decoded at the FC", f, texts, link)


@pytest.mark.no_emulation
def test_daemon_process_with_stdout_on_a_full_disk(tmp_path, model, pty_pair):
    """stdout is /dev/full (every write: ENOSPC). The daemon serves, says so to the autopilot,
    counts the lost lines, prints no traceback per line and still exits 0 on SIGTERM."""
    stats_path = tmp_path / "stats.json"
    cfg = write_config(tmp_path, "synthetic:28x28", link=pty_pair.url, max_fps=300,
                       extra=f'stats_file = "{stats_path}"')
    fc = FlightController(pty_pair)
    with open("/dev/full", "w") as full:
        proc = _start_daemon(cfg, tmp_path, full)
    try:
        wait_for(lambda: _stats(stats_path)["faults"]["log_write_errors"] >= 3, what="lost log lines")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    fc.stop()
    assert proc.returncode == 0 and err == "", err
    final = _stats(stats_path)
    assert final["state"] == "stopped" and final["faults"]["log_write_errors"] >= 3
    assert any(t.startswith("log writes failing (ENOSPC") for t in fc.texts())
    assert len(fc.results()) == final["link"]["results_sent"] > 0
    show(f"process with stdout on /dev/full, exit status {proc.returncode}, stderr {err!r}", final["faults"],
         fc.texts(), final["link"])


# ---- the config knobs the faults need ---------------------------------------------------------
def test_stats_file_max_fps_and_key_paths_in_the_config(tmp_path):
    from edge.daemon_config import DaemonConfigError, load_config, parse_config

    path = tmp_path / "d.toml"
    path.write_text('[model]\npath = "m.hbn"\n[source]\nspec = "synthetic"\nmax_fps = 30\n'
                    '[link]\nurl = "loop://"\n[link.options]\nsigning_key_file = "link.key"\n'
                    '[daemon]\nstats_file = "run/stats.json"\n')
    cfg = load_config(path)
    assert cfg.max_fps == 30.0 and cfg.stats_file == str(tmp_path / "run" / "stats.json")
    assert cfg.link_options["signing_key_file"] == str(tmp_path / "link.key")
    base = {"model": {"path": "m"}, "source": {"spec": "s"}}
    assert parse_config(base).stats_file is None and parse_config(base).max_fps == 0
    assert parse_config({**base, "daemon": {"stats_file": ""}}).stats_file is None
    with pytest.raises(DaemonConfigError, match="max_fps"):
        parse_config({"model": {"path": "m"}, "source": {"spec": "s", "max_fps": -1}})


def test_a_model_path_that_is_a_pipe_is_refused_not_waited_on(tmp_path):
    from edge.daemon import load_model_snapshot
    from edge.format import ModelFormatError

    fifo = tmp_path / "m.hbn"
    os.mkfifo(fifo)
    with pytest.raises(ModelFormatError, match="regular model file"):
        load_model_snapshot(str(fifo))
    with pytest.raises(ModelFormatError, match="readable model file"):
        load_model_snapshot(str(tmp_path / "missing.hbn"))
    snap = load_model_snapshot(str(BUNDLED))
    assert snap.path == str(BUNDLED)  # the user's path, not /proc/self/fd/N


def test_corrupt_or_vanished_source_files_are_source_errors(tmp_path):
    """`hbnn infer` and the daemon both see SourceError (a clean message), never zipfile/numpy errors."""
    from edge.sources import CameraUnavailable, SourceError, open_source

    (tmp_path / "cut.npz").write_bytes((BUNDLED_CLIP).read_bytes()[:3000])
    with pytest.raises(SourceError, match="readable .npz clip"):
        open_source(f"npz:{tmp_path / 'cut.npz'}").open()
    frames = tmp_path / "imgs"
    frames.mkdir()
    np.save(frames / "0.npy", np.zeros((28, 28), np.uint8))
    (frames / "1.npy").write_bytes(b"\x93NUMPY garbage")
    (frames / "2.pgm").write_bytes(b"P5 28 28")
    src = open_source(f"images:{frames}").open()
    assert src.read().image.shape == (28, 28)
    for _ in range(2):
        with pytest.raises(SourceError, match="valid image file"):
            src.read()
        src._index += 1
    src = open_source(f"images:{frames}").open()
    (frames / "0.npy").unlink()
    with pytest.raises(CameraUnavailable, match="FileNotFoundError"):
        src.read()

"""``hbnn daemon``: source -> model -> bridge, for systemd on the drone.

Survival rules: SIGTERM/SIGINT stop cleanly (link flushed and closed); SIGHUP reloads the
config and the model atomically (everything new is built and checked first; any failure
leaves the old set running); a lost camera is reopened with exponential backoff and a
status message to the autopilot; an unusable frame is counted and skipped. Readiness,
watchdog pings and a status string go to systemd over ``NOTIFY_SOCKET``. Signal handlers
only set flags: all work happens in the main loop.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Callable, Optional

import numpy as np

from .daemon_config import ConfigError, DaemonConfig, load_config
from .loop import InferenceLoop, LoopStats
from .preprocess import FrameError
from .capture import LatestFrameGrabber
from .sources import Frame, FrameSource, SourceError, open_source

log = logging.getLogger("hbnn.daemon")


class DaemonError(RuntimeError):
    """The daemon cannot start (no working model or link)."""


class SystemdNotifier:
    """sd_notify(3) over the ``NOTIFY_SOCKET`` datagram socket; a no-op outside systemd."""

    def __init__(self, env=None):
        env = os.environ if env is None else env
        addr = env.get("NOTIFY_SOCKET", "")
        self.address = "\0" + addr[1:] if addr.startswith("@") else addr  # '@' = abstract namespace
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        mine = not pid or pid == str(os.getpid())
        # Ping at half the deadline, as sd_watchdog_enabled(3) recommends.
        self.watchdog_interval = int(usec) / 2e6 if usec.isdigit() and int(usec) > 0 and mine else None
        self._last_ping = 0.0

    def notify(self, message: str) -> bool:
        if not self.address:
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self.address)
                sock.sendall(message.encode())
            return True
        except OSError as exc:  # systemd gone or socket unwritable: never fatal
            log.debug("sd_notify failed: %s", exc)
            return False

    def watchdog(self, now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        if self.watchdog_interval is not None and now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            self.notify("WATCHDOG=1")


def setup_logging(level: str = "info", stream=None) -> None:
    """Levels to stdout; under journald each line carries its syslog priority prefix."""
    stream = sys.stdout if stream is None else stream
    handler = logging.StreamHandler(stream)
    if os.environ.get("JOURNAL_STREAM"):
        prio = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

        class _Journal(logging.Formatter):
            def format(self, record):
                return f"<{prio.get(record.levelno, 6)}>{super().format(record)}"
        handler.setFormatter(_Journal("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("hbnn")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False


def _default_interpreter(path: str, threads: int):
    from . import Interpreter  # lazy: pulls in the kernels
    return Interpreter(path, num_threads=threads or (os.cpu_count() or 1))  # 0 = all cores


def _default_reporter(cfg: DaemonConfig):
    from firmware_bridge import open_reporter
    # A flight controller that boots after us is normal: the bridge keeps reconnecting in the
    # background instead of failing (link.options.require_link = true restores strictness).
    options = {"require_link": False, **cfg.link_options}
    return open_reporter(cfg.link_url, protocol=cfg.protocol, **options)


class Daemon:
    """The long-running service. Factories are injectable so tests drive the real logic."""

    def __init__(self, config_path, *, interpreter_factory: Callable = _default_interpreter,
                 reporter_factory: Callable = _default_reporter,
                 source_factory: Callable[[DaemonConfig], FrameSource] = lambda c: open_source(
                     c.source, loop=c.loop_source),
                 notifier: Optional[SystemdNotifier] = None):
        self.config_path = config_path
        self._make_interpreter = interpreter_factory
        self._make_reporter = reporter_factory
        self._make_source = source_factory
        self.notifier = notifier or SystemdNotifier()
        self.config: Optional[DaemonConfig] = None
        self.model: Optional[InferenceLoop] = None
        self.reporter = None
        self.source: Optional[FrameSource] = None
        self._grabber: Optional[LatestFrameGrabber] = None
        self._source_open = False
        self.stats = LoopStats()
        self.reloads = self.failed_reloads = self.camera_losses = self.model_errors = 0
        self._stop = False
        self._reload = False
        self._wake = threading.Event()
        self._retry_delay = 0.0
        self._retry_at = 0.0
        self._last_frame = time.monotonic()

    # -- signals (flags only; async-signal-safe enough for CPython) --------------------------
    def request_stop(self, *_):
        self._stop = True
        self._wake.set()

    def request_reload(self, *_):
        self._reload = True
        self._wake.set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        signal.signal(signal.SIGHUP, self.request_reload)

    # -- building blocks --------------------------------------------------------------------
    def _load_model(self, cfg: DaemonConfig) -> InferenceLoop:
        """Load and smoke-test a model: one invoke on a blank frame must give finite output."""
        model = InferenceLoop(self._make_interpreter(cfg.model, cfg.threads), topk=cfg.topk, crop=cfg.crop)
        h, w, c = model.pre.shape
        result = model.infer(Frame(np.zeros((h, w, c), np.uint8), 0, 0))
        if not np.isfinite(result.confidence):
            raise DaemonError(f"Expected finite output from {cfg.model}, got {result.confidence}")
        model.sequence = 0
        return model

    def _open_link(self, cfg: DaemonConfig):
        return self._make_reporter(cfg) if cfg.link_url else None

    def _status(self, text: str, level=logging.INFO) -> None:
        """Log, tell systemd, and tell the autopilot (STATUSTEXT) when a link is up."""
        log.log(level, text)
        self.notifier.notify(f"STATUS={text}")
        if self.reporter is not None and level >= logging.WARNING:
            try:
                # The bridge splits texts longer than one STATUSTEXT (50 chars) into chunks.
                self.reporter.status_text(text, severity="error" if level >= logging.ERROR else "warning")
            except Exception as exc:  # the link must never take the daemon down
                log.debug("status_text failed: %s", exc)

    def start(self) -> None:
        """Load config, model and link; the camera is opened by the loop (with retries)."""
        try:
            cfg = load_config(self.config_path)
        except ConfigError as exc:
            raise DaemonError(str(exc)) from exc
        setup_logging(cfg.log_level)
        try:
            self.model = self._load_model(cfg)
        except Exception as exc:
            raise DaemonError(f"Expected a runnable model at {cfg.model}, got {type(exc).__name__}: {exc}") \
                from exc
        try:
            self.reporter = self._open_link(cfg)
        except Exception as exc:
            raise DaemonError(f"Expected to open link {cfg.link_url!r}, got {type(exc).__name__}: {exc}") \
                from exc
        try:
            self.source = self._make_source(cfg)
        except SourceError as exc:  # a bad spec; a missing camera only shows at open()
            raise DaemonError(str(exc)) from exc
        self.config = cfg
        log.info("model %s (%d threads), source %s, link %s", cfg.model, cfg.threads, cfg.source,
                 cfg.link_url or "none (log only)")

    # -- reload -----------------------------------------------------------------------------
    def reload(self) -> bool:
        """Swap in the new config + model + link, or keep everything old. True when swapped."""
        self._reload = False
        self.notifier.notify("RELOADING=1")
        new_link = None
        try:
            cfg = load_config(self.config_path)
            model = self._load_model(cfg)
            link_changed = (cfg.link_url, cfg.protocol, cfg.link_options) != (
                self.config.link_url, self.config.protocol, self.config.link_options)
            source_changed = (cfg.source, cfg.loop_source) != (self.config.source, self.config.loop_source)
            new_source = self._make_source(cfg) if source_changed else None  # checks the spec
            if link_changed:
                new_link = self._open_link(cfg)
        except Exception as exc:
            if new_link is not None:
                new_link.close()
            self.failed_reloads += 1
            self._status(f"reload rejected, keeping {os.path.basename(self.config.model)}: {exc}",
                         logging.ERROR)
            self.notifier.notify("READY=1")
            return False
        old_link = self.reporter
        model.sequence = self.model.sequence  # the autopilot sees one continuous result stream
        self.config, self.model = cfg, model
        if link_changed:
            self.reporter = new_link
            if old_link is not None:
                old_link.close()
        if source_changed:
            self._close_source()
            self.source = new_source
            self._retry_delay = self._retry_at = 0.0
        setup_logging(cfg.log_level)
        self.reloads += 1
        self._status(f"reloaded: model {os.path.basename(cfg.model)}, source {cfg.source}")
        self.notifier.notify("READY=1")
        return True

    # -- camera -----------------------------------------------------------------------------
    def _close_source(self) -> None:
        self._source_open = False
        if self._grabber is not None:
            self._grabber.stop(timeout=0.5)
            self._grabber = None
        if self.source is not None:
            try:
                self.source.close()
            except Exception as exc:
                log.debug("closing source: %s", exc)

    def _camera_lost(self, reason: str) -> None:
        self._close_source()
        self.source = self._make_source(self.config)
        cfg = self.config
        self._retry_delay = cfg.retry_initial_s if not self._retry_delay else min(
            self._retry_delay * 2, cfg.retry_max_s)
        self._retry_at = time.monotonic() + self._retry_delay
        # Delay first: a ground station showing only the first STATUSTEXT chunk still gets it.
        self._status(f"camera lost, retry in {self._retry_delay:.2f} s: {reason}", logging.WARNING)

    def _ensure_source(self) -> bool:
        """Open the camera if needed (respecting backoff). True when frames can be read."""
        if self._source_open:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            self.source.open()
        except SourceError as exc:
            self.camera_losses += 1
            self._camera_lost(str(exc))
            return False
        self._source_open = True
        if self.source.live:
            self._grabber = LatestFrameGrabber(self.source).start()
        if self._retry_delay:
            self._status(f"camera back: {self.config.source}", logging.WARNING)
        self._retry_delay = 0.0
        self._last_frame = time.monotonic()
        return True

    def _next_frame(self) -> Optional[Frame]:
        """A frame, or None when there is none right now. Sets _stop at end of a file source."""
        try:
            if self._grabber is not None:
                frame = self._grabber.get(timeout=0.2)
            else:
                frame = self.source.read()
        except TimeoutError:
            if time.monotonic() - self._last_frame > self.config.frame_timeout_s:
                self.camera_losses += 1
                self._camera_lost(f"no frame for {self.config.frame_timeout_s:g} s")
            return None
        except SourceError as exc:
            self.camera_losses += 1
            self._camera_lost(str(exc))
            return None
        if frame is None:
            self._status(f"source {self.config.source} ended; stopping")
            self._stop = True
            return None
        self._last_frame = time.monotonic()
        return frame

    # -- main loop --------------------------------------------------------------------------
    def step(self) -> None:
        """One turn of the loop: reload if asked, ping, get a frame, infer, report."""
        if self._reload:
            self.reload()
        self.notifier.watchdog()
        if not self._ensure_source():
            self._wake.wait(max(0.0, min(0.2, self._retry_at - time.monotonic())))
            self._wake.clear()
            return
        frame = self._next_frame()
        if frame is None:
            return
        if self._grabber is not None:
            self.stats.dropped = self._grabber.dropped
        try:
            result = self.model.infer(frame)
        except FrameError as exc:
            self.stats.bad_frames += 1
            if self.stats.bad_frames == 1 or self.stats.bad_frames % 100 == 0:
                log.warning("bad frame %d skipped (%d so far): %s", frame.index, self.stats.bad_frames, exc)
            return
        except Exception as exc:  # a runtime failure on one frame must not kill the service
            self.model_errors += 1
            log.error("inference failed on frame %d: %s: %s", frame.index, type(exc).__name__, exc)
            return
        self.stats.frames += 1
        self.stats.latency.add(result.latency_ms)
        if self.reporter is not None:
            self.reporter.report(result)
        log.debug("frame %d -> %s %.3f (%.2f ms)", frame.index, result.label, result.confidence,
                  result.latency_ms)

    def run(self, max_frames: Optional[int] = None) -> int:
        """Serve until stopped. Returns the process exit status (0 = clean stop)."""
        if self.model is None:
            self.start()
        self.notifier.notify("READY=1")
        self._status(f"running {os.path.basename(self.config.model)} on {self.config.source}")
        next_status = time.monotonic() + self.config.status_interval_s
        try:
            while not self._stop and (max_frames is None or self.stats.frames < max_frames):
                self.step()
                if time.monotonic() >= next_status:
                    line = self.stats.status_line()
                    log.info("%s", line)
                    self.notifier.notify(f"STATUS={line}")
                    next_status = time.monotonic() + self.config.status_interval_s
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Stop capture, flush and close the link, tell systemd; safe to call twice."""
        self.notifier.notify("STOPPING=1")
        self._close_source()
        if self.reporter is not None:
            try:
                self.reporter.close()  # the bridge flushes queued results on close
            except Exception as exc:
                log.error("closing link: %s", exc)
            self.reporter = None
        log.info("stopped: %s", self.stats.status_line())

"""``hbnn daemon``: source -> model -> bridge, for systemd on the drone.

Survival rules: SIGTERM/SIGINT stop cleanly (link flushed and closed); SIGHUP reloads the
config and the model atomically (everything new is built and checked first; any failure
leaves the old set running); a lost camera is reopened with exponential backoff and a
status message to the autopilot; an unusable frame is counted and skipped. Readiness,
watchdog pings and a status string go to systemd over ``NOTIFY_SOCKET``. Signal handlers
only set flags: all work happens in the main loop.

Faults (docs/RELIABILITY.md): each one is logged, sent to the autopilot as a STATUSTEXT
(queued by the bridge while the link itself is down) and counted in :meth:`Daemon.summary`,
which the status line, the optional ``stats_file`` and the final "stopped:" line report:
camera lost/back (``camera_losses``, ``camera_outage_s``), link lost/back
(``link_outages``, ``link_outage_s``, ``results_lost_link_down``: results produced while the
link was down), a rejected reload (``failed_reloads``), a frame the model failed on
(``model_errors``), log or stats-file writes failing, e.g. on a full disk
(``log_write_errors``, ``stats_write_errors``; never fatal). The model runs from a private
in-memory snapshot of its file, so a model file overwritten in place under the running
daemon (``cp``, ``scp``) changes nothing until a reload has checked the new one.
"""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from typing import Any, Callable, Dict, Optional

import numpy as np

from .daemon_config import DaemonConfig, load_config
from .errors import BadFrameError, DaemonConfigError, DaemonError, SourceError
from .loop import InferenceLoop, LoopStats, bad_frame_worth_logging
from .capture import LatestFrameGrabber
from .sources import Frame, FrameSource, open_source

log = logging.getLogger("hbnn.daemon")




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


class CountingStreamHandler(logging.StreamHandler):
    """A StreamHandler for which a failed write (disk full, closed pipe) is counted, not fatal.

    logging's default prints a traceback to stderr for every failed record; on a full disk
    that is one more failing write per line. Here failures only bump ``errors`` (lines lost)
    and set ``failing`` until a write succeeds again; the daemon reports both.
    """

    def __init__(self, stream=None):
        super().__init__(stream)
        self.errors = 0
        self.failing = False
        self.last_error = ""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            self.stream.write(msg + self.terminator)
            self.flush()
        except RecursionError:  # as logging does: a bug, not an I/O fault
            raise
        except Exception as exc:  # noqa: BLE001 - OSError (ENOSPC, EPIPE), ValueError (closed file)
            self.errors += 1
            self.failing = True
            self.last_error = _os_error_text(exc)
        else:
            self.failing = False

    def release_stream(self) -> None:
        """Before exit: if buffered lines cannot be flushed, drop them (else Python exits 120)."""
        try:
            self.stream.flush()
            return
        except Exception:  # noqa: BLE001
            self.errors += 1
        try:
            fd = os.open(os.devnull, os.O_WRONLY)
            try:
                os.dup2(fd, self.stream.fileno())
            finally:
                os.close(fd)
            self.stream.flush()
        except Exception:  # noqa: BLE001 - not a real file (tests), nothing more to do
            pass


def _os_error_text(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return f"{errno.errorcode.get(exc.errno, exc.errno)} {exc.strerror or ''}".strip()
    return f"{type(exc).__name__}: {exc}"


def setup_logging(level: str = "info", stream=None) -> CountingStreamHandler:
    """Levels to stdout; under journald each line carries its syslog priority prefix.

    Called again (reload) with the same stream, the handler and its error counts are kept.
    """
    stream = sys.stdout if stream is None else stream
    root = logging.getLogger("hbnn")
    old = [h for h in root.handlers if isinstance(h, CountingStreamHandler) and h.stream is stream]
    handler = old[0] if old else CountingStreamHandler(stream)
    if os.environ.get("JOURNAL_STREAM"):
        prio = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3, logging.CRITICAL: 2}

        class _Journal(logging.Formatter):
            def format(self, record):
                return f"<{prio.get(record.levelno, 6)}>{super().format(record)}"
        handler.setFormatter(_Journal("%(name)s: %(message)s"))
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    return handler


class StatsFile:
    """The optional ``stats_file``: the daemon's summary as JSON, replaced atomically.

    Written to ``<path>.tmp`` and renamed over ``<path>``, so a reader never sees a half
    file; a failed write (disk full) leaves the previous snapshot in place, is counted in
    ``errors`` and is never fatal.
    """

    def __init__(self, path: str):
        self.path = path
        self.writes = self.errors = 0
        self.failing = False
        self.last_error = ""

    def write(self, data: Dict[str, Any]) -> bool:
        tmp = self.path + ".tmp"
        try:
            _write_text(tmp, json.dumps(data, indent=1, sort_keys=True, default=str) + "\n")
            os.replace(tmp, self.path)
        except OSError as exc:
            self.errors += 1
            self.failing = True
            self.last_error = _os_error_text(exc)
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        self.writes += 1
        self.failing = False
        return True


def _write_text(path: str, text: str) -> None:
    """The one place the stats file touches the disk (tests put a full disk here)."""
    with open(path, "w") as fh:
        fh.write(text)


def load_model_snapshot(path: str):
    """``edge.format.read_hbn`` on a private in-memory copy of ``path``.

    The runtime maps its model file instead of copying it. A file overwritten in place under
    a running process (``cp new.hbn model.hbn`` truncates and rewrites the same inode) would
    change the weights it runs with, and one cut shorter kills it with SIGBUS on the next
    frame. The snapshot (a sealed memfd, Linux) is immune: the file is read once, checked,
    and never looked at again until the next reload. Elsewhere, the file is read directly.
    """
    from .format import ModelFormatError, read_hbn

    if not os.path.isfile(path):
        if os.path.exists(path) and not os.path.isdir(path):  # a FIFO would block, a device never end
            raise ModelFormatError(f"{path}: Expected a regular model file, got a device or pipe")
        return read_hbn(path)  # raises ModelFormatError naming the problem
    try:
        fd = os.memfd_create("hbnn-model", os.MFD_CLOEXEC | getattr(os, "MFD_ALLOW_SEALING", 0))
    except (AttributeError, OSError):  # not Linux, or an old kernel
        return read_hbn(path)
    proc = f"/proc/self/fd/{fd}"
    try:
        with open(path, "rb") as src, open(fd, "wb", closefd=False) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        try:
            import fcntl
            fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE
                        | fcntl.F_SEAL_SEAL)
        except (AttributeError, OSError):  # pragma: no cover - sealing is a bonus, not required
            pass
        if not os.path.exists(proc):  # pragma: no cover - no /proc (chroot, odd container)
            return read_hbn(path)
        try:
            model = read_hbn(proc)
        except Exception as exc:  # name the user's file, not /proc/self/fd/N
            exc.args = tuple(a.replace(proc, path) if isinstance(a, str) else a for a in exc.args)
            raise
        model.path = path
        return model
    finally:
        os.close(fd)  # the mapping keeps the memory alive


def _default_interpreter(path: str, threads: int):
    from . import Interpreter  # lazy: pulls in the kernels
    return Interpreter(load_model_snapshot(path), num_threads=threads or (os.cpu_count() or 1))  # 0 = all


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
        # Fault bookkeeping (see the module docstring); *_since is None while things are fine.
        self.camera_outage_s = 0.0
        self._camera_down_since: Optional[float] = None
        self.link_outages = 0
        self.link_outage_s = 0.0
        self._link_seen_up = True
        self._link_down_since: Optional[float] = None
        self._link_drops_base = 0          # drops_link_down when the link last came back
        self._lost_on_old_links = 0      # drops_link_down of reporters replaced by a reload
        self._final_link: Optional[Dict[str, Any]] = None  # the closed reporter's last counters
        self._log: Optional[CountingStreamHandler] = None
        self._log_fault_reported = 0      # log errors already announced (0 = none pending)
        self.stats_file: Optional[StatsFile] = None
        self._stats_fault_active = False
        self._stop = False
        self._reload = False
        self._wake = threading.Event()
        self._retry_delay = 0.0
        self._retry_at = 0.0
        self._last_frame = time.monotonic()
        self._next_frame_at = 0.0

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

    def _status(self, text: str, level=logging.INFO, fc: Optional[bool] = None) -> None:
        """Log, tell systemd, and tell the autopilot (STATUSTEXT) when a link is up.

        ``fc``: send to the autopilot; by default only warnings and errors are sent.
        """
        log.log(level, text)
        self.notifier.notify(f"STATUS={text}")
        if self.reporter is not None and (level >= logging.WARNING if fc is None else fc):
            severity = "error" if level >= logging.ERROR else "warning" if level >= logging.WARNING else "notice"
            if self.config is not None:  # the autopilot gets at most 4 x 50 characters: file names only
                text = text.replace(os.path.dirname(self.config.model) + os.sep, "")
            try:
                # The bridge splits texts longer than one STATUSTEXT (50 chars) into chunks, and
                # keeps them (bounded) while the link is down.
                self.reporter.status_text(text, severity=severity)
            except Exception as exc:  # the link must never take the daemon down
                log.debug("status_text failed: %s", exc)

    def start(self) -> None:
        """Load config, model and link; the camera is opened by the loop (with retries)."""
        try:
            cfg = load_config(self.config_path)
        except DaemonConfigError as exc:
            raise DaemonError(str(exc)) from exc
        self._log = setup_logging(cfg.log_level)
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
        self.stats_file = StatsFile(cfg.stats_file) if cfg.stats_file else None
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
            self._end_link_outage(time.monotonic())
            self._lost_on_old_links += self._link_drops(old_link)
            self.reporter = new_link
            self._link_seen_up = True
            self._link_drops_base = 0
            if old_link is not None:
                old_link.close()
        if source_changed:
            self._close_source()
            self.source = new_source
            self._retry_delay = self._retry_at = 0.0
        if (cfg.stats_file or None) != (self.stats_file.path if self.stats_file else None):
            self.stats_file = StatsFile(cfg.stats_file) if cfg.stats_file else None
            self._stats_fault_active = False
        self._log = setup_logging(cfg.log_level)
        self.reloads += 1
        self._status(f"reloaded: model {os.path.basename(cfg.model)}, source {cfg.source}", fc=True)
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
        self.camera_losses += 1
        if self._camera_down_since is None:
            self._camera_down_since = time.monotonic()
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
        except Exception as exc:  # SourceError, or anything a driver raises: never fatal
            self._camera_lost(_describe(exc))
            return False
        self._source_open = True
        if self.source.live:
            self._grabber = LatestFrameGrabber(self.source).start()
        if self._camera_down_since is not None:
            outage = time.monotonic() - self._camera_down_since
            self.camera_outage_s += outage
            self._camera_down_since = None
            self._status(f"camera back after {outage:.1f} s: {self.config.source}", fc=True)
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
                self._camera_lost(f"no frame for {self.config.frame_timeout_s:g} s")
            return None
        except Exception as exc:  # SourceError, or OSError/ValueError from a file that vanished
            self._camera_lost(_describe(exc))
            return None
        if frame is None:
            self._status(f"source {self.config.source} ended; stopping")
            self._stop = True
            return None
        self._last_frame = time.monotonic()
        return frame

    # -- link, log and stats-file health ----------------------------------------------------
    @staticmethod
    def _link_drops(reporter) -> int:
        if reporter is None:
            return 0
        try:
            return int(reporter.stats().get("drops_link_down", 0))
        except Exception:  # noqa: BLE001 - a closed or fake reporter
            return 0

    def _check_link(self, now: float) -> None:
        """Announce link loss/recovery; cheap enough for every frame (one attribute read)."""
        up = getattr(self.reporter, "link_up", True)
        if up == self._link_seen_up:
            return
        self._link_seen_up = up
        stats = self.reporter.stats()
        if not up:
            self.link_outages += 1
            self._link_down_since = now
            # Queued by the bridge and sent once the link is back.
            self._status(f"link lost: {stats.get('last_error') or 'unknown error'}", logging.WARNING)
        else:
            # Everything dropped for a down link since it was last up: the results queued when it
            # failed, and those produced while it was down.
            dropped = int(stats.get("drops_link_down", 0))
            lost, self._link_drops_base = dropped - self._link_drops_base, dropped
            outage = self._end_link_outage(now)
            self._status(f"link back after {outage:.1f} s, {lost} results lost", logging.WARNING)

    def _end_link_outage(self, now: float) -> float:
        if self._link_down_since is None:
            return 0.0
        outage = now - self._link_down_since
        self.link_outage_s += outage
        self._link_down_since = None
        return outage

    def _check_log(self) -> None:
        """Announce failing log writes (disk full) once, and their recovery with the lines lost."""
        handler = self._log
        if handler is None:
            return
        if handler.failing and not self._log_fault_reported:
            self._log_fault_reported = handler.errors
            self._status(f"log writes failing ({handler.last_error}); lines are lost", logging.WARNING)
        elif not handler.failing and self._log_fault_reported:
            self._log_fault_reported = 0
            self._status(f"log writes work again; {handler.errors} lines lost so far", logging.WARNING)

    def _write_stats(self, state: str = "running") -> None:
        sf = self.stats_file
        if sf is None:
            return
        data = self.summary()
        data.update(state=state, time_unix=round(time.time(), 3), pid=os.getpid())
        if sf.write(data):
            if self._stats_fault_active:
                self._stats_fault_active = False
                self._status(f"stats file {sf.path} written again; {sf.errors} writes failed", logging.WARNING)
        elif not self._stats_fault_active:
            self._stats_fault_active = True
            self._status(f"stats file write failed ({sf.last_error}): {sf.path}", logging.WARNING)

    # -- reporting --------------------------------------------------------------------------
    def summary(self) -> Dict[str, Any]:
        """Frames, latency and every fault counter (``--json``-style; the stats file's content)."""
        now = time.monotonic()
        out = self.stats.summary()
        link = self._final_link
        if self.reporter is not None:
            try:
                link = self.reporter.stats()
            except Exception:  # noqa: BLE001
                link = None
        sf = self.stats_file
        handler = self._log
        out["model"] = self.config.model if self.config else None
        out["faults"] = {
            "camera_losses": self.camera_losses,
            "camera_down": self._camera_down_since is not None,
            "camera_outage_s": round(self.camera_outage_s + (
                now - self._camera_down_since if self._camera_down_since is not None else 0.0), 3),
            "link_outages": self.link_outages,
            "link_down": self._link_down_since is not None,
            "link_outage_s": round(self.link_outage_s + (
                now - self._link_down_since if self._link_down_since is not None else 0.0), 3),
            "results_lost_link_down": self._lost_on_old_links + (
                int(link.get("drops_link_down", 0)) if link else 0),
            "reloads": self.reloads,
            "failed_reloads": self.failed_reloads,
            "model_errors": self.model_errors,
            "bad_frames": self.stats.bad_frames,
            "log_write_errors": handler.errors if handler is not None else 0,
            "stats_write_errors": sf.errors if sf is not None else 0,
        }
        out["link"] = link
        return out

    def status_line(self) -> str:
        """The loop's status line plus the fault counters that are not zero."""
        f = self.summary()["faults"]
        parts = [self.stats.status_line()]
        if f["camera_losses"]:
            parts.append(f"camera lost {f['camera_losses']}x ({f['camera_outage_s']:.1f} s)")
        if f["link_outages"] or f["results_lost_link_down"]:
            parts.append(f"link lost {f['link_outages']}x ({f['link_outage_s']:.1f} s, "
                         f"{f['results_lost_link_down']} results lost)")
        for key, name in (("failed_reloads", "reloads rejected"), ("model_errors", "model errors"),
                          ("log_write_errors", "log lines lost"), ("stats_write_errors", "stats writes failed")):
            if f[key]:
                parts.append(f"{name} {f[key]}")
        return " | ".join(parts)

    # -- main loop --------------------------------------------------------------------------
    def step(self) -> None:
        """One turn of the loop: reload if asked, ping, get a frame, infer, report."""
        if self._reload:
            self.reload()
        self.notifier.watchdog()
        now = time.monotonic()
        if self.reporter is not None:
            self._check_link(now)
        self._check_log()
        if not self._ensure_source():
            self._wake.wait(max(0.0, min(0.2, self._retry_at - time.monotonic())))
            self._wake.clear()
            return
        if self.config.max_fps:
            if now < self._next_frame_at:
                self._wake.wait(self._next_frame_at - now)  # a signal wakes it at once
                self._wake.clear()
                return
            self._next_frame_at = now + 1.0 / self.config.max_fps
        frame = self._next_frame()
        if frame is None:
            return
        if self._grabber is not None:
            self.stats.dropped = self._grabber.dropped
        try:
            # Reported even when SIGTERM arrived during the inference: shutdown() flushes it out.
            result = self.model.step(frame, self.stats, self.reporter, self._bad_frame)
        except Exception as exc:  # a runtime failure on one frame must not kill the service
            self.model_errors += 1
            log.error("inference failed on frame %d: %s: %s", frame.index, type(exc).__name__, exc)
            return
        if result is None:
            return
        log.debug("frame %d -> %s %.3f (%.2f ms)", frame.index, result.label, result.confidence,
                  result.latency_ms)

    def _bad_frame(self, frame: Frame, exc: BadFrameError) -> None:
        if bad_frame_worth_logging(self.stats.bad_frames):
            log.warning("bad frame %d skipped (%d so far): %s", frame.index, self.stats.bad_frames, exc)

    def run(self, max_frames: Optional[int] = None) -> int:
        """Serve until stopped. Returns the process exit status (0 = clean stop)."""
        if self.model is None:
            self.start()
        self.notifier.notify("READY=1")
        self._status(f"running {os.path.basename(self.config.model)} on {self.config.source}", fc=True)
        self._write_stats()
        next_status = time.monotonic() + self.config.status_interval_s
        try:
            while not self._stop and (max_frames is None or self.stats.frames < max_frames):
                self.step()
                if time.monotonic() >= next_status:
                    line = self.status_line()
                    log.info("%s", line)
                    self.notifier.notify(f"STATUS={line}")
                    self._write_stats()
                    next_status = time.monotonic() + self.config.status_interval_s
        finally:
            self.shutdown()
        return 0

    def shutdown(self) -> None:
        """Stop capture, flush and close the link, tell systemd; safe to call twice."""
        self.notifier.notify("STOPPING=1")
        self._close_source()
        if self.reporter is not None:
            self._check_link(time.monotonic())
            try:
                self.reporter.close()  # the bridge flushes queued results on close
            except Exception as exc:
                log.error("closing link: %s", exc)
            try:  # its final counters (drops_on_close included) stay in the summary
                self._final_link = self.reporter.stats()
            except Exception:  # noqa: BLE001
                self._final_link = None
            self.reporter = None
        if self.config is not None:
            self._write_stats("stopped")
        log.info("stopped: %s", self.status_line())
        if self._log is not None:
            self._log.release_stream()


def _describe(exc: BaseException) -> str:
    """An exception as one status line: SourceErrors speak for themselves, others get their type."""
    return str(exc) if isinstance(exc, SourceError) and str(exc) else f"{type(exc).__name__}: {exc}"

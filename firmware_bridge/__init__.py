"""Report inference results to flight controllers (MAVLink 2) and bare MCUs (framed serial).

Runtime API
-----------
``InferenceResult(sequence, timestamp_us, class_id, confidence, topk=[], latency_ms=0.0, label=None)``
    One result, validated on construction (``InvalidResultError``): sequence
    uint32, timestamp_us uint64, class_id 0..65535, finite float32 confidences,
    ``topk`` up to 4 ``(class_id, confidence)`` pairs best first (DEBUG_VECT
    carries 3), latency_ms >= 0. ``label`` is never sent.

``open_reporter(url, protocol="mavlink" | "frames", **options) -> Reporter``
    ``url``: a device path (``/dev/ttyAMA0?baudrate=57600``; default 921600),
    ``loop://`` or ``socket://host:port`` (SITL). Raises ``LinkError`` if the
    device is absent, unless ``require_link=False`` (then it keeps retrying).
    Options: ``baudrate``; ``system_id`` (1), ``component_id`` (191,
    MAV_COMP_ID_ONBOARD_COMPUTER); ``names`` (up to 4 names of <= 10 chars:
    class, confidence, top-k ids, top-k confidences; default
    HBNN_CLS/HBNN_CONF/HBNN_TOPC/HBNN_TOPP); ``rate_hz`` (results per second,
    None = unlimited; when limited the newest result wins); ``heartbeat``
    (True = 1 Hz, a rate in Hz, False = off); ``debug_vect`` (send the top-3 as
    two DEBUG_VECTs: ids, confidences); ``signing_key_file`` (MAVLink 2
    signing; 32 raw bytes or 64 hex digits, see docs/PROTOCOL.md) and
    ``signing_link_id``; ``queue_size`` (4); ``status_rate_hz`` (2),
    ``status_repeat_s`` (10); ``on_message`` (callback for inbound messages,
    run on the I/O thread); ``reconnect_min_s``/``reconnect_max_s`` (backoff
    0.05 s doubling to 2 s). Unknown options raise ``LinkConfigError``; with
    ``frames``, signing and ``debug_vect`` are refused and the other MAVLink
    options are ignored.

``Reporter``
    ``report(result) -> bool`` never blocks on I/O: it queues (bounded; when
    full the oldest is dropped, newest wins) and returns False if the link is
    down (the result is dropped and counted). ``status_text(text,
    severity="info")`` sends STATUSTEXT (MAVLink; > 50 chars in chunks) or a
    STATUS frame (frames); repeats of the same text within ``status_repeat_s``
    are suppressed, since status texts are for state changes. ``flush(timeout)``
    waits until what is sendable has been written. ``close(timeout)`` sends
    what is queued, then closes the port; also a context manager. ``stats()``
    returns counters: ``results_in``, ``results_sent``, ``messages``,
    ``bytes``, ``heartbeats``, ``status_sent``, ``drops`` (sum of
    ``drops_queue_full``, ``drops_rate_limited``, ``drops_link_down``,
    ``drops_write``, ``drops_on_close``), ``reconnects``, ``link_up``,
    ``link_errors``, ``last_error``, ``rx_bytes``, ``rx_messages``,
    ``rx_errors`` (garbage skipped), ``rx_bad_signatures``,
    ``peer_heartbeats``, ``peer_alive`` (autopilot HEARTBEAT within 3 s),
    ``queue_depth``, ``queue_max``. After ``close()``,
    ``results_in == results_sent + drops``.

``Listener(link, protocol, on_message, *, baudrate, signing_key_file, autopilot_heartbeat_hz, reconnect)``
    The flight controller's side: ``run(stop_event, duration, count)``, or
    ``start()``/``stop()`` in a thread. ``link`` is a URL or a port object
    (``VirtualSerialPair().fc_port``). ``on_message`` gets InferenceResult /
    StatusMessage (frames) or pymavlink messages (mavlink); ``describe(msg)``
    formats one line. ``listen(link, protocol, on_message, stop_event,
    **options)`` is the blocking shorthand.

``VirtualSerialPair()``
    A pty standing in for the UART cable: give ``.url`` to the reporter and
    ``.fc_port`` to a Listener; ``unplug()``/``replug()`` simulate a cable
    wiggle. POSIX only.

Wire formats: docs/PROTOCOL.md. C decoder for MCUs: ``firmware_bridge/c/hbnn_frames.h``.
"""
from __future__ import annotations

from typing import Any

from .errors import BridgeError, LinkConfigError, FrameError, InvalidResultError, LinkError, SigningKeyError
from .frames import FrameDecoder, decode_frame, encode_result, encode_status
from .keyfile import load_signing_key
from .listener import Listener, listen
from .protocols import describe
from .reporter import Reporter, open_reporter
from .results import InferenceResult, StatusMessage

__all__ = [
    "BridgeError", "LinkConfigError", "FrameError", "InvalidResultError", "LinkError", "SigningKeyError",
    "FrameDecoder", "decode_frame", "encode_result", "encode_status", "load_signing_key",
    "Listener", "listen", "describe", "Reporter", "open_reporter", "InferenceResult", "StatusMessage",
    "VirtualSerialPair",
]


def __getattr__(name: str) -> Any:
    # ptylink needs termios (POSIX); load it only when asked for.
    if name == "VirtualSerialPair":
        from .ptylink import VirtualSerialPair
        return VirtualSerialPair
    raise AttributeError(f"module 'firmware_bridge' has no attribute {name!r}")

"""Shared fixtures of the edge tests."""
import signal

import pytest


@pytest.fixture(autouse=True)
def restore_signals():
    """Daemon tests install SIGTERM/SIGINT/SIGHUP handlers: put the previous ones back after each test."""
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)}
    yield
    for s, h in saved.items():
        signal.signal(s, h)

"""Fixtures for the firmware-bridge tests (helpers live in fb_helpers.py)."""
from __future__ import annotations

import pytest

from fb_helpers import FakeClock


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def pty_pair():
    from firmware_bridge.ptylink import VirtualSerialPair

    with VirtualSerialPair() as pair:
        yield pair

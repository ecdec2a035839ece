"""Short fuzz run of the framed-protocol decoder (FrameDecoder / decode_frame); docs: fuzz_frames.py.

2,000 seeded cases in the normal suite: the first SMOKE also run under emulation, the rest are
``slow``. The long run (scripts/fuzz-long) adds the C decoder differential.
"""
from __future__ import annotations

import pytest

from fuzz_core import campaign, check_clean
from fuzz_frames import FramesTarget

SEED = 7
SHORT = 2000
SMOKE = 200


@pytest.fixture(scope="module")
def target():
    return FramesTarget()


def test_frame_decoder_fuzz_smoke(target):
    check_clean(campaign(target, SEED, SMOKE))


@pytest.mark.slow
def test_frame_decoder_fuzz_short_run(target):
    tally = campaign(target, SEED, SHORT - SMOKE, start=SMOKE)
    print(tally.summary())
    check_clean(tally)
    assert {"decoded", "mixed", "rejected"} <= set(tally.outcomes)
    from firmware_bridge.frames import ERROR_CODES

    assert set(ERROR_CODES) <= set(tally.details)  # every documented error code was produced

"""Short fuzz run of the inbound MAVLink parser (MavlinkParser.feed); docs: fuzz_mavlink.py.

2,000 seeded cases in the normal suite: the first SMOKE also run under emulation, the rest are
``slow``.
"""
from __future__ import annotations

import pytest

from fuzz_core import campaign, check_clean
from fuzz_mavlink import MavlinkTarget

SEED = 7
SHORT = 2000
SMOKE = 200


@pytest.fixture(scope="module")
def target():
    return MavlinkTarget()


def test_mavlink_parser_fuzz_smoke(target):
    check_clean(campaign(target, SEED, SMOKE))


@pytest.mark.slow
def test_mavlink_parser_fuzz_short_run(target):
    tally = campaign(target, SEED, SHORT - SMOKE, start=SMOKE)
    print(tally.summary())
    check_clean(tally)
    assert {"decoded", "mixed", "rejected"} <= set(tally.outcomes)
    assert tally.details["bad_signature"] > 0 and tally.details["unknown_id"] > 0

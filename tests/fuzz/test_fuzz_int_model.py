"""Short fuzz run of the model loader on integer-scale models (fuzz_int_model.py): the new fields
(levels, factors, activation factor, int_scales, format 1.1) only ever load or raise ModelFormatError,
and every model that loads runs."""
from __future__ import annotations

import pytest

from fuzz_core import campaign, check_clean
from fuzz_int_model import IntModelTarget

SEED = 12
SMOKE = 60
SHORT = 600


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    t = IntModelTarget(folder=str(tmp_path_factory.mktemp("fuzz-int-model")))
    yield t
    t.close()


def test_int_model_loader_fuzz_smoke(target):
    tally = campaign(target, SEED, SMOKE)
    check_clean(tally)
    assert tally.outcomes["rejected"] > 0


@pytest.mark.slow
def test_int_model_loader_fuzz_short_run(target):
    tally = campaign(target, SEED, SHORT - SMOKE, start=SMOKE)
    print(tally.summary())
    check_clean(tally)
    assert tally.outcomes["loaded"] > 10
    stages = {k.split(":", 1)[1] for k in tally.details if k.startswith("rejected:")}
    assert {"checksum", "graph", "values"} <= stages

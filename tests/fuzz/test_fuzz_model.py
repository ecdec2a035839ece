"""Short fuzz run of the model loader (read_hbn): the long run is scripts/fuzz-long (docs: fuzz_model.py).

2,000 seeded cases in the normal suite: the first SMOKE also run under emulation, the rest are
``slow``. A failure prints the command that replays the case alone.
"""
from __future__ import annotations

import pytest

from fuzz_core import campaign, check_clean
from fuzz_model import ModelTarget

SEED = 7
SHORT = 2000
SMOKE = 60


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    t = ModelTarget(folder=str(tmp_path_factory.mktemp("fuzz-model")))
    yield t
    t.close()


def test_model_loader_fuzz_smoke(target):
    tally = campaign(target, SEED, SMOKE)
    check_clean(tally)
    assert tally.outcomes["rejected"] > 0


@pytest.mark.slow
def test_model_loader_fuzz_short_run(target):
    tally = campaign(target, SEED, SHORT - SMOKE, start=SMOKE)
    print(tally.summary())
    check_clean(tally)
    # The mix shows the structured mutators get past the checksum: loads, and rejections by
    # checks that sit behind the digest (graph, shapes, tensor set, values).
    assert tally.outcomes["loaded"] > 50
    stages = {k.split(":", 1)[1] for k in tally.details if k.startswith("rejected:")}
    assert {"header-length", "header-json", "metadata", "tensor-table", "checksum", "graph", "values"} <= stages

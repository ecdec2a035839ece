"""Fixtures for the converters tests."""
from __future__ import annotations

import pytest

from converters_fakes import make_dataset


@pytest.fixture(autouse=True)
def _one_torch_thread():
    # The test models are tiny: one thread is faster than two on a busy machine (no spin-waiting).
    try:
        import torch
    except ImportError:  # pragma: no cover
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def fake_fmnist(tmp_path):
    d = tmp_path / "fmnist"
    d.mkdir()
    data = make_dataset(d)
    return d, data

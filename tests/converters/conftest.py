"""Fixtures for the converters tests."""
from __future__ import annotations

import pytest

from converters_fakes import make_dataset


@pytest.fixture
def fake_fmnist(tmp_path):
    d = tmp_path / "fmnist"
    d.mkdir()
    data = make_dataset(d)
    return d, data

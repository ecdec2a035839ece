"""Betas from the command line (torch-free)."""
from __future__ import annotations

import pytest

from converters.betas import parse_beta, parse_layer_betas
from converters.errors import ConfigError


def test_parse_beta():
    assert parse_beta("inf") is None and parse_beta("16") == 16 and parse_beta(" 2 ") == 2
    for bad in ("0", "-3", "x", "1.5"):
        with pytest.raises(ConfigError, match="Expected a beta"):
            parse_beta(bad)


def test_parse_layer_betas():
    assert parse_layer_betas(["conv2=16,2", "fc1=inf,4"]) == {"conv2": (16, 2), "fc1": (None, 4)}
    assert parse_layer_betas([]) == {}
    for bad in (["conv2"], ["conv2=1"], ["conv2=a,b"], ["=2,2"]):
        with pytest.raises(ConfigError, match="Expected"):
            parse_layer_betas(bad)

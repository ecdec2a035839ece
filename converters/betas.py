"""Betas from the command line: ``inf`` or a positive int, and ``NAME=BW,BA`` per-layer pairs.

Kept free of torch so that commands which do not train (``hbnn convert model.tflite``,
``hbnn analyze angle``) work without the [train] extra.
"""
from __future__ import annotations

from typing import Dict, Sequence, Tuple

from cy_kernels.reference import Beta

from .errors import ConfigError


def parse_layer_betas(items: Sequence[str]) -> Dict[str, Tuple[Beta, Beta]]:
    """Parse ``NAME=BW,BA`` strings (``inf`` allowed) from the command line."""
    out = {}
    for item in items or ():
        name, sep, rest = item.partition("=")
        parts = rest.split(",")
        if not sep or not name or len(parts) != 2:
            raise ConfigError(f"Expected a layer beta as NAME=BETA_W,BETA_A (e.g. conv2=16,2), got {item!r}")
        out[name.strip()] = (parse_beta(parts[0]), parse_beta(parts[1]))
    return out


def parse_beta(text: str) -> Beta:
    """``inf`` -> None (one segment per row); otherwise a positive int."""
    t = str(text).strip().lower()
    if t in ("inf", "none", "infinity"):
        return None
    try:
        value = int(t)
    except ValueError:
        raise ConfigError(f"Expected a beta as an int >= 1 or 'inf', got {text!r}") from None
    if value < 1:
        raise ConfigError(f"Expected a beta >= 1 (or 'inf'), got {value}")
    return value

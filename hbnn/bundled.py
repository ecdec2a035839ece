"""Paths of the bundled model and demo clip: package data, so an installed wheel has them too."""
from __future__ import annotations

from pathlib import Path

MODELS = Path(__file__).resolve().parent / "models"
BUNDLED_MODEL = MODELS / "lenet-fmnist-bw16-ba2.hbn"
BUNDLED_CLIP = MODELS / "fmnist-test-clip.npz"

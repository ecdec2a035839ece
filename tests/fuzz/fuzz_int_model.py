"""Fuzz target: the model loader on integer-scale models (format 1.2: sign bytes, 7-bit levels, factors).

The oracle and strategies are ``fuzz_model.ModelTarget``'s; only the corpus differs: an integer-scale
LeNet (16,2) (int8 path in conv2, int-xor in fc3) and a tiny model whose integer layers take the
int-xor path with a stride, padding and K % 64 != 0, so the data strategies reach the sign and level bytes
(padding bits past K and past the last level included), the filter factors and the activation factor.
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from typing import Optional

import numpy as np

from fuzz_model import ModelTarget, split


def _canonical(blob: bytes) -> bytes:
    """Sorted header keys: the same corpus bytes (and so the same cases per seed) in every process."""
    header, data = split(blob)
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def _written(folder: str, graph: dict, tensors: dict) -> bytes:
    from edge.format import write_hbn

    path = os.path.join(folder, "corpus.hbn")
    write_hbn(path, graph, tensors, metadata={"purpose": "fuzz corpus (integer scales)"})
    with open(path, "rb") as fh:
        blob = fh.read()
    os.unlink(path)
    return _canonical(blob)


def tiny_int_model(folder: str) -> bytes:
    rng = np.random.default_rng(11)
    f32 = lambda *shape: rng.normal(0, 0.3, shape).astype(np.float32)  # noqa: E731
    graph = {
        "arch": "fuzz-tiny-int", "labels": ["a", "b", "c"],
        "input": {"shape": [6, 6, 16], "layout": "NHWC", "pixel_scale": 1 / 255, "mean": [0.5], "std": [0.5]},
        "layers": [
            {"type": "conv2d", "name": "c1", "weight": "c1.w", "bias": "c1.b", "stride": 2, "padding": 1,
             "beta_w": 16, "beta_a": 16, "relu": True, "int_scales": True},
            {"type": "flatten", "name": "f"},
            {"type": "dense", "name": "d1", "weight": "d1.w", "bias": None, "beta_w": 8, "beta_a": 8,
             "int_scales": True},
            {"type": "softmax", "name": "sm"},
        ],
    }
    tensors = {"c1.w": f32(5, 3, 3, 16), "c1.b": f32(5), "c1.w.act_factor": np.array([0.01], np.float32),
               "d1.w": f32(3, 45), "d1.w.act_factor": np.array([0.02], np.float32)}
    return _written(folder, graph, tensors)


class IntModelTarget(ModelTarget):
    """ModelTarget over integer-scale models (its own name, so its cases differ from "model"'s per seed;
    ``scripts/fuzz-long --target model-int`` runs and replays them; not part of its "all")."""

    name = "model-int"

    def __init__(self, folder: Optional[str] = None, run_interpreter: bool = True) -> None:
        from int_fakes import int_lenet

        if folder is None:
            folder = tempfile.mkdtemp(prefix="hbnn-fuzz-int-")
        self.folder = folder
        self.path = os.path.join(folder, "case.hbn")
        self.run_interpreter = run_interpreter
        self.corpus = [_written(folder, *int_lenet(16, 2, seed=9)), tiny_int_model(folder)]
        self.parsed = [split(b) for b in self.corpus]
        self._names = list(self.STRATEGIES)
        self._weights = list(self.STRATEGIES.values())

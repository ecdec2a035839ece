"""Test helpers: a tiny synthetic Fashion-MNIST in IDX .gz form (fast, no real data needed)."""
from __future__ import annotations

import gzip
import struct

import numpy as np


def write_idx(path, array: np.ndarray, magic_dtype: int = 0x08) -> None:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, magic_dtype, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def make_dataset(directory, n_train: int = 256, n_test: int = 128, seed: int = 0):
    """Images whose class is visible (a bright bar at a class-dependent row), so a net can learn it."""
    rng = np.random.default_rng(seed)
    out = {}
    for split, n, img_name, lbl_name in (("train", n_train, "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
                                         ("test", n_test, "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")):
        labels = rng.integers(0, 10, n).astype(np.uint8)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            images[i, 2 + 2 * c:4 + 2 * c, 4:24] = 250
        write_idx(directory / img_name, images)
        write_idx(directory / lbl_name, labels)
        out[split] = (images, labels)
    return out

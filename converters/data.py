"""Fashion-MNIST from its IDX .gz files, in pure NumPy (the runtime's ``hbnn eval`` reuses it).

No torch import and no downloads: the data comes from the Debian package
``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``) or any
directory holding the four standard files.
"""
from __future__ import annotations

import gzip
import os
import struct
import zlib
from typing import Tuple

import numpy as np

from .errors import DatasetError

DEFAULT_DATA_DIR = "/usr/share/datasets/fashion-mnist"

CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# Normalization used in training and recorded in the model file's input spec.
MEAN = 0.2860
STD = 0.3530

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

# The validation split: the last VAL_SIZE of the 60,000 training images (about 500 per class).
# Recipes, epochs and checkpoints are chosen on it; training never sees it; the test set is
# evaluated once per finished model.
VAL_SIZE = 5000

_IDX_UBYTE = 0x08
_MAX_ITEMS = 10_000_000  # a lying header must not cause a huge allocation


def _read_gz(path: str) -> bytes:
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        raise DatasetError(f"Expected the Fashion-MNIST file {path}, got no such file "
                           f"(install it with `apt-get install dataset-fashion-mnist` or pass --data DIR)") from None
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"Expected a valid gzip file at {path}, got a corrupt or truncated one ({exc})") from None


def read_idx(path: str, ndim: int) -> np.ndarray:
    """Parse an unsigned-byte IDX file of rank ``ndim``; every inconsistency names the file."""
    raw = _read_gz(path)
    if len(raw) < 4 + 4 * ndim:
        raise DatasetError(f"Expected an IDX header of {4 + 4 * ndim} bytes in {path}, got {len(raw)} bytes")
    zero, dtype, rank = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != _IDX_UBYTE or rank != ndim:
        raise DatasetError(f"Expected IDX magic 0x000008{ndim:02x} (unsigned bytes, rank {ndim}) in {path}, "
                           f"got 0x{struct.unpack('>I', raw[:4])[0]:08x}")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    count = int(np.prod(dims, dtype=np.int64))
    if count > _MAX_ITEMS * 28 * 28:
        raise DatasetError(f"Expected IDX dimensions of a plausible size in {path}, got {dims}")
    payload = len(raw) - 4 - 4 * ndim
    if payload != count:
        raise DatasetError(f"Expected {count} data bytes for dimensions {dims} in {path}, got {payload} "
                           f"({'truncated' if payload < count else 'trailing data'})")
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion_mnist(data_dir: str = DEFAULT_DATA_DIR, split: str = "train") -> Tuple[np.ndarray, np.ndarray]:
    """Return (images uint8 (N, 28, 28), labels uint8 (N,)) for ``split`` "train" or "test"."""
    if split not in FILES:
        raise DatasetError(f"Expected split 'train' or 'test', got {split!r}")
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise DatasetError(f"Expected the Fashion-MNIST directory {data_dir}, got no such directory "
                           f"(install it with `apt-get install dataset-fashion-mnist` or pass --data DIR)")
    img_name, lbl_name = FILES[split]
    images = read_idx(os.path.join(data_dir, img_name), 3)
    labels = read_idx(os.path.join(data_dir, lbl_name), 1)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"Expected 28x28 images in {img_name}, got {images.shape[1]}x{images.shape[2]}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"Expected as many labels as images in {data_dir} ({split}), got "
                           f"{labels.shape[0]} labels for {images.shape[0]} images")
    if labels.size and int(labels.max()) >= len(CLASS_NAMES):
        raise DatasetError(f"Expected labels 0..9 in {lbl_name}, got {int(labels.max())}")
    return images, labels


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 NHWC (N, 28, 28, 1), the model's input convention."""
    x = images.astype(np.float32) * np.float32(1 / 255)
    return ((x - np.float32(MEAN)) / np.float32(STD))[..., None]


def split_train_val(images: np.ndarray, labels: np.ndarray, val_size: int = VAL_SIZE):
    """(train images, train labels, val images, val labels): the last ``val_size`` become validation.

    A fixed slice, not a random draw, so every run, seed and session uses the same split.
    ``val_size=0`` gives everything to training and empty validation arrays.
    """
    if not 0 <= val_size < len(images):
        raise DatasetError(f"Expected a validation size in [0, {len(images)}) for {len(images)} training images, "
                           f"got {val_size}")
    cut = len(images) - val_size
    return images[:cut], labels[:cut], images[cut:], labels[cut:]

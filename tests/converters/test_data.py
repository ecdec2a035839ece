"""Fashion-MNIST IDX reader: round trip, and one clear error per kind of bad input."""
from __future__ import annotations

import gzip
import struct
import subprocess
import sys

import numpy as np
import pytest

from converters.data import CLASS_NAMES, DEFAULT_DATA_DIR, load_fashion_mnist, normalize
from converters.errors import DatasetError

from converters_fakes import write_idx


def test_round_trip(fake_fmnist):
    d, data = fake_fmnist
    for split in ("train", "test"):
        images, labels = load_fashion_mnist(d, split)
        assert images.dtype == np.uint8 and images.shape == data[split][0].shape
        np.testing.assert_array_equal(images, data[split][0])
        np.testing.assert_array_equal(labels, data[split][1])
    assert len(CLASS_NAMES) == 10


def test_normalize_layout():
    x = normalize(np.zeros((2, 28, 28), np.uint8))
    assert x.shape == (2, 28, 28, 1) and x.dtype == np.float32
    assert np.allclose(x, (0 - 0.2860) / 0.3530)


def test_missing_dir_says_how_to_install(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path / "nope")


def test_missing_file(fake_fmnist):
    d, _ = fake_fmnist
    (d / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError, match="t10k-labels-idx1-ubyte.gz"):
        load_fashion_mnist(d, "test")


def test_truncated_payload_names_file(fake_fmnist):
    d, _ = fake_fmnist
    path = d / "train-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte.gz.*truncated|truncated.*train-images"):
        load_fashion_mnist(d, "train")


def test_truncated_gzip_stream(fake_fmnist):
    d, _ = fake_fmnist
    path = d / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(DatasetError, match="train-labels-idx1-ubyte.gz"):
        load_fashion_mnist(d, "train")


def test_not_gzip(fake_fmnist):
    d, _ = fake_fmnist
    (d / "train-images-idx3-ubyte.gz").write_bytes(b"this is not gzip")
    with pytest.raises(DatasetError, match="gzip"):
        load_fashion_mnist(d, "train")


def test_bad_magic(fake_fmnist):
    d, _ = fake_fmnist
    write_idx(d / "t10k-images-idx3-ubyte.gz", np.zeros((4, 28, 28)), magic_dtype=0x0D)
    with pytest.raises(DatasetError, match="magic"):
        load_fashion_mnist(d, "test")


def test_label_count_mismatch(fake_fmnist):
    d, _ = fake_fmnist
    write_idx(d / "t10k-labels-idx1-ubyte.gz", np.zeros(3))
    with pytest.raises(DatasetError, match="as many labels as images"):
        load_fashion_mnist(d, "test")


def test_lying_header_is_not_allocated(fake_fmnist):
    d, _ = fake_fmnist
    header = struct.pack(">HBB", 0, 8, 3) + struct.pack(">3I", 4_000_000_000, 28, 28)
    (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + b"\0" * 100))
    with pytest.raises(DatasetError, match="Expected"):
        load_fashion_mnist(d, "test")


def test_bad_split(fake_fmnist):
    with pytest.raises(DatasetError, match="split"):
        load_fashion_mnist(fake_fmnist[0], "valid")


@pytest.mark.no_emulation
def test_module_does_not_import_torch():
    code = "import sys, converters.data; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.skipif(not __import__("os").path.isdir(DEFAULT_DATA_DIR), reason="dataset-fashion-mnist not installed")
def test_installed_test_split():
    images, labels = load_fashion_mnist(DEFAULT_DATA_DIR, "test")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_validation_split_is_the_fixed_tail_of_the_training_set():
    from converters.data import VAL_SIZE, split_train_val

    images = np.arange(60_000 * 4, dtype=np.uint32).reshape(60_000, 2, 2)
    labels = np.arange(60_000) % 10
    tr_x, tr_y, va_x, va_y = split_train_val(images, labels)
    assert VAL_SIZE == 5000 and len(tr_x) == len(tr_y) == 55_000 and len(va_x) == len(va_y) == 5000
    assert np.array_equal(va_x, images[55_000:]) and np.array_equal(tr_x, images[:55_000])  # last 5,000
    assert not set(tr_x[:, 0, 0].tolist()) & set(va_x[:, 0, 0].tolist())                # disjoint
    again = split_train_val(images, labels)
    assert all(np.array_equal(a, b) for a, b in zip((tr_x, tr_y, va_x, va_y), again))    # deterministic
    assert len(split_train_val(images, labels, 0)[2]) == 0


@pytest.mark.parametrize("size", [-1, 60_000])
def test_validation_split_rejects_impossible_sizes(size):
    from converters.data import split_train_val

    with pytest.raises(DatasetError, match="validation size"):
        split_train_val(np.zeros((60_000, 2, 2)), np.zeros(60_000), size)

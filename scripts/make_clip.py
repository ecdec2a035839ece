"""Cut the bundled demo clip (hbnn/models/fmnist-test-clip.npz) from the Fashion-MNIST test set.

Fashion-MNIST (c) Zalando SE, MIT licence. Only *test* images are used, so the clip never
overlaps the training data. Run once; the result is committed.
    python scripts/make_clip.py /usr/share/datasets/fashion-mnist hbnn/models/fmnist-test-clip.npz
"""
from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        data = fh.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(dims)


def main(src: str, dst: str, count: int = 300) -> None:
    images = read_idx(Path(src) / "t10k-images-idx3-ubyte.gz")
    labels = read_idx(Path(src) / "t10k-labels-idx1-ubyte.gz")
    # The first `count` test images, in file order: no cherry-picking.
    np.savez_compressed(dst, images=images[:count], labels=labels[:count].astype(np.uint8),
                        class_names=np.array(CLASSES), source=np.array("fashion-mnist t10k[0:%d]" % count))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], *(int(a) for a in sys.argv[3:]))

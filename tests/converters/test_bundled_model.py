"""The bundled model: small enough, and the runtime predicts what the trained PyTorch model predicted.

``data/lenet-fmnist-bw16-ba2.torch-top1.npy`` holds the trained PyTorch model's top-1 classes on the
first 300 Fashion-MNIST test images (written by ``benchmarks/accuracy_table.py agree ...
--save-torch-preds``, see docs/ACCURACY.md); the images are the demo clip (the same 300 images).
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from converters.data import DEFAULT_DATA_DIR, load_fashion_mnist
from hbnn.bundled import BUNDLED_CLIP as CLIP, BUNDLED_MODEL as MODEL

TORCH_TOP1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "lenet-fmnist-bw16-ba2.torch-top1.npy")
FLOAT32_LENET_BYTES = 4 * (20 * 25 + 20 + 50 * 500 + 50 + 800 * 500 + 500 + 500 * 10 + 10)


def test_bundled_model_is_at_least_7x_smaller_than_float32_lenet():
    assert FLOAT32_LENET_BYTES / os.path.getsize(MODEL) >= 7.0


def test_bundled_model_graph():
    from edge.format import read_hbn

    model = read_hbn(MODEL)
    weighted = [l for l in model.graph["layers"] if l["type"] in ("conv2d", "dense")]
    assert [(l["name"], l["beta_w"], l["beta_a"]) for l in weighted] == \
        [("conv1", 1, 1), ("conv2", 16, 2), ("fc1", 16, 2), ("fc2", 1, 1)]
    assert model.graph["labels"][9] == "Ankle boot"


def runtime_top1(images: np.ndarray) -> np.ndarray:
    """Top-1 classes of uint8 images through the on-board runtime (``edge.Interpreter``)."""
    from edge.interpreter import Interpreter

    interp = Interpreter(MODEL)
    return np.concatenate([interp.predict(images[i:i + 1000]).argmax(axis=1) for i in range(0, len(images), 1000)])


def test_runtime_agrees_with_pytorch_on_300_test_images():
    clip = np.load(CLIP)
    images, labels = clip["images"], clip["labels"]
    torch_top1 = np.load(TORCH_TOP1)
    assert torch_top1.shape == (300,)
    runtime = runtime_top1(images)
    assert (runtime == torch_top1).mean() >= 0.99  # 99.9 % on all 10,000 images, see docs/ACCURACY.md
    assert (runtime == labels).mean() >= 0.85


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(DEFAULT_DATA_DIR), reason="dataset-fashion-mnist not installed (.ci/run installs it)")
def test_accuracy_on_all_10000_test_images_is_the_figure_in_its_metadata():
    """The figure README quotes (read from the file's metadata, benchmarks/bundle_model.py) is what the
    runtime scores on the 10,000 test images, on Debian's dataset-fashion-mnist."""
    from edge.format import read_hbn

    images, labels = load_fashion_mnist(DEFAULT_DATA_DIR, "test")
    assert images.shape == (10000, 28, 28)
    accuracy = (runtime_top1(images) == labels).mean()
    quoted = read_hbn(MODEL).metadata["evaluation"]["test_top1_runtime"]
    assert round(float(accuracy), 5) == quoted, f"{100 * accuracy:.2f} % vs {100 * quoted:.2f} %"
    assert accuracy >= 0.90, f"{100 * accuracy:.2f} %"

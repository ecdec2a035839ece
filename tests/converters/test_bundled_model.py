"""The bundled model: small enough, and the runtime predicts what the trained PyTorch model predicted.

``data/lenet-fmnist-bw16-ba2.torch-top1.npy`` holds the trained PyTorch model's top-1 classes on the
first 300 Fashion-MNIST test images (written by ``benchmarks/accuracy_table.py agree ...
--save-torch-preds``, see docs/ACCURACY.md); the images are the demo clip (the same 300 images).
"""
from __future__ import annotations

import os

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = os.path.join(ROOT, "models", "lenet-fmnist-bw16-ba2.hbn")
CLIP = os.path.join(ROOT, "models", "fmnist-test-clip.npz")
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


def test_runtime_agrees_with_pytorch_on_300_test_images():
    from converters.graph_run import runtime_predict

    clip = np.load(CLIP)
    images, labels = clip["images"], clip["labels"]
    torch_top1 = np.load(TORCH_TOP1)
    assert torch_top1.shape == (300,)
    runtime = runtime_predict(MODEL, images)
    assert (runtime == torch_top1).mean() >= 0.99  # 99.9 % on all 10,000 images, see docs/ACCURACY.md
    assert (runtime == labels).mean() >= 0.85

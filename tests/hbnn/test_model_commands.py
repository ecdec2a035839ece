"""`hbnn inspect` and `hbnn eval` (in-process through hbnn.cli.main)."""
from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest

from hbnn.cli import main
from edge.format import write_hbn
from model_fakes import random_lenet, reference_forward


@pytest.fixture()
def model_path(tmp_path):
    path = tmp_path / "m.hbn"
    write_hbn(path, *random_lenet(16, 2, seed=2), metadata={"seed": 42})
    return path


def _write_idx(path, array: np.ndarray) -> None:
    magic = 0x0800 | array.ndim
    with gzip.open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape))
        f.write(array.astype(np.uint8).tobytes())


@pytest.fixture()
def data_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (37, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, 37, dtype=np.uint8)
    d = tmp_path / "fmnist"
    d.mkdir()
    _write_idx(d / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(d / "t10k-labels-idx1-ubyte.gz", labels)
    return d, images, labels


def test_inspect_reports_layers_and_sizes(model_path, capsys):
    assert main(["inspect", str(model_path)]) == 0
    out = capsys.readouterr().out
    assert "conv2d   16,2" in out and "1,1 (fp)" in out and "parameters: 432,720" in out
    assert "x smaller" in out and "theoretical minimum" in out and '"seed": 42' in out


def test_inspect_json_sizes_add_up(model_path, capsys):
    assert main(["inspect", str(model_path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["file_bytes"] == model_path.stat().st_size
    assert s["float32_bytes"] == 4 * s["params"]
    # conv2: 50 rows of 500 bits -> 8 words each, 32 segments of 16 -> the minimum counts bits exactly
    conv2 = next(r for r in s["layers"] if r["name"] == "conv2")
    assert conv2["bytes"] == 50 * 8 * 8 + 50 * 32 * 4 + 50 * 4
    assert s["minimum_bytes"] < s["file_bytes"] < 1.1 * s["minimum_bytes"]
    assert s["ratio_vs_float32"] > 7


def test_inspect_of_a_corrupt_file_is_one_clean_error(model_path, capsys):
    blob = model_path.read_bytes()
    model_path.write_bytes(blob[:len(blob) // 2])
    assert main(["inspect", str(model_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hbnn: error: ") and err.count("\n") == 1


def test_eval_matches_the_reference_predictions(model_path, data_dir, capsys):
    d, images, labels = data_dir
    assert main(["eval", str(model_path), "--data", str(d), "--json", "--batch", "16",
                 "--latency-frames", "5"]) == 0
    r = json.loads(capsys.readouterr().out)
    x = ((images.astype(np.float32) / 255 - 0.2860) / 0.3530)[..., None]
    want = reference_forward(model_path, x).argmax(axis=1)
    assert r["images"] == 37
    assert r["accuracy"] == pytest.approx(float((want == labels).mean()))
    confusion = np.array(r["confusion"])
    assert confusion.sum() == 37 and (confusion.sum(axis=1) == np.bincount(labels, minlength=10)).all()
    assert r["throughput_fps"] > 0 and r["latency_ms"]["frames"] == 5


def test_eval_text_output_and_limit(model_path, data_dir, capsys):
    d, _, _ = data_dir
    assert main(["eval", str(model_path), "--data", str(d), "--limit", "10", "--latency-frames", "3"]) == 0
    out = capsys.readouterr().out
    assert "(10 images" in out and "accuracy:" in out and "confusion matrix" in out
    assert "images/s" in out and "latency (batch 1" in out


@pytest.mark.parametrize("extra, message", [
    (["--limit", "0"], "--limit"),
    (["--batch", "0"], "--batch"),
    (["--threads", "-1"], "--threads"),
])
def test_eval_bad_arguments(model_path, data_dir, capsys, extra, message):
    d, _, _ = data_dir
    assert main(["eval", str(model_path), "--data", str(d)] + extra) == 2
    assert message in capsys.readouterr().err


def test_eval_without_data_says_how_to_get_it(model_path, tmp_path, capsys):
    assert main(["eval", str(model_path), "--data", str(tmp_path / "none")]) == 2
    assert "dataset-fashion-mnist" in capsys.readouterr().err


def test_eval_rejects_a_model_for_other_inputs(tmp_path, data_dir, capsys):
    graph = {"input": {"shape": [8, 8, 1]}, "layers": [
        {"type": "flatten"},
        {"type": "dense", "name": "d", "weight": "w", "bias": None, "beta_w": 1, "beta_a": 1}]}
    path = tmp_path / "small.hbn"
    write_hbn(path, graph, {"w": np.ones((10, 64), np.float32)})
    assert main(["eval", str(path), "--data", str(data_dir[0])]) == 2
    assert "28x28x1 input" in capsys.readouterr().err

"""Exporter: graph + tensors compute what PyTorch computes; `hbnn convert` writes valid .hbn files."""
from __future__ import annotations

import os
import sys
import types

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the [train] extra; absent on boards and under QEMU


from converters import checkpoint as ckpt
from converters.export import convert, float32_bytes, load_model, model_to_graph
from converters.train import to_nchw
from converters.zoo import build_model
from edge.format import write_hbn
from edge.interpreter import Interpreter
from hbnn.cli import main as hbnn


def _trained_like(arch="lenet", bw=16, ba=2, seed=0, layer_betas=None):
    """A zoo model with non-trivial BatchNorm statistics (as after training), in eval mode."""
    torch.manual_seed(seed)
    m = build_model(arch, bw, ba, layer_betas)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.uniform_(-0.5, 0.5)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.uniform_(0.5, 1.5)
                mod.bias.uniform_(-0.3, 0.3)
    return m.eval()


def _images(n=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28)).astype(np.uint8)


def _torch_probs(model, images):
    with torch.no_grad():
        return torch.softmax(model(to_nchw(images)), 1).numpy()


@pytest.mark.parametrize("bw,ba", [(16, 2), (4, 4), (8, 1), (None, None), (1, 1), (2, None)])
@pytest.mark.parametrize("reference", [False, True], ids=["kernels", "reference"])
def test_graph_matches_pytorch(bw, ba, reference, tmp_path):
    model = _trained_like(bw=bw, ba=ba)
    graph, tensors = model_to_graph(model)
    images = _images()
    write_hbn(tmp_path / "m.hbn", graph, tensors)
    got = Interpreter(tmp_path / "m.hbn", reference=reference).predict(images)
    want = _torch_probs(model, images)
    np.testing.assert_allclose(got, want, atol=2e-4)
    assert (got.argmax(1) == want.argmax(1)).all()


def test_graph_layout():
    graph, tensors = model_to_graph(_trained_like())
    kinds = [l["type"] for l in graph["layers"]]
    assert kinds == ["conv2d", "maxpool", "affine", "conv2d", "maxpool", "flatten", "affine", "dense",
                     "dense", "softmax"]
    conv1, conv2, fc1, fc2 = [l for l in graph["layers"] if l["type"] in ("conv2d", "dense")]
    assert (conv1["beta_w"], conv1["beta_a"], fc2["beta_w"], fc2["beta_a"]) == (1, 1, 1, 1)
    assert (conv2["beta_w"], conv2["beta_a"], fc1["beta_w"], fc1["beta_a"]) == (16, 2, 16, 2)
    assert tensors["conv2.weight"].shape == (50, 5, 5, 20) and tensors["fc1.weight"].shape == (500, 800)
    assert all(t.dtype == np.float32 and t.flags.c_contiguous for t in tensors.values())
    assert graph["input"] == {"shape": [28, 28, 1], "layout": "NHWC", "pixel_scale": 1 / 255,
                              "mean": [0.2860], "std": [0.3530]}
    assert graph["labels"][0] == "T-shirt/top" and len(graph["labels"]) == 10


def test_bn_folding_is_exact_in_float64():
    m = _trained_like()
    graph, tensors = model_to_graph(m)
    bn = m.layers["conv2_bn"]
    x = torch.randn(3, 20, 4, 4)
    with torch.no_grad():
        want = bn(x).permute(0, 2, 3, 1).numpy()
    got = x.permute(0, 2, 3, 1).numpy() * tensors["conv2_bn.scale"] + tensors["conv2_bn.bias"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_alexnet_graph_shapes():
    graph, tensors = model_to_graph(build_model("alexnet", 4, 4).eval())
    assert graph["input"]["shape"] == [32, 32, 3]
    assert tensors["conv3.weight"].shape == (256, 3, 3, 128) and tensors["fc1.weight"].shape == (1024, 8192)
    assert [l["padding"] for l in graph["layers"] if l["type"] == "conv2d"] == [1] * 6


def _save_ckpt(directory, model):
    ckpt.save_checkpoint(str(directory), model, {"arch": model.arch, "epoch": 1, "seed": 0,
                                                  "betas": {k: list(v) for k, v in model.betas.items()}})


def test_convert_checkpoint_writes_valid_hbn(tmp_path):
    from edge.format import read_hbn

    model = _trained_like()
    _save_ckpt(tmp_path / "ck", model)
    out = tmp_path / "m.hbn"
    info = convert(str(tmp_path / "ck"), str(out))
    hbn = read_hbn(str(out))
    assert info["bytes"] == os.path.getsize(out) == hbn.file_bytes
    assert info["ratio"] >= 7.0
    kinds = [l["type"] for l in hbn.graph["layers"]]
    assert kinds.count("affine") == 2 and kinds[-1] == "softmax"
    # the packed conv2 signs are the PyTorch weight signs in (kh, kw, C) row order
    from cy_kernels import reference as ref
    w = model.layers["conv2"].weight.detach().numpy().transpose(0, 2, 3, 1).reshape(50, -1)
    np.testing.assert_array_equal(hbn.tensors["conv2.weight.bits"], ref.pack_bits(w))


def test_convert_overrides_betas_post_training(tmp_path):
    from edge.format import read_hbn

    _save_ckpt(tmp_path / "ck", _trained_like(bw=1, ba=1))
    assert hbnn(["convert", str(tmp_path / "ck"), "-o", str(tmp_path / "m.hbn"), "--beta-w", "4",
                "--beta-a", "inf"]) == 0
    dense = [l for l in read_hbn(str(tmp_path / "m.hbn")).graph["layers"] if l["name"] == "fc1"][0]
    assert (dense["beta_w"], dense["beta_a"]) == (4, None)


def test_convert_plain_float_state_dict(tmp_path, capsys):
    fp = _trained_like(bw=1, ba=1)
    torch.save(fp.state_dict(), tmp_path / "fp.pt")
    out = tmp_path / "m.hbn"
    rc = hbnn(["convert", str(tmp_path / "fp.pt"), "--arch", "lenet", "--beta-w", "16", "--beta-a", "2",
               "-o", str(out)])
    assert rc == 0 and out.exists() and "smaller than float32" in capsys.readouterr().out
    binarized = load_model(str(tmp_path / "fp.pt"), "lenet", 16, 2)
    assert binarized.layers["fc1"].beta_w == 16


def _no_leftovers(directory, allowed=()):
    return sorted(set(os.listdir(directory)) - set(allowed)) == []


@pytest.mark.parametrize("case,match", [
    ("plain-no-betas", "Expected --arch, --beta-w and --beta-a"),
    ("other-arch", "another architecture"),
    ("wrong-shape", "of shape"),
    ("pickle", "weights-only"),
    ("missing", "no such path"),
    ("bad-betas", "one divides the other"),
    ("no-out-dir", "no such directory"),
    ("arch-mismatch", "the checkpoint's"),
])
def test_convert_bad_input_one_line_no_file(tmp_path, capsys, case, match):
    src = tmp_path / "src"
    src.mkdir()
    extra = []
    out = tmp_path / "out" / "m.hbn"
    out.parent.mkdir()
    model = _trained_like()
    if case == "plain-no-betas":
        torch.save(model.state_dict(), src / "fp.pt")
        path = src / "fp.pt"
    elif case == "other-arch":
        _save_ckpt(src, model)
        from safetensors.torch import save_file
        state = {k: v.contiguous() for k, v in build_model("alexnet").state_dict().items()}
        save_file(state, str(src / "model.safetensors"), metadata={"arch": "lenet", "epoch": "1"})
        path = src
    elif case == "wrong-shape":
        sd = model.state_dict()
        sd["layers.fc1.weight"] = torch.zeros(500, 700)
        torch.save(sd, src / "fp.pt")
        path, extra = src / "fp.pt", ["--arch", "lenet", "--beta-w", "16", "--beta-a", "2"]
    elif case == "pickle":
        torch.save({"obj": types.SimpleNamespace(a=1)}, src / "evil.pt")
        path, extra = src / "evil.pt", ["--arch", "lenet", "--beta-w", "16", "--beta-a", "2"]
    elif case == "missing":
        path, extra = src / "nothing.pt", ["--arch", "lenet", "--beta-w", "16", "--beta-a", "2"]
    elif case == "bad-betas":
        _save_ckpt(src, model)
        path, extra = src, ["--beta-w", "4", "--beta-a", "6"]
    elif case == "no-out-dir":
        _save_ckpt(src, model)
        path, out = src, tmp_path / "nodir" / "m.hbn"
    elif case == "arch-mismatch":
        _save_ckpt(src, model)
        path, extra = src, ["--arch", "alexnet"]
    rc = hbnn(["convert", str(path), "-o", str(out)] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and match in err[0], err
    assert not out.exists() and _no_leftovers(tmp_path / "out")


def test_convert_tflite_dispatches_to_importer(tmp_path, monkeypatch):
    calls = {}
    model = _trained_like()

    def graph_from_tflite(path, **kwargs):
        calls["args"] = (path, kwargs)
        return model_to_graph(model)

    monkeypatch.setitem(sys.modules, "converters.tflite_import",
                        types.SimpleNamespace(graph_from_tflite=graph_from_tflite))
    out = tmp_path / "m.hbn"
    assert hbnn(["convert", str(tmp_path / "net.tflite"), "--beta-w", "4", "-o", str(out)]) == 0
    assert calls["args"] == (str(tmp_path / "net.tflite"), {"beta_w": 4}) and out.exists()


def test_float32_baseline_is_the_float_lenet():
    graph, tensors = model_to_graph(_trained_like(bw=16, ba=2))
    # 20C5 + 50C5 + 800x500 + 500x10, weights and biases: the float32 LeNet the size ratio compares to
    assert float32_bytes(graph, tensors) == 4 * (20 * 25 + 20 + 50 * 500 + 50 + 800 * 500 + 500 + 500 * 10 + 10)

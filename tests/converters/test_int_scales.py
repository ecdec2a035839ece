"""Integer scales in training (docs/DESIGN.md, section 9): the PyTorch grid is the reference's, the
gradient passes straight through, `hbnn train --int-scales` records the mode, and a converted model
predicts on the runtime what PyTorch predicts."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the [train] extra; absent on boards and under QEMU

from converters.export import load_model, model_to_graph
from converters.layers import HadaConv2d, HadaLinear, binarize, quantize_levels, weight_factors
from converters.train import to_nchw
from converters.zoo import build_model
from cy_kernels import reference as ref
from cy_kernels import reference_int as ri
from edge.format import read_hbn, write_hbn
from edge.interpreter import Interpreter
from hbnn.cli import main as hbnn

VAL = 64


def test_torch_levels_are_the_reference_levels():
    rng = np.random.default_rng(0)
    s = np.concatenate([rng.uniform(0, 3, 1000), [0.5, 1.5, 2.5, 126.5, 127.4, 1e9, 0.0]]).astype(np.float32)
    for factor in (1.0, 0.0234, 0.017):
        got = quantize_levels(torch.from_numpy(s), torch.tensor(factor, dtype=torch.float32)).numpy()
        np.testing.assert_array_equal(got.astype(np.uint8), ri.quantize(s, ri.inverse_factor(factor)))


def test_weight_factors_match_the_reference():
    w = torch.randn(9, 100)
    w[4] = 0
    scales = ref.segment_scales(w.numpy(), 16)
    got = weight_factors(torch.from_numpy(scales)).reshape(-1).numpy()
    np.testing.assert_array_equal(got, ri.weight_factors(scales))


def test_straight_through_gradient_inside_the_grid_and_none_where_saturated():
    x = torch.tensor([[0.3, -0.5, 0.2, 0.13, 5.0, -4.0, 6.0, 5.5]], requires_grad=True)
    factor = torch.tensor(0.01)  # the second segment's scale (5.125) saturates: 127 * 0.01 = 1.27
    y = binarize(x, 4, factor=factor)
    np.testing.assert_allclose(y.detach().numpy()[0, 4:], [1.27, -1.27, 1.27, 1.27], rtol=1e-6)
    # first segment: mean 0.2825 -> level 28
    np.testing.assert_allclose(y.detach().numpy()[0, :4], np.array([1, -1, 1, 1]) * 0.28, rtol=1e-6)
    y.sum().backward()
    float_x = x.detach().clone().requires_grad_(True)
    binarize(float_x, 4).sum().backward()
    # inside the grid: the float gradient (its sign STE term sees the level's 0.28 instead of 0.2825);
    # saturated: no gradient through the scale, and the sign STE passes nothing where |x| > 1
    np.testing.assert_allclose(x.grad.numpy()[0, :4], float_x.grad.numpy()[0, :4], rtol=0.02)
    np.testing.assert_array_equal(x.grad.numpy()[0, 4:], 0)


def test_activation_range_is_a_running_statistic():
    layer = HadaLinear(64, 5, beta_w=16, beta_a=2, int_scales=True)
    assert float(layer.act_range) == 0
    x = torch.randn(8, 64)
    layer.train()
    layer(x)
    top = float(ref.segment_scales(x.numpy(), 2).max())
    assert float(layer.act_range) == pytest.approx(top, rel=1e-6)
    layer(x * 2)
    assert float(layer.act_range) == pytest.approx(0.9 * top + 0.1 * 2 * top, rel=1e-5)
    untrained = HadaLinear(64, 5, beta_w=16, beta_a=2, int_scales=True).eval()
    with pytest.raises(ValueError, match="trained activation range"):
        untrained(x)
    with pytest.raises(ValueError, match="both betas > 1"):
        HadaLinear(64, 5, beta_w=16, beta_a=1, int_scales=True)


@pytest.mark.parametrize("bw,ba", [(16, 2), (16, 16), (None, None)])
def test_eval_forward_is_the_reference_arithmetic(bw, ba):
    torch.manual_seed(1)
    dense = HadaLinear(200, 7, beta_w=bw, beta_a=ba, int_scales=True)
    conv = HadaConv2d(12, 6, 3, padding=1, beta_w=bw, beta_a=ba, int_scales=True)
    x, xc = torch.randn(4, 200), torch.randn(2, 12, 6, 6)
    for m, inp in ((dense, x), (conv, xc)):
        m.train()
        m(inp)          # sets the activation range
        m.eval()
        with torch.no_grad():
            got = m(inp).numpy()
        fa = np.float32(m.act_range.numpy() / np.float32(127))
        if m is dense:
            w = m.weight.detach().numpy()
            bits, levels, factors = ri.pack_rows_int(w, bw)
            want = ri.int_linear(x.numpy(), ri.weight_ints(bits, levels, 200, bw), factors, ba, fa)
        else:
            w = m.weight.detach().permute(0, 2, 3, 1).numpy()
            bits, levels, factors = ri.pack_rows_int(w.reshape(6, -1), bw)
            ints = ri.weight_ints(bits, levels, 108, bw).reshape(w.shape)
            want = ri.int_conv2d(xc.permute(0, 2, 3, 1).numpy(), ints, factors, ba, fa, 1, 1).transpose(0, 3, 1, 2)
        want = want + m.bias.detach().numpy().reshape((1, -1) + (1,) * (want.ndim - 2))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_zoo_puts_integer_scales_on_the_binarized_layers_only():
    m = build_model("lenet", 16, 2, int_scales=True)
    assert [name for name, layer in m.layers.items() if getattr(layer, "int_scales", False)] == ["conv2", "fc1"]
    assert "layers.conv2.act_range" in m.state_dict() and "layers.conv1.act_range" not in m.state_dict()


def test_train_int_scales_end_to_end(fake_fmnist, tmp_path, capsys):
    """`hbnn train --int-scales` on a tiny run, `hbnn convert`, then the runtime predicts what PyTorch does."""
    d, data = fake_fmnist
    out = tmp_path / "run"
    rc = hbnn(["train", "--int-scales", "--epochs", "1", "--data", str(d), "-o", str(out), "--no-progress",
               "--seed", "2", "--val-size", str(VAL), "--batch-size", "64"])
    assert rc == 0
    config = json.loads((out / "config.json").read_text())
    assert config["int_scales"] is True
    model_path = tmp_path / "m.hbn"
    assert hbnn(["convert", str(out), "-o", str(model_path)]) == 0
    capsys.readouterr()
    m = read_hbn(model_path)
    assert m.version == (1, 2) and m.metadata["training"]["int_scales"] is True
    assert [layer["name"] for layer in m.graph["layers"] if layer.get("int_scales")] == ["conv2", "fc1"]

    model = load_model(str(out))
    images = data["test"][0]
    with torch.no_grad():
        logits = model(to_nchw(images)).numpy()
    for reference in (False, True):
        probs = Interpreter(model_path, reference=reference).predict(images)
        assert (probs.argmax(1) == logits.argmax(1)).all()
        want = torch.softmax(torch.from_numpy(logits), 1).numpy()
        np.testing.assert_allclose(probs, want, atol=2e-4)


def test_int_checkpoint_converts_with_other_betas(fake_fmnist, tmp_path, capsys):
    """Post-training re-binarization of an integer-scale checkpoint: layers that keep both betas > 1
    stay integer (the trained ranges), a beta of 1 makes a layer float."""
    d, _ = fake_fmnist
    out = tmp_path / "run"
    assert hbnn(["train", "--int-scales", "--epochs", "1", "--data", str(d), "-o", str(out), "--no-progress",
                 "--val-size", str(VAL), "--limit", "64"]) == 0
    assert hbnn(["convert", str(out), "-o", str(tmp_path / "a.hbn"), "--layer-beta", "conv2=16,1"]) == 0
    layers = {layer["name"]: layer for layer in read_hbn(tmp_path / "a.hbn").graph["layers"]}
    assert "int_scales" not in layers["conv2"] and layers["fc1"]["int_scales"] is True
    capsys.readouterr()


def test_resume_refuses_another_scale_mode(fake_fmnist, tmp_path):
    from converters.errors import ConfigError
    from converters.train import TrainOptions, train

    d, _ = fake_fmnist
    opts = dict(arch="lenet", beta_w=16, beta_a=16, epochs=2, batch_size=64, seed=3, data_dir=str(d),
                out=str(tmp_path / "r"), progress=False, val_size=VAL, limit=64)
    train(TrainOptions(**dict(opts, epochs=1)))
    with pytest.raises(ConfigError, match="int_scales"):
        train(TrainOptions(**dict(opts, resume=True, int_scales=True)))


def test_graph_of_an_int_model_carries_the_activation_factor(tmp_path):
    torch.manual_seed(0)
    m = build_model("lenet", 16, 16, int_scales=True)
    m.train()
    m(torch.randn(16, 1, 28, 28))
    m.eval()
    graph, tensors = model_to_graph(m)
    conv2 = next(layer for layer in graph["layers"] if layer.get("name") == "conv2")
    assert conv2["int_scales"] is True
    assert tensors["conv2.weight.act_factor"][0] == np.float32(m.layers["conv2"].act_range.numpy() / np.float32(127))
    write_hbn(tmp_path / "m.hbn", graph, tensors)
    x = np.random.default_rng(0).integers(0, 256, (6, 28, 28)).astype(np.uint8)
    with torch.no_grad():
        want = torch.softmax(m(to_nchw(x)), 1).numpy()
    np.testing.assert_allclose(Interpreter(tmp_path / "m.hbn").predict(x), want, atol=2e-4)
    # an int model converted without its trained range is refused with the reason
    untrained = build_model("lenet", 16, 16, int_scales=True).eval()
    from converters.errors import CheckpointError
    with pytest.raises(CheckpointError, match="trained activation range"):
        model_to_graph(untrained)

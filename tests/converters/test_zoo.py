"""Model zoo: the paper's layer plans, layer order, per-layer betas and (H, W, C) flattening."""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")  # the [train] extra; absent on boards and under QEMU


from converters.errors import ConfigError
from converters.layers import HadaConv2d, HadaLinear
from converters.zoo import build_model, load_state_dict_checked


def test_lenet_shapes_and_betas():
    m = build_model("lenet", 16, 2)
    assert m(torch.randn(3, 1, 28, 28)).shape == (3, 10)
    sd = m.state_dict()
    assert sd["layers.conv1.weight"].shape == (20, 1, 5, 5) and sd["layers.conv2.weight"].shape == (50, 20, 5, 5)
    assert sd["layers.fc1.weight"].shape == (500, 800) and sd["layers.fc2.weight"].shape == (10, 500)
    assert m.betas == {"conv1": (1, 1), "conv2": (16, 2), "fc1": (16, 2), "fc2": (1, 1)}
    assert "conv1_bn" not in m.layers and "conv2_bn" in m.layers and "fc1_bn" in m.layers


def test_alexnet_plan():
    m = build_model("alexnet", 4, 4)
    convs = [k for k, v in m.layers.items() if isinstance(v, HadaConv2d)]
    fcs = [k for k, v in m.layers.items() if isinstance(v, HadaLinear)]
    assert [m.layers[k].out_channels for k in convs] == [128, 128, 256, 256, 512, 512]
    assert [m.layers[k].out_features for k in fcs] == [1024, 1024, 10]
    assert m.layers["fc1"].in_features == 4 * 4 * 512
    assert m.betas["conv1"] == (1, 1) and m.betas["fc3"] == (1, 1) and m.betas["conv4"] == (4, 4)
    with torch.no_grad():
        assert m.eval()(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_per_layer_betas_override_defaults():
    m = build_model("lenet", 16, 2, {"fc1": (8, None)})
    assert m.betas["conv2"] == (16, 2) and m.betas["fc1"] == (8, None)
    assert m.layers["fc1"].beta_w == 8 and m.layers["fc1"].beta_a is None


def test_inner_layer_order_bn_binarize_conv_relu_pool():
    m = build_model("lenet", 16, 2).eval()
    calls = []
    for name, mod in m.layers.items():
        mod.register_forward_hook(lambda mod, i, o, name=name: calls.append(name))
    m(torch.randn(1, 1, 28, 28))
    assert calls == ["conv1", "conv2_bn", "conv2", "fc1_bn", "fc1", "fc2_bn", "fc2"]


def test_flatten_is_hwc_order():
    m = build_model("lenet", 1, 1).eval()
    taps = []
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad():
        m.layers["fc1_bn"].register_forward_hook(lambda mod, i, o: taps.append(i[0]))
        fmap = []
        m.layers["conv2"].register_forward_hook(lambda mod, i, o: fmap.append(o))
        m(x)
    pooled = torch.nn.functional.max_pool2d(torch.relu(fmap[0]), 2)  # (B, C, H, W)
    np.testing.assert_array_equal(taps[0].numpy(), pooled.permute(0, 2, 3, 1).reshape(2, -1).numpy())


@pytest.mark.parametrize("args,match", [
    (("vgg", 1, 1), "architecture"),
    (("lenet", 4, 6), "one divides the other"),
    (("lenet", 0, 1), ">= 1"),
])
def test_bad_configs(args, match):
    with pytest.raises(ConfigError, match=match):
        build_model(*args)


def test_unknown_layer_in_per_layer_betas():
    with pytest.raises(ConfigError, match="inner layers"):
        build_model("lenet", 16, 2, {"conv1": (2, 2)})


def test_state_dict_checks_name_the_problem():
    m = build_model("lenet", 16, 2)
    other = build_model("alexnet", 1, 1).state_dict()
    with pytest.raises(ConfigError, match="another architecture"):
        load_state_dict_checked(m, other, "x.pt")
    sd = m.state_dict()
    sd["layers.fc1.weight"] = torch.zeros(500, 801)
    with pytest.raises(ConfigError, match=r"layers.fc1.weight of shape \(500, 800\)"):
        load_state_dict_checked(m, sd, "x.pt")

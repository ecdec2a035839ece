"""The paper's figures as tools: the binarization angle limit and layer correlations (no plotting)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from cy_kernels import reference as ref
from converters.analyze import (LIMIT_DEGREES, angle_degrees, angle_table, binarize_np, format_angle_table,
                                pearson)
from hbnn.cli import main as hbnn


def test_limit_constant():
    assert LIMIT_DEGREES == pytest.approx(math.degrees(math.acos(math.sqrt(2 / math.pi))))
    # The issue quotes 37.03 degrees; arccos(sqrt(2/pi)) is 37.07 degrees (cos 37.03 deg = 0.7983 != 0.7979).
    assert round(LIMIT_DEGREES, 2) == 37.07


def test_gaussian_angle_tends_to_limit_for_beta_inf():
    x = np.random.default_rng(0).standard_normal((64, 65536))
    angles = angle_degrees(x, None)
    assert abs(angles.mean() - LIMIT_DEGREES) < 0.05
    assert angles.std() < 0.2  # concentrated: the limit is a property of every long vector


def test_angle_shrinks_with_beta_and_vanishes_at_one():
    table = angle_table([256], [1, 2, 4, 16, None], trials=50, seed=1)
    values = [table[(256, b)] for b in (1, 2, 4, 16, None)]
    assert values[0] == pytest.approx(0.0, abs=1e-5)
    assert all(a < b for a, b in zip(values, values[1:]))
    assert values[-1] < LIMIT_DEGREES + 0.5
    assert "beta=inf" in format_angle_table(table, [256], [1, 2, 4, 16, None])


@pytest.mark.parametrize("beta", [1, 2, 3, 16, None])
def test_vectorized_binarization_equals_reference(beta):
    x = np.random.default_rng(2).standard_normal((4, 50)).astype(np.float32)
    np.testing.assert_allclose(binarize_np(x, beta), ref.binarize_rows(x, beta), rtol=1e-6, atol=1e-7)


def test_pearson():
    a = np.arange(10.0)
    assert pearson(a, 3 * a + 1) == pytest.approx(1.0)
    assert pearson(a, -a) == pytest.approx(-1.0)


def test_cli_angle_table(capsys):
    assert hbnn(["analyze", "angle", "--dims", "64", "--betas", "1,inf", "--trials", "20"]) == 0
    out = capsys.readouterr().out
    assert "37.07" in out and "beta=inf" in out


def test_cli_correlation_refuses_packed_model(capsys, tmp_path):
    rc = hbnn(["analyze", "correlation", str(tmp_path / "m.hbn"), "--data", str(tmp_path)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "training checkpoint" in err[0]


def test_correlation_of_a_trained_checkpoint(fake_fmnist, tmp_path):
    pytest.importorskip("torch")
    from converters.analyze import layer_correlations
    from converters.train import TrainOptions, train

    d, _ = fake_fmnist
    train(TrainOptions(epochs=1, batch_size=64, data_dir=str(d), out=str(tmp_path / "ck"), progress=False,
                       val_size=64))
    result = layer_correlations(str(tmp_path / "ck"), str(d), images=64)
    assert [n for n, _ in result] == ["conv1", "conv2", "fc1", "fc2"]
    assert result[0][1] == pytest.approx(1.0)  # the first layer is full precision in both passes
    assert all(-1.0 <= r <= 1.0 for _, r in result)
    same_input = layer_correlations(str(tmp_path / "ck"), str(d), images=64, mode="layer")
    assert [n for n, _ in same_input] == ["conv1", "conv2", "fc1", "fc2"]
    assert same_input[0][1] == pytest.approx(1.0) and same_input[-1][1] == pytest.approx(1.0)

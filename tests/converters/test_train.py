"""Training: learns, checkpoints as safetensors + JSON, resumes exactly; bad input is one clear line."""
from __future__ import annotations

import json
import os

import pytest

torch = pytest.importorskip("torch")  # the [train] extra; absent on boards and under QEMU

from safetensors.torch import load_file

from converters import checkpoint as ckpt
from converters.errors import CheckpointError, ConfigError
from converters.train import TrainOptions, train
from hbnn.cli import main as hbnn


def _opts(data_dir, out, **kw):
    base = dict(arch="lenet", beta_w=16, beta_a=2, epochs=2, batch_size=64, lr=3e-3, seed=3,
                data_dir=str(data_dir), out=str(out), progress=False)
    base.update(kw)
    return TrainOptions(**base)


def test_train_learns_and_writes_safetensors_checkpoint(fake_fmnist, tmp_path):
    d, _ = fake_fmnist
    out = tmp_path / "run"
    config = train(_opts(d, out, epochs=3))
    assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "optimizer.safetensors"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["epoch"] == 3 and saved["arch"] == "lenet" and saved["seed"] == 3
    assert saved["betas"] == {"conv1": [1, 1], "conv2": [16, 2], "fc1": [16, 2], "fc2": [1, 1]}
    assert len(saved["history"]) == 3
    assert config["test_acc"] > 0.5  # the synthetic classes are easy; chance is 0.1
    state = load_file(str(out / "model.safetensors"))
    assert state["layers.fc1.weight"].shape == (500, 800)


def test_resume_continues_exactly(fake_fmnist, tmp_path, monkeypatch):
    d, _ = fake_fmnist
    train(_opts(d, tmp_path / "full", epochs=2))
    real_save = ckpt.save_checkpoint

    def save_then_interrupt(*args, **kwargs):  # the run is killed right after epoch 1's checkpoint
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_checkpoint", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        train(_opts(d, tmp_path / "split", epochs=2))
    monkeypatch.setattr(ckpt, "save_checkpoint", real_save)
    assert json.loads((tmp_path / "split" / "config.json").read_text())["epoch"] == 1
    train(_opts(d, tmp_path / "split", epochs=2, resume=True))
    a = load_file(str(tmp_path / "full" / "model.safetensors"))
    b = load_file(str(tmp_path / "split" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)


def test_resume_refuses_other_betas(fake_fmnist, tmp_path):
    d, _ = fake_fmnist
    train(_opts(d, tmp_path / "r", epochs=1))
    with pytest.raises(ConfigError, match="resume"):
        train(_opts(d, tmp_path / "r", epochs=2, beta_w=4, beta_a=4, resume=True))


def test_existing_checkpoint_needs_resume(fake_fmnist, tmp_path):
    d, _ = fake_fmnist
    train(_opts(d, tmp_path / "r", epochs=1))
    with pytest.raises(ConfigError, match="--resume"):
        train(_opts(d, tmp_path / "r", epochs=1))


def test_interrupted_save_is_detected(fake_fmnist, tmp_path):
    d, _ = fake_fmnist
    train(_opts(d, tmp_path / "r", epochs=1))
    cfg = json.loads((tmp_path / "r" / "config.json").read_text())
    cfg["epoch"] = 7
    (tmp_path / "r" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="interrupted save"):
        ckpt.load_checkpoint(str(tmp_path / "r"))


def test_cli_train_runs(fake_fmnist, tmp_path, capsys):
    d, _ = fake_fmnist
    rc = hbnn(["train", "--epochs", "1", "--data", str(d), "-o", str(tmp_path / "c"), "--no-progress",
               "--layer-beta", "fc1=8,8", "--seed", "1"])
    assert rc == 0
    assert "trained lenet for 1 epochs" in capsys.readouterr().out
    assert json.loads((tmp_path / "c" / "config.json").read_text())["betas"]["fc1"] == [8, 8]


@pytest.mark.parametrize("argv,match", [
    (["--data", "{missing}"], "apt-get install dataset-fashion-mnist"),
    (["--arch", "resnet"], "Expected an architecture in"),
    (["--arch", "alexnet"], "28x28x1 input"),
    (["--beta-w", "4", "--beta-a", "6"], "one divides the other"),
    (["--layer-beta", "conv9=2,2"], "inner layers"),
    (["--epochs", "0"], "--epochs >= 1"),
    (["--device", "warp9"], "Expected a torch device"),
])
def test_cli_train_bad_input_one_line(fake_fmnist, tmp_path, capsys, argv, match):
    d, _ = fake_fmnist
    argv = [a.replace("{missing}", str(tmp_path / "missing")) for a in argv]
    if "--data" not in argv:
        argv += ["--data", str(d)]
    out = tmp_path / "o"
    rc = hbnn(["train", "--no-progress", "-o", str(out)] + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and match in err[0], err
    assert not out.exists() or os.listdir(out) == []


def test_cli_train_bad_beta_text(capsys):
    with pytest.raises(SystemExit) as exc:
        hbnn(["train", "--beta-w", "x", "-o", "o"])
    assert exc.value.code == 2 and "Expected a beta" in capsys.readouterr().err

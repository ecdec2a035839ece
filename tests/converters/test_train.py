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

VAL = 64  # the fake training set has 256 images: hold out the last 64


def _opts(data_dir, out, **kw):
    base = dict(arch="lenet", beta_w=16, beta_a=2, epochs=2, batch_size=64, lr=3e-3, seed=3,
                data_dir=str(data_dir), out=str(out), progress=False, val_size=VAL)
    base.update(kw)
    return TrainOptions(**base)


def test_train_learns_and_writes_safetensors_checkpoint(fake_fmnist, tmp_path):
    d, _ = fake_fmnist
    out = tmp_path / "run"
    config = train(_opts(d, out, epochs=3))
    assert sorted(os.listdir(out)) == ["best", "config.json", "model.safetensors", "optimizer.safetensors"]
    saved = json.loads((out / "config.json").read_text())
    assert saved["epoch"] == 3 and saved["arch"] == "lenet" and saved["seed"] == 3
    assert saved["betas"] == {"conv1": [1, 1], "conv2": [16, 2], "fc1": [16, 2], "fc2": [1, 1]}
    assert len(saved["history"]) == 3 and saved["train_images"] == 256 - VAL and saved["val_size"] == VAL
    assert "test_acc" not in saved and all("test_acc" not in h for h in saved["history"])  # test set untouched
    assert config["best_val_acc"] > 0.5  # the synthetic classes are easy; chance is 0.1
    state = load_file(str(out / "model.safetensors"))
    assert state["layers.fc1.weight"].shape == (500, 800)


def test_resume_continues_exactly(fake_fmnist, tmp_path, monkeypatch):
    d, _ = fake_fmnist
    train(_opts(d, tmp_path / "full", epochs=2))
    real_save = ckpt.save_checkpoint

    def save_then_interrupt(directory, *args, **kwargs):  # the run is killed right after epoch 1's checkpoint
        real_save(directory, *args, **kwargs)
        if os.path.basename(directory) != "best":  # OUT/best is written first, then OUT
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
               "--layer-beta", "fc1=8,8", "--seed", "1", "--val-size", str(VAL)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "trained lenet for 1 epochs" in out and "best validation accuracy" in out
    assert json.loads((tmp_path / "c" / "config.json").read_text())["betas"]["fc1"] == [8, 8]


@pytest.mark.parametrize("argv,match", [
    (["--data", "{missing}"], "apt-get install dataset-fashion-mnist"),
    (["--arch", "resnet"], "Expected an architecture in"),
    (["--arch", "alexnet"], "28x28x1 input"),
    (["--beta-w", "4", "--beta-a", "6"], "one divides the other"),
    (["--layer-beta", "conv9=2,2"], "inner layers"),
    (["--epochs", "0"], "--epochs >= 1"),
    (["--device", "warp9"], "Expected a torch device"),
    (["--val-size", "256"], "Expected a validation size in [0, 256)"),
    (["--warmup-epochs", "3", "--epochs", "2"], "--warmup-epochs"),
    (["--kd-alpha", "1.5"], "--kd-alpha in [0, 1]"),
    (["--teacher", "{missing}"], "Expected a checkpoint directory"),
])
def test_cli_train_bad_input_one_line(fake_fmnist, tmp_path, capsys, argv, match):
    d, _ = fake_fmnist
    argv = [a.replace("{missing}", str(tmp_path / "missing")) for a in argv]
    if "--data" not in argv:
        argv += ["--data", str(d)]
    if "--val-size" not in argv:
        argv += ["--val-size", str(VAL)]
    out = tmp_path / "o"
    rc = hbnn(["train", "--no-progress", "-o", str(out)] + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and match in err[0], err
    assert not out.exists() or os.listdir(out) == []


def test_cli_train_bad_beta_text(capsys):
    with pytest.raises(SystemExit) as exc:
        hbnn(["train", "--beta-w", "x", "-o", "o"])
    assert exc.value.code == 2 and "Expected a beta" in capsys.readouterr().err


def test_best_validation_checkpoint_is_kept_beside_the_last(fake_fmnist, tmp_path, monkeypatch):
    import converters.train as tr

    d, _ = fake_fmnist
    accs = iter([0.5, 0.8, 0.6])  # epoch 2 scores best on validation
    monkeypatch.setattr(tr, "evaluate", lambda model, x, y: (next(accs), None))
    config = train(_opts(d, tmp_path / "r", epochs=3))
    assert config["best_epoch"] == 2 and config["best_val_acc"] == 0.8 and config["val_acc"] == 0.6
    best = json.loads((tmp_path / "r" / "best" / "config.json").read_text())
    assert best["epoch"] == 2 and best["best_epoch"] == 2
    assert not (tmp_path / "r" / "best" / "optimizer.safetensors").exists()  # a model to convert, not to resume
    last = load_file(str(tmp_path / "r" / "model.safetensors"))
    kept = load_file(str(tmp_path / "r" / "best" / "model.safetensors"))
    assert not torch.equal(last["layers.fc1.weight"], kept["layers.fc1.weight"])


def test_no_validation_split_trains_on_everything(fake_fmnist, tmp_path):
    d, _ = fake_fmnist
    config = train(_opts(d, tmp_path / "r", epochs=1, val_size=0))
    assert config["train_images"] == 256 and config["best_val_acc"] is None
    assert not (tmp_path / "r" / "best").exists()


def test_warmup_then_cosine_schedule():
    from converters.train import cosine_lr

    lrs = [cosine_lr(1.0, s, 100, warmup=10) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0) and lrs[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:])) and lrs[100] == pytest.approx(0.0, abs=1e-12)
    assert cosine_lr(1.0, 50, 100) == pytest.approx(0.5)  # no warm-up: the plain cosine


def test_kd_loss_matches_its_formula():
    import torch.nn.functional as F

    from converters.train import kd_loss

    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(8, 10, generator=g), torch.randn(8, 10, generator=g)
    y = torch.randint(0, 10, (8,), generator=g)
    T, a = 3.0, 0.7
    p_t = F.softmax(t / T, 1)
    kl = (p_t * (p_t.log() - F.log_softmax(s / T, 1))).sum(1).mean()
    want = a * T * T * kl + (1 - a) * F.cross_entropy(s, y)
    torch.testing.assert_close(kd_loss(s, t, y, a, T), want)
    torch.testing.assert_close(kd_loss(s, t, y, 0.0, T), F.cross_entropy(s, y))  # alpha 0: plain CE
    assert float(kd_loss(s, s, y, 1.0, T)) == pytest.approx(0.0, abs=1e-6)      # student == teacher: no loss


def test_distillation_trains_and_resume_refuses_another_teacher(fake_fmnist, tmp_path):
    d, _ = fake_fmnist
    train(_opts(d, tmp_path / "fp", epochs=1, beta_w=1, beta_a=1))
    train(_opts(d, tmp_path / "fp2", epochs=1, beta_w=1, beta_a=1, seed=4))
    config = train(_opts(d, tmp_path / "kd", epochs=1, teacher=str(tmp_path / "fp" / "best"), kd_alpha=0.5,
                         kd_temperature=2.0, warmup_epochs=0.5))
    assert config["kd"]["alpha"] == 0.5 and len(config["kd"]["teacher_sha256"]) == 64
    assert config["schedule"] == "warmup-cosine-per-step"
    with pytest.raises(ConfigError, match="teacher_sha256"):
        train(_opts(d, tmp_path / "kd", epochs=2, teacher=str(tmp_path / "fp2" / "best"), kd_alpha=0.5,
                    kd_temperature=2.0, warmup_epochs=0.5, resume=True))

"""Train a zoo HadaNet on Fashion-MNIST (Adam, warm-up + cosine learning rate, seeded, resumable).

Validation: the last ``val_size`` training images (``data.VAL_SIZE``) are held out; each
epoch is scored on them and the best-scoring epoch is saved to ``OUT/best`` next to the
last one in ``OUT``. The test set is never read here.

Distillation: with ``teacher`` (a float checkpoint) the loss is
``kd_alpha * T^2 * KL(teacher_T || student_T) + (1 - kd_alpha) * cross-entropy``,
both networks seeing the same augmented batch.

Determinism: the weights are initialised from ``seed`` and every epoch shuffles
with its own generator seeded from (seed, epoch), so a run resumed at an epoch
boundary continues exactly as an uninterrupted one would. The learning rate is
a pure function of the step, so nothing but the Adam moments needs saving.

Several processes (``torchrun --nproc_per_node N -m hbnn.cli train ...``,
WORLD_SIZE > 1) train with DistributedDataParallel, each on its shard of the
epoch's permutation; rank 0 evaluates and writes the checkpoints.
"""
from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from . import checkpoint as ckpt
from .data import DEFAULT_DATA_DIR, MEAN, STD, VAL_SIZE, load_fashion_mnist, normalize, split_train_val
from .errors import ConfigError
from .zoo import build_model, get_arch


AUGMENTS = ("none", "flip", "flip-shift")
BEST = "best"  # sub-directory holding the best-validation checkpoint


@dataclass
class TrainOptions:
    arch: str = "lenet"
    beta_w: Optional[int] = 16
    beta_a: Optional[int] = 2
    layer_betas: Dict[str, Tuple[Optional[int], Optional[int]]] = field(default_factory=dict)
    epochs: int = 20
    batch_size: int = 128
    lr: float = 1e-3
    seed: int = 0
    data_dir: str = DEFAULT_DATA_DIR
    out: str = "checkpoints/run"
    resume: bool = False
    limit: Optional[int] = None       # train on the first N images only (smoke tests)
    threads: Optional[int] = None     # torch CPU threads; None keeps torch's default
    device: Optional[str] = None      # None: cuda when available, else cpu
    progress: bool = True
    augment: str = "flip"             # "none" | "flip" (random horizontal flips) | "flip-shift" (+/-2 px)
    val_size: int = VAL_SIZE          # last N training images held out for validation; 0: train on all
    warmup_epochs: float = 0.0        # linear learning-rate warm-up before the cosine decay
    teacher: Optional[str] = None     # float checkpoint to distil from
    kd_alpha: float = 0.9             # weight of the distillation term (1 - kd_alpha on cross-entropy)
    kd_temperature: float = 4.0
    int_scales: bool = False          # integer scales (7-bit levels x float factors) on the binarized layers

    def validate(self) -> None:
        get_arch(self.arch)
        if get_arch(self.arch)["input"] != (28, 28, 1):
            raise ConfigError(f"Expected an architecture with 28x28x1 input for Fashion-MNIST, got {self.arch} "
                              f"({'x'.join(map(str, get_arch(self.arch)['input']))})")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"Expected --{name.replace('_', '-')} >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ConfigError(f"Expected --lr > 0, got {self.lr}")
        if self.augment not in AUGMENTS:
            raise ConfigError(f"Expected --augment in {AUGMENTS}, got {self.augment!r}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"Expected --limit >= 1, got {self.limit}")
        if self.val_size < 0:
            raise ConfigError(f"Expected --val-size >= 0, got {self.val_size}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise ConfigError(f"Expected 0 <= --warmup-epochs < --epochs ({self.epochs}), got {self.warmup_epochs}")
        if not 0 <= self.kd_alpha <= 1:
            raise ConfigError(f"Expected --kd-alpha in [0, 1], got {self.kd_alpha}")
        if not self.kd_temperature > 0:
            raise ConfigError(f"Expected --kd-temperature > 0, got {self.kd_temperature}")


def _dist_info() -> Tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return world, int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))


def cosine_lr(base: float, step: int, total: int, warmup: int = 0) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine decay to 0 at ``total``: a pure function of the step."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1.0 + math.cos(math.pi * min(step - warmup, total - warmup) / max(total - warmup, 1)))


def kd_loss(student_logits, teacher_logits, labels, alpha: float, temperature: float):
    """Hinton distillation: alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y).

    The T^2 keeps the soft term's gradient scale independent of T.
    """
    import torch.nn.functional as F

    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True)
    return alpha * t * t * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)


def load_teacher(path: str, device):
    """The teacher network (eval mode, no gradients) and its identity (SHA-256 of its weights file)."""
    import hashlib

    from .export import load_model

    model = load_model(path)
    if get_arch(model.arch)["input"] != (28, 28, 1):
        raise ConfigError(f"Expected a teacher with 28x28x1 input, got {model.arch}")
    for p in model.parameters():
        p.requires_grad_(False)
    weights = os.path.join(path, ckpt.MODEL) if os.path.isdir(path) else path
    with open(weights, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return model.to(device).eval(), digest


def to_nchw(images: np.ndarray):
    import torch
    return torch.from_numpy(np.ascontiguousarray(normalize(images).transpose(0, 3, 1, 2)))


def augment(x, mode: str, gen):
    """Random horizontal flips (and +/-2 pixel shifts) drawn from the epoch's generator ``gen``."""
    import torch

    if mode == "none":
        return x
    b = x.shape[0]
    flip = torch.rand(b, generator=gen) < 0.5
    x = torch.where(flip.to(x.device)[:, None, None, None], x.flip(3), x)
    if mode == "flip-shift":
        background = float(x.amin())  # the normalized value of a black pixel
        h, w = x.shape[2:]
        padded = torch.nn.functional.pad(x, (2, 2, 2, 2), value=background)
        offsets = torch.randint(0, 5, (b, 2), generator=gen).tolist()
        x = torch.stack([padded[i, :, dy:dy + h, dx:dx + w] for i, (dy, dx) in enumerate(offsets)])
    return x


def evaluate(model, x, y, batch_size: int = 1000) -> Tuple[float, "np.ndarray"]:
    """(top-1 accuracy, predictions) of ``model`` in eval mode on NCHW tensors."""
    import torch

    was_training = model.training
    model.eval()
    preds = []
    with torch.no_grad():
        for i in range(0, x.shape[0], batch_size):
            preds.append(model(x[i:i + batch_size]).argmax(1).cpu())
    model.train(was_training)
    p = torch.cat(preds)
    return float((p == y.cpu()).float().mean()), p.numpy()


def _kd_config(opts: TrainOptions, teacher_sha: Optional[str]) -> Optional[dict]:
    if not opts.teacher:
        return None
    return {"teacher_sha256": teacher_sha, "alpha": opts.kd_alpha, "temperature": opts.kd_temperature}


def _resume_state(opts: TrainOptions, model, optimizer, teacher_sha: Optional[str]) -> Tuple[int, list]:
    config, state = ckpt.load_checkpoint(opts.out)
    # Everything that shapes the run must match; only --epochs may change (it stretches the schedule).
    world = _dist_info()[0]
    mine = {"arch": opts.arch, "betas": {k: list(v) for k, v in model.betas.items()}, "seed": opts.seed,
            "batch_size": opts.batch_size * world, "lr": opts.lr, "augment": opts.augment, "limit": opts.limit,
            "val_size": opts.val_size, "warmup_epochs": opts.warmup_epochs, "kd": _kd_config(opts, teacher_sha),
            "int_scales": opts.int_scales}
    theirs = {k: config.get(k) for k in mine}
    theirs["int_scales"] = bool(config.get("int_scales", False))  # checkpoints before the option: float scales
    if mine != theirs:
        diff = {k: (theirs[k], mine[k]) for k in mine if mine[k] != theirs[k]}
        raise ConfigError(f"Expected --resume with the checkpoint's settings, got (checkpoint, now): {diff}")
    from .zoo import load_state_dict_checked
    load_state_dict_checked(model, state, opts.out)
    ckpt.load_optimizer(opts.out, optimizer)
    return int(config.get("epoch", 0)), list(config.get("history", []))


def train(opts: TrainOptions) -> dict:
    """Run training; returns the final config (also written to ``opts.out/config.json``)."""
    import torch
    import torch.nn.functional as F

    opts.validate()
    world, rank, local_rank = _dist_info()
    if opts.device:
        try:
            device = torch.device(opts.device)
        except RuntimeError:
            raise ConfigError(f"Expected a torch device such as cpu, cuda or cuda:1, got {opts.device!r}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"Expected a CUDA GPU for --device {opts.device}, got none available")
    elif torch.cuda.is_available():
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if opts.threads:
        torch.set_num_threads(opts.threads)
    if world > 1:
        import torch.distributed as dist
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    train_img, train_lbl, val_img, val_lbl = split_train_val(*load_fashion_mnist(opts.data_dir, "train"),
                                                             val_size=opts.val_size)
    if opts.limit:
        train_img, train_lbl = train_img[:opts.limit], train_lbl[:opts.limit]
        val_img, val_lbl = val_img[:opts.limit], val_lbl[:opts.limit]
    x_train, y_train = to_nchw(train_img).to(device), torch.from_numpy(train_lbl.astype(np.int64)).to(device)
    x_val, y_val = to_nchw(val_img).to(device), torch.from_numpy(val_lbl.astype(np.int64)).to(device)
    teacher, teacher_sha = load_teacher(opts.teacher, device) if opts.teacher else (None, None)

    torch.manual_seed(opts.seed)
    model = build_model(opts.arch, opts.beta_w, opts.beta_a, opts.layer_betas, opts.int_scales).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=opts.lr)
    start_epoch, history = 0, []
    has_ckpt = os.path.exists(os.path.join(opts.out, ckpt.CONFIG))
    if opts.resume and has_ckpt:
        start_epoch, history = _resume_state(opts, model, optimizer, teacher_sha)
    elif has_ckpt:
        raise ConfigError(f"Expected -o to name a new directory, got {opts.out} which holds a checkpoint "
                          f"(pass --resume to continue it)")
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel
        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    n = x_train.shape[0]
    per_rank = -(-n // world)  # ceil: every rank runs the same number of steps (DDP needs that)
    steps_per_epoch = -(-per_rank // opts.batch_size)
    total_steps = steps_per_epoch * opts.epochs
    warmup_steps = round(opts.warmup_epochs * steps_per_epoch)
    config = {"arch": opts.arch, "betas": {k: list(v) for k, v in model.betas.items()},
              "beta_w": opts.beta_w, "beta_a": opts.beta_a, "seed": opts.seed, "epochs": opts.epochs,
              "batch_size": opts.batch_size * world, "lr": opts.lr, "optimizer": "adam", "weight_decay": 0,
              "schedule": "warmup-cosine-per-step" if warmup_steps else "cosine-per-step",
              "warmup_epochs": opts.warmup_epochs, "augment": opts.augment, "world_size": world,
              "limit": opts.limit, "val_size": opts.val_size, "train_images": n,
              "kd": _kd_config(opts, teacher_sha), "teacher": opts.teacher, "int_scales": opts.int_scales,
              "data_mean": [MEAN], "data_std": [STD], "epoch": start_epoch, "history": history}
    if history:  # resumed: report the last finished epoch even if nothing is left to run
        config.update(_best(history))
    show = opts.progress and rank == 0
    tqdm = _tqdm() if show else None
    for epoch in range(start_epoch, opts.epochs):
        t0 = time.time()
        gen = torch.Generator().manual_seed(opts.seed * 100_003 + epoch)
        perm = torch.randperm(n, generator=gen)
        if world > 1:  # pad like DistributedSampler so every rank gets per_rank samples
            perm = torch.cat([perm, perm[:per_rank * world - n]])
        order = perm[rank::world].to(device)
        net.train()
        seen = correct = 0
        loss_sum = 0.0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{opts.epochs}", unit="batch",
                   mininterval=1.0 if sys.stderr.isatty() else 30.0, file=sys.stderr) if show else None
        for b in range(steps_per_epoch):
            idx = order[b * opts.batch_size:(b + 1) * opts.batch_size]
            if idx.numel() == 0:
                continue
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(opts.lr, epoch * steps_per_epoch + b, total_steps, warmup_steps)
            x = augment(x_train[idx], opts.augment, gen)
            logits = net(x)
            if teacher is None:
                loss = F.cross_entropy(logits, y_train[idx])
            else:
                with torch.no_grad():
                    teacher_logits = teacher(x)
                loss = kd_loss(logits, teacher_logits, y_train[idx], opts.kd_alpha, opts.kd_temperature)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += idx.numel()
            correct += int((logits.detach().argmax(1) == y_train[idx]).sum())
            loss_sum += float(loss.detach()) * idx.numel()
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss_sum / seen:.4f}", acc=f"{correct / seen:.4f}", refresh=False)
        if bar is not None:
            bar.close()
        if rank == 0:
            val_acc = round(evaluate(model, x_val, y_val)[0], 5) if len(y_val) else None
            history.append({"epoch": epoch + 1, "train_loss": round(loss_sum / max(seen, 1), 5),
                            "train_acc": round(correct / max(seen, 1), 5), "val_acc": val_acc,
                            "seconds": round(time.time() - t0, 1)})
            config.update(epoch=epoch + 1, history=history, **_best(history))
            if config["best_epoch"] == epoch + 1 and val_acc is not None:
                ckpt.save_checkpoint(os.path.join(opts.out, BEST), model, config)  # before the last: see _best
            ckpt.save_checkpoint(opts.out, model, config, optimizer)
            if show:
                print(f"epoch {epoch + 1}/{opts.epochs}: train loss {loss_sum / max(seen, 1):.4f} "
                      f"acc {correct / max(seen, 1):.4f}, val acc {val_acc if val_acc is not None else '-'} "
                      f"({time.time() - t0:.0f} s)", file=sys.stderr)
    if world > 1:
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    config["options"] = {k: v for k, v in asdict(opts).items() if k not in ("progress",)}
    return config


def _best(history: list) -> dict:
    """Best-validation epoch (the earliest on ties) of a run's history, and the last epoch's val accuracy.

    OUT/best is saved before OUT, so an interrupted save never leaves OUT naming a best epoch
    that OUT/best does not hold.
    """
    scored = [h for h in history if h.get("val_acc") is not None]
    if not scored:
        return {"val_acc": None, "best_epoch": history[-1]["epoch"] if history else 0, "best_val_acc": None}
    best = max(scored, key=lambda h: (h["val_acc"], -h["epoch"]))
    return {"val_acc": history[-1].get("val_acc"), "best_epoch": best["epoch"], "best_val_acc": best["val_acc"]}


def _tqdm():
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm ships with the [train] extra
        raise ConfigError("Expected tqdm for the progress bar, got none (pip install '.[train]')") from None
    return tqdm

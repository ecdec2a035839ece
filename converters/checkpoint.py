"""Training checkpoints: safetensors tensors + a JSON config, never pickle.

A checkpoint is a directory::

    config.json            arch, betas, per-layer betas, seed, epochs done, history
    model.safetensors      the state dict (metadata repeats arch and epoch)
    optimizer.safetensors  Adam moments (only needed to resume)

Each file is written to a temporary name and renamed into place, so an
interrupted save never leaves a half-written file; the epoch stored in both
config and model metadata catches a save interrupted between files.
"""
from __future__ import annotations

import json
import os
import tempfile
from typing import Dict, Tuple

from .errors import CheckpointError

CONFIG = "config.json"
MODEL = "model.safetensors"
OPTIMIZER = "optimizer.safetensors"
FORMAT = "hbnn-checkpoint/1"


def atomic_write(path: str, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path``; the temp file is removed on failure."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_json(path: str, obj: dict) -> None:
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")
    atomic_write(path, write)


def save_checkpoint(directory: str, model, config: dict, optimizer=None) -> None:
    """Write model (+ optimizer) tensors, then the config that names the epoch."""
    from safetensors.torch import save_file

    os.makedirs(directory, exist_ok=True)
    config = dict(config, format=FORMAT)
    meta = {"format": FORMAT, "arch": str(config["arch"]), "epoch": str(config.get("epoch", 0))}
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    atomic_write(os.path.join(directory, MODEL), lambda tmp: save_file(state, tmp, metadata=meta))
    if optimizer is not None:
        tensors, opt_meta = optimizer_tensors(optimizer)
        opt_meta.update(meta)
        atomic_write(os.path.join(directory, OPTIMIZER), lambda tmp: save_file(tensors, tmp, metadata=opt_meta))
    _write_json(os.path.join(directory, CONFIG), config)


def optimizer_tensors(optimizer) -> Tuple[dict, Dict[str, str]]:
    """Flatten an optimizer's state into named tensors; hyper-parameters go into string metadata."""
    import torch

    sd = optimizer.state_dict()
    tensors = {}
    for idx, st in sd["state"].items():
        for key, value in st.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"state.{idx}.{key}"] = t.detach().contiguous().cpu()
    meta = {"param_groups": json.dumps(sd["param_groups"])}
    return tensors, meta


def load_optimizer(directory: str, optimizer) -> None:
    from safetensors import safe_open

    path = os.path.join(directory, OPTIMIZER)
    if not os.path.exists(path):
        raise CheckpointError(f"Expected optimizer state {path} to resume, got no such file")
    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            state: Dict[int, dict] = {}
            for name in f.keys():
                _, idx, key = name.split(".", 2)
                state.setdefault(int(idx), {})[key] = f.get_tensor(name)
        groups = json.loads(meta["param_groups"])
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors/JSON/shape errors all mean the same to the user
        raise CheckpointError(f"Expected a readable optimizer state in {path}, got {type(exc).__name__}: {exc}") \
            from None


def read_config(directory: str) -> dict:
    path = os.path.join(directory, CONFIG)
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except FileNotFoundError:
        raise CheckpointError(f"Expected a checkpoint config {path}, got no such file") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"Expected a JSON checkpoint config in {path}, got {exc}") from None
    if not isinstance(config, dict) or config.get("format") != FORMAT or "arch" not in config:
        raise CheckpointError(f"Expected a config of format {FORMAT!r} with an 'arch' in {path}, "
                              f"got {str(config)[:80]}")
    return config


def read_state_dict(path: str) -> Tuple[dict, Dict[str, str]]:
    """Load tensors + metadata from a safetensors file with a one-line error on any problem."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            return {k: f.get_tensor(k) for k in f.keys()}, meta
    except FileNotFoundError:
        raise CheckpointError(f"Expected a safetensors file {path}, got no such file") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"Expected a valid safetensors file {path}, got {exc}") from None


def load_checkpoint(path: str) -> Tuple[dict, dict]:
    """(config, state dict) from a checkpoint directory (or its model.safetensors)."""
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(path) and os.path.basename(path) != MODEL:
        raise CheckpointError(f"Expected a checkpoint directory or its {MODEL}, got {path}")
    config = read_config(directory)
    state, meta = read_state_dict(os.path.join(directory, MODEL))
    if meta.get("arch") != config["arch"] or meta.get("epoch") != str(config.get("epoch", 0)):
        raise CheckpointError(f"Expected {MODEL} and {CONFIG} of the same save in {directory}, got arch/epoch "
                              f"{meta.get('arch')}/{meta.get('epoch')} vs {config['arch']}/{config.get('epoch')} "
                              f"(an interrupted save?)")
    return config, state


def load_plain_state_dict(path: str) -> dict:
    """A float zoo model saved by plain PyTorch (.pt/.pth, weights only) or as .safetensors."""
    if path.endswith(".safetensors"):
        return read_state_dict(path)[0]
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"Expected a PyTorch state dict file {path}, got no such file") from None
    except Exception as exc:  # weights_only refuses pickled code: report it, never run it
        raise CheckpointError(f"Expected a weights-only PyTorch state dict in {path}, got "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(torch.is_tensor(v) for v in obj.values()):
        raise CheckpointError(f"Expected a state dict (name -> tensor) in {path}, got {type(obj).__name__}")
    return obj

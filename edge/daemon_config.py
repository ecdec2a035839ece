"""The daemon's TOML config (``/etc/hbnn/daemon.toml``), parsed and checked into a dataclass.

    [model]   path = "...hbn", threads = 0 (all cores), topk = 3, crop = "center"
    [source]  spec = "v4l2:/dev/video0", loop = false, frame_timeout_s = 5, max_fps = 0
    [link]    url = "/dev/ttyAMA0?baudrate=921600", protocol = "mavlink", [link.options] ...
    [daemon]  log_level = "info", status_interval_s = 10, retry_initial_s = 0.5, retry_max_s = 30,
              stats_file = ""

Only ``model.path`` and ``source.spec`` are required; ``[link]`` is optional (results are
then only logged). Unknown keys are errors, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Optional

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    import tomli as tomllib


from .errors import DaemonConfigError


LOG_LEVELS = ("debug", "info", "warning", "error")


@dataclass(frozen=True)
class DaemonConfig:
    model: str
    source: str
    # 0 = every core: the frame executor drops to one thread by itself when the others do not pay
    # (docs/BENCHMARKS.md, "Threads": 1.7-1.8x at 2 idle cores, 1.00x beside a busy process).
    threads: int = 0
    topk: int = 3
    crop: str = "center"
    loop_source: bool = False
    frame_timeout_s: float = 5.0
    max_fps: float = 0.0             # 0 = as fast as frames come
    link_url: Optional[str] = None
    protocol: str = "mavlink"
    link_options: Dict[str, Any] = field(default_factory=dict)
    log_level: str = "info"
    status_interval_s: float = 10.0
    retry_initial_s: float = 0.5
    retry_max_s: float = 30.0
    stats_file: Optional[str] = None  # JSON counters, rewritten every status_interval_s


# section -> {toml key: (field name, type)}
_SCHEMA = {
    "model": {"path": ("model", str), "threads": ("threads", int), "topk": ("topk", int),
              "crop": ("crop", str)},
    "source": {"spec": ("source", str), "loop": ("loop_source", bool),
               "frame_timeout_s": ("frame_timeout_s", float), "max_fps": ("max_fps", float)},
    "link": {"url": ("link_url", str), "protocol": ("protocol", str), "options": ("link_options", dict)},
    "daemon": {"log_level": ("log_level", str), "status_interval_s": ("status_interval_s", float),
               "retry_initial_s": ("retry_initial_s", float), "retry_max_s": ("retry_max_s", float),
               "stats_file": ("stats_file", str)},
}


def _check_type(value, kind, where: str):
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        raise DaemonConfigError(f"Expected {where} to be a {kind.__name__}, got {value!r}")
    return value


def parse_config(data: Dict[str, Any], origin: str = "config", base_dir: Optional[Path] = None) -> DaemonConfig:
    """Validate a decoded TOML document. Relative model/npz/stats/key paths resolve against ``base_dir``."""
    values: Dict[str, Any] = {}
    for section, content in data.items():
        if section not in _SCHEMA:
            raise DaemonConfigError(f"Expected sections {sorted(_SCHEMA)} in {origin}, got [{section}]")
        if not isinstance(content, dict):
            raise DaemonConfigError(f"Expected [{section}] to be a table in {origin}, got {content!r}")
        for key, value in content.items():
            if key not in _SCHEMA[section]:
                raise DaemonConfigError(f"Expected keys {sorted(_SCHEMA[section])} in [{section}] of {origin}, "
                                  f"got {key!r}")
            name, kind = _SCHEMA[section][key]
            values[name] = _check_type(value, kind, f"{section}.{key}")
    for required, where in (("model", "model.path"), ("source", "source.spec")):
        if not values.get(required):
            raise DaemonConfigError(f"Expected {where} in {origin}, got nothing")
    if base_dir is not None:
        if not Path(values["model"]).is_absolute():
            values["model"] = str(base_dir / values["model"])
        kind, _, rest = values["source"].partition(":")
        if kind in ("npz", "images", "video") and rest and not Path(rest).is_absolute():
            values["source"] = f"{kind}:{base_dir / rest}"
        if values.get("stats_file") and not Path(values["stats_file"]).is_absolute():
            values["stats_file"] = str(base_dir / values["stats_file"])
        key = values.get("link_options", {}).get("signing_key_file")
        if isinstance(key, str) and key and not Path(key).is_absolute():
            values["link_options"] = {**values["link_options"], "signing_key_file": str(base_dir / key)}
    if "stats_file" in values and not values["stats_file"]:
        values["stats_file"] = None  # stats_file = "" turns it off
    cfg = DaemonConfig(**values)
    if cfg.log_level.lower() not in LOG_LEVELS:
        raise DaemonConfigError(f"Expected daemon.log_level in {LOG_LEVELS}, got {cfg.log_level!r}")
    if cfg.protocol not in ("mavlink", "frames"):
        raise DaemonConfigError(f"Expected link.protocol 'mavlink' or 'frames', got {cfg.protocol!r}")
    if cfg.threads < 0 or cfg.topk < 1:
        raise DaemonConfigError(f"Expected model.threads >= 0 and model.topk >= 1, got {cfg.threads}, {cfg.topk}")
    if not (0 < cfg.retry_initial_s <= cfg.retry_max_s):
        raise DaemonConfigError(f"Expected 0 < retry_initial_s <= retry_max_s, got {cfg.retry_initial_s}, "
                          f"{cfg.retry_max_s}")
    if cfg.max_fps < 0:
        raise DaemonConfigError(f"Expected source.max_fps >= 0 (0 = unlimited), got {cfg.max_fps}")
    if cfg.frame_timeout_s <= 0 or cfg.status_interval_s <= 0:
        raise DaemonConfigError("Expected positive source.frame_timeout_s and daemon.status_interval_s, got "
                          f"{cfg.frame_timeout_s}, {cfg.status_interval_s}")
    return cfg


def load_config(path) -> DaemonConfig:
    """Read and validate a TOML config file; raises DaemonConfigError with the reason."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise DaemonConfigError(f"Expected a readable config file, got {path}: {exc.strerror or exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise DaemonConfigError(f"Expected valid TOML in {path}, got {exc}") from exc
    return parse_config(data, str(path), base_dir=path.parent)

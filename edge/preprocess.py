"""Camera frame -> model input tensor, vectorized NumPy, driven by the model's input spec.

Steps: validate -> centre-crop to the model's aspect ratio -> resize (box average when
shrinking, nearest when growing) -> grayscale/colour to the model's channel count ->
``(pixel * pixel_scale - mean) / std`` per channel, written into one reused float32 buffer.
Index maps are computed once per frame size, so steady-state frames cost a few NumPy calls.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from .errors import BadFrameError, InputSpecError

# ITU-R BT.601 luma, the weights OpenCV and PIL use for RGB -> gray.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def _per_channel(values, channels: int, name: str) -> np.ndarray:
    arr = np.asarray(values, np.float32).reshape(-1)
    if arr.size == 1:
        arr = np.repeat(arr, channels)
    if arr.size != channels:
        raise InputSpecError(f"Expected {name} with 1 or {channels} values, got {arr.size}")
    return arr


def normalization(spec: Dict) -> Tuple[np.ndarray, np.ndarray]:
    """The input spec's ``(pixel * pixel_scale - mean) / std`` as one multiply-add per pixel.

    Returns float32 ``(scale, offset)`` per channel, so that ``x * scale + offset`` is the
    normalized input; the runtime and the camera preprocessor both use this one formula.
    """
    c = int(spec["shape"][-1])
    std = _per_channel(spec.get("std", 1.0), c, "std")
    if np.any(std == 0) or not np.all(np.isfinite(std)):
        raise InputSpecError(f"Expected finite non-zero std, got {std.tolist()}")
    mean = _per_channel(spec.get("mean", 0.0), c, "mean")
    return (np.float32(spec.get("pixel_scale", 1.0)) / std).astype(np.float32), (-mean / std).astype(np.float32)


def _axis_plan(src: int, dst: int):
    """How one axis maps src -> dst: ("box", starts, counts) or ("nearest", index)."""
    if src >= dst:
        edges = (np.arange(dst + 1) * src) // dst  # bins of floor(src/dst) or one more pixel
        return ("box", edges[:-1].astype(np.intp), np.diff(edges).astype(np.float32))
    return ("nearest", np.minimum(((np.arange(dst) + 0.5) * src / dst).astype(np.intp), src - 1), None)


def _resize_axis(img: np.ndarray, plan, axis: int) -> np.ndarray:
    kind, idx, counts = plan
    if kind == "nearest":
        return np.take(img, idx, axis=axis)
    if len(idx) == img.shape[axis]:  # identity
        return img
    summed = np.add.reduceat(img, idx, axis=axis, dtype=np.float32)  # uint8 would wrap
    shape = [1] * img.ndim
    shape[axis] = -1
    return summed / counts.reshape(shape)


class Preprocessor:
    """Callable: ``pre(frame) -> (1, H, W, C) float32`` (a reused buffer: copy it to keep it).

    ``spec`` is the model's input spec: ``shape`` [H, W, C], ``pixel_scale``, ``mean``, ``std``.
    ``crop="center"`` keeps the aspect ratio; ``crop="none"`` squashes the whole frame.
    """

    def __init__(self, spec: Dict, crop: str = "center"):
        try:
            h, w, c = (int(v) for v in spec["shape"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputSpecError(f"Expected input spec shape [H, W, C], got {spec.get('shape')!r}") from exc
        if min(h, w, c) < 1 or c not in (1, 3):
            raise InputSpecError(f"Expected input shape [H, W, 1 or 3], got {[h, w, c]}")
        if spec.get("layout", "NHWC") != "NHWC":
            raise InputSpecError(f"Expected layout NHWC, got {spec.get('layout')!r}")
        if crop not in ("center", "none"):
            raise InputSpecError(f"Expected crop 'center' or 'none', got {crop!r}")
        self.shape = (h, w, c)
        self.crop = crop
        self._scale, self._offset = normalization(spec)
        self._out = np.empty((1, h, w, c), np.float32)
        self._plans: Dict[Tuple[int, int], Tuple] = {}

    def _plan(self, fh: int, fw: int):
        key = (fh, fw)
        if key not in self._plans:
            h, w, _ = self.shape
            y0, x0, ch, cw = 0, 0, fh, fw
            if self.crop == "center":
                # Largest centred window with the model's aspect ratio.
                if fw * h > fh * w:
                    cw = max(1, (fh * w) // h)
                    x0 = (fw - cw) // 2
                else:
                    ch = max(1, (fw * h) // w)
                    y0 = (fh - ch) // 2
            self._plans[key] = (slice(y0, y0 + ch), slice(x0, x0 + cw), _axis_plan(ch, h), _axis_plan(cw, w))
        return self._plans[key]

    def validate(self, frame) -> np.ndarray:
        """The frame as (H, W, C) with C in 1/3; raises BadFrameError naming the problem."""
        if not isinstance(frame, np.ndarray):
            raise BadFrameError(f"Expected a NumPy array frame, got {type(frame).__name__}")
        if frame.dtype != np.uint8 and frame.dtype not in (np.float32, np.float64):
            raise BadFrameError(f"Expected a uint8 (or float32/64 pixel) frame, got dtype {frame.dtype}")
        if frame.ndim == 2:
            frame = frame[:, :, None]
        if frame.ndim != 3 or frame.shape[2] not in (1, 3, 4) or frame.shape[0] < 1 or frame.shape[1] < 1:
            raise BadFrameError(f"Expected a frame of shape (H, W) or (H, W, 1|3|4), got {frame.shape}")
        if frame.dtype != np.uint8 and not np.isfinite(frame).all():
            raise BadFrameError("Expected finite pixel values, got NaN or inf in the frame")
        return frame[:, :, :3]  # drop alpha

    def __call__(self, frame, out: Optional[np.ndarray] = None) -> np.ndarray:
        img = self.validate(frame)
        rows, cols, yplan, xplan = self._plan(img.shape[0], img.shape[1])
        img = img[rows, cols]
        img = _resize_axis(img, yplan, 0)
        img = _resize_axis(img, xplan, 1)
        c = self.shape[2]
        if c == 1 and img.shape[2] == 3:
            img = img @ _LUMA if img.dtype == np.float32 else img.astype(np.float32) @ _LUMA
            img = img[:, :, None]
        elif c == 3 and img.shape[2] == 1:
            img = np.broadcast_to(img, img.shape[:2] + (3,))
        target = self._out if out is None else out
        np.multiply(img, self._scale, out=target[0], casting="unsafe")
        target[0] += self._offset
        return target

    def batch(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """Several frames -> (N, H, W, C) float32 (a new array)."""
        out = np.empty((len(frames),) + self.shape, np.float32)
        for i, frame in enumerate(frames):
            self(frame, out=out[i:i + 1])
        return out

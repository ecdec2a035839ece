"""Frame sources for the inference loop, chosen by a ``--source`` spec string.

    picamera2[:WxH]          Raspberry Pi CSI camera (package ``picamera2``)
    v4l2:/dev/videoN         USB/V4L2 camera through OpenCV (extra ``camera``)
    gst:<pipeline>           GStreamer pipeline through OpenCV, e.g. Jetson ``nvarguscamerasrc``
    video:FILE               a video file through OpenCV
    images:DIR               image files (.npy, .pgm/.ppm; .png/.jpg need OpenCV)
    npz:FILE                 a clip: ``images`` (N,H,W[,C]) uint8 and optional ``labels``
    synthetic[:HxW[xC]]      deterministic random frames, no hardware

Every source yields :class:`Frame` objects with RGB (or single-channel) uint8 images.
Board libraries are imported only when their source is opened. Cameras are ``live``:
the loop reads them through :class:`LatestFrameGrabber`, a capture thread that keeps
only the newest frame so a slow model never builds a backlog.
"""
from __future__ import annotations

import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Tuple

import numpy as np


from .errors import CameraUnavailable, MissingDependency, SourceError, SourceSpecError


@dataclass
class Frame:
    image: np.ndarray            # (H, W) or (H, W, C), RGB order for colour
    index: int                   # position in the stream, from 0
    timestamp_us: int            # capture time, CLOCK_MONOTONIC microseconds
    label: Optional[int] = None  # ground truth when the clip carries it


def _now_us() -> int:
    return time.monotonic_ns() // 1000


def _import_cv2():
    try:
        import cv2  # noqa: WPS433 (lazy on purpose: large and board-specific)
    except ImportError as exc:
        raise MissingDependency(
            "Expected OpenCV for this source, got ImportError; install it with "
            "`pip install 'hadanets-edge[camera]'` (or `apt install python3-opencv` on the board)") from exc
    return cv2


class FrameSource:
    """Base class: ``open()``, then ``read()`` until it returns None (end of stream)."""

    live = False          # a camera: frames keep coming and old ones lose their value
    spec = ""

    def __init__(self) -> None:
        self._index = 0

    def open(self) -> "FrameSource":
        return self

    def read(self) -> Optional[Frame]:  # pragma: no cover - abstract
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _frame(self, image: np.ndarray, label: Optional[int] = None) -> Frame:
        frame = Frame(image, self._index, _now_us(), label)
        self._index += 1
        return frame

    def __iter__(self) -> Iterator[Frame]:
        while True:
            frame = self.read()
            if frame is None:
                return
            yield frame

    def __enter__(self) -> "FrameSource":
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec!r}>"


class SyntheticSource(FrameSource):
    """Seeded random frames; ``count`` None means endless."""

    def __init__(self, shape: Tuple[int, ...] = (480, 640, 3), count: Optional[int] = None, seed: int = 0):
        super().__init__()
        self.shape, self.count, self.seed = tuple(shape), count, seed
        self.spec = "synthetic:" + "x".join(str(s) for s in shape)
        self._rng = np.random.default_rng(seed)

    def read(self) -> Optional[Frame]:
        if self.count is not None and self._index >= self.count:
            return None
        return self._frame(self._rng.integers(0, 256, self.shape, dtype=np.uint8))


class NpzSource(FrameSource):
    """A clip stored as ``images`` (+ optional ``labels``) in an .npz file; never unpickles."""

    def __init__(self, path: str, loop: bool = False):
        super().__init__()
        self.path, self.loop, self.spec = Path(path), loop, f"npz:{path}"
        self.images: Optional[np.ndarray] = None
        self.labels: Optional[np.ndarray] = None
        self.class_names: Optional[List[str]] = None

    def open(self) -> "NpzSource":
        if not self.path.is_file():
            raise CameraUnavailable(f"Expected an .npz clip file, got missing path {str(self.path)!r}")
        try:
            with np.load(self.path, allow_pickle=False) as data:
                if "images" not in data:
                    raise SourceError(f"Expected an 'images' array in {self.path}, got keys {sorted(data.files)}")
                self.images = np.asarray(data["images"])
                self.labels = np.asarray(data["labels"]) if "labels" in data else None
                if "class_names" in data:
                    self.class_names = [str(c) for c in data["class_names"]]
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # corrupt or cut short
            raise SourceError(f"Expected a readable .npz clip, got {self.path}: {exc}") from exc
        if self.images.ndim not in (3, 4) or len(self.images) == 0:
            raise SourceError(f"Expected images of shape (N,H,W) or (N,H,W,C), got {self.images.shape}")
        if self.labels is not None and len(self.labels) != len(self.images):
            raise SourceError(f"Expected {len(self.images)} labels, got {len(self.labels)}")
        return self

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    def read(self) -> Optional[Frame]:
        if self.images is None:
            self.open()
        i = self._index % len(self.images) if self.loop else self._index
        if i >= len(self.images):
            return None
        label = None if self.labels is None else int(self.labels[i])
        return self._frame(self.images[i], label)


_IMAGE_EXTS = (".npy", ".pgm", ".ppm", ".pnm", ".png", ".jpg", ".jpeg", ".bmp")


def _read_pnm(path: Path) -> np.ndarray:
    """Binary PGM (P5) / PPM (P6), 8-bit: enough for test clips without OpenCV."""
    data = path.read_bytes()
    fields, pos = [], 0
    while len(fields) < 4:
        while pos < len(data) and data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos)
            continue
        end = pos
        while end < len(data) and not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    magic, w, h, maxval = fields[0], int(fields[1]), int(fields[2]), int(fields[3])
    if magic not in (b"P5", b"P6") or maxval > 255:
        raise SourceError(f"Expected an 8-bit binary PGM/PPM, got {magic!r} max {maxval} in {path}")
    channels = 3 if magic == b"P6" else 1
    pixels = np.frombuffer(data, np.uint8, count=w * h * channels, offset=pos + 1)
    return pixels.reshape((h, w, channels) if channels == 3 else (h, w))


class ImageDirSource(FrameSource):
    """Image files of a directory in name order."""

    def __init__(self, directory: str, loop: bool = False):
        super().__init__()
        self.dir, self.loop, self.spec = Path(directory), loop, f"images:{directory}"
        self.files: List[Path] = []

    def open(self) -> "ImageDirSource":
        if not self.dir.is_dir():
            raise CameraUnavailable(f"Expected a directory of images, got {str(self.dir)!r}")
        self.files = sorted(p for p in self.dir.iterdir() if p.suffix.lower() in _IMAGE_EXTS)
        if not self.files:
            raise SourceError(f"Expected image files ({', '.join(_IMAGE_EXTS)}) in {self.dir}, got none")
        return self

    def read(self) -> Optional[Frame]:
        if not self.files:
            self.open()
        i = self._index % len(self.files) if self.loop else self._index
        if i >= len(self.files):
            return None
        path = self.files[i]
        suffix = path.suffix.lower()
        try:
            if suffix == ".npy":
                image = np.load(path, allow_pickle=False)
            elif suffix in (".pgm", ".ppm", ".pnm"):
                image = _read_pnm(path)
            else:
                image = None
        except SourceError:
            raise
        except OSError as exc:  # vanished or unreadable: the "camera" is gone
            raise CameraUnavailable(f"Expected a readable image, got {path}: {type(exc).__name__}: {exc}") from exc
        except (ValueError, EOFError, IndexError) as exc:  # corrupt or cut short
            raise SourceError(f"Expected a valid image file, got {path}: {type(exc).__name__}: {exc}") from exc
        if image is None:
            cv2 = _import_cv2()
            image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if image is None:
                raise SourceError(f"Expected a decodable image, got {path}")
            if image.ndim == 3:
                image = image[..., 2::-1]  # BGR(A) -> RGB
        return self._frame(image)


class OpenCVSource(FrameSource):
    """v4l2 devices, GStreamer pipelines and video files, all through cv2.VideoCapture."""

    def __init__(self, kind: str, target: str, loop: bool = False):
        super().__init__()
        self.kind, self.target, self.loop = kind, target, loop
        self.spec = f"{kind}:{target}"
        self.live = kind in ("v4l2", "gst")
        self._cap = None

    def open(self) -> "OpenCVSource":
        if self.kind in ("v4l2", "video") and not os.path.exists(self.target):
            what = "camera device" if self.kind == "v4l2" else "video file"
            raise CameraUnavailable(f"Expected a {what}, got missing path {self.target!r}")
        cv2 = _import_cv2()
        backend = {"v4l2": cv2.CAP_V4L2, "gst": cv2.CAP_GSTREAMER}.get(self.kind, cv2.CAP_ANY)
        cap = cv2.VideoCapture(self.target, backend)
        if not cap.isOpened():
            cap.release()
            raise CameraUnavailable(f"Expected OpenCV to open {self.spec!r}, got a closed capture "
                                    "(device busy, no permission, or OpenCV built without that backend)")
        self._cap = cap
        return self

    def read(self) -> Optional[Frame]:
        if self._cap is None:
            self.open()
        ok, image = self._cap.read()
        if not ok and self.kind == "video" and self.loop:
            self._cap.set(1, 0)  # CAP_PROP_POS_FRAMES: rewind
            ok, image = self._cap.read()
        if not ok:
            if self.live:
                raise CameraUnavailable(f"Expected a frame from {self.spec!r}, got none (camera lost?)")
            return None
        if image.ndim == 3:
            image = image[..., 2::-1]  # OpenCV delivers BGR
        return self._frame(image)

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


class Picamera2Source(FrameSource):
    """Raspberry Pi CSI camera through libcamera's picamera2."""

    live = True

    def __init__(self, size: Tuple[int, int] = (640, 480)):
        super().__init__()
        self.size, self.spec = size, "picamera2:%dx%d" % size
        self._cam = None

    def open(self) -> "Picamera2Source":
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise MissingDependency(
                "Expected the picamera2 package for the CSI camera, got ImportError; install it with "
                "`sudo apt install python3-picamera2` (Raspberry Pi OS) and create the venv with "
                "--system-site-packages") from exc
        try:
            cam = Picamera2()
            # libcamera's "BGR888" is R,G,B in memory order, i.e. what the model wants.
            cam.configure(cam.create_video_configuration(main={"format": "BGR888", "size": self.size}))
            cam.start()
        except Exception as exc:  # libcamera raises RuntimeError/IndexError for "no camera"
            raise CameraUnavailable(f"Expected a CSI camera, got {type(exc).__name__}: {exc}") from exc
        self._cam = cam
        return self

    def read(self) -> Optional[Frame]:
        if self._cam is None:
            self.open()
        try:
            image = self._cam.capture_array("main")
        except Exception as exc:
            raise CameraUnavailable(f"Expected a frame from the CSI camera, got {exc}") from exc
        return self._frame(image[..., :3])

    def close(self) -> None:
        if self._cam is not None:
            try:
                self._cam.stop()
                self._cam.close()
            finally:
                self._cam = None


def _parse_dims(text: str, spec: str) -> Tuple[int, ...]:
    try:
        dims = tuple(int(d) for d in text.lower().split("x"))
    except ValueError:
        dims = ()
    if len(dims) not in (2, 3) or min(dims) < 1:
        raise SourceSpecError(f"Expected dimensions like 480x640 or 28x28x1 in {spec!r}, got {text!r}")
    return dims


def open_source(spec: str, *, loop: bool = False) -> FrameSource:
    """Build (not yet open) the source named by ``spec``; raises SourceSpecError if unknown."""
    if not isinstance(spec, str) or not spec:
        raise SourceSpecError(f"Expected a source spec such as 'v4l2:/dev/video0', got {spec!r}")
    kind, _, rest = spec.partition(":")
    if kind == "synthetic":
        return SyntheticSource(_parse_dims(rest, spec) if rest else (480, 640, 3))
    if kind == "picamera2":
        dims = _parse_dims(rest, spec) if rest else (640, 480)
        return Picamera2Source((dims[0], dims[1]))
    if kind not in ("npz", "images", "v4l2", "gst", "video"):
        raise SourceSpecError(
            f"Expected a source spec picamera2, v4l2:/dev/videoN, gst:<pipeline>, video:FILE, images:DIR, "
            f"npz:FILE or synthetic, got {spec!r}")
    if not rest:
        raise SourceSpecError(f"Expected '{kind}:<target>' with a target after the colon, got {spec!r}")
    if kind == "npz":
        return NpzSource(rest, loop=loop)
    if kind == "images":
        return ImageDirSource(rest, loop=loop)
    return OpenCVSource(kind, rest, loop=loop)


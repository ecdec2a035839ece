"""Frame sources: spec parsing, file sources, lazy board libraries, latest-frame-wins capture."""
from __future__ import annotations

import sys
import threading
import time

import numpy as np
import pytest

from edge.capture import LatestFrameGrabber
from edge.sources import (CameraUnavailable, Frame, FrameSource, ImageDirSource, MissingDependency, NpzSource,
                          SourceError, SourceSpecError, SyntheticSource, open_source)


@pytest.mark.parametrize("spec", ["", "webcam", "v4l2", "v4l2:", "npz:", "rtsp://cam", "synthetic:abc",
                                  "synthetic:0x4", None])
def test_bad_specs_name_the_problem(spec):
    with pytest.raises(SourceSpecError, match="Expected"):
        open_source(spec)


def test_spec_kinds():
    assert isinstance(open_source("synthetic"), SyntheticSource)
    assert open_source("synthetic:28x28x1").shape == (28, 28, 1)
    assert open_source("npz:clip.npz").path.name == "clip.npz"
    assert open_source("v4l2:/dev/video7").live
    assert open_source("gst:nvarguscamerasrc ! appsink").target == "nvarguscamerasrc ! appsink"
    assert not open_source("video:a.mp4").live


def test_synthetic_is_deterministic_and_bounded():
    a = [f.image for f in SyntheticSource((4, 5, 3), count=3, seed=1)]
    b = [f.image for f in SyntheticSource((4, 5, 3), count=3, seed=1)]
    assert len(a) == 3 and all(x.dtype == np.uint8 and x.shape == (4, 5, 3) for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_npz_clip_frames_and_labels(tmp_path):
    images = np.arange(5 * 6 * 7, dtype=np.uint8).reshape(5, 6, 7)
    path = tmp_path / "clip.npz"
    np.savez(path, images=images, labels=np.array([1, 2, 3, 4, 5]), class_names=np.array(list("abcdefg")))
    src = open_source(f"npz:{path}").open()
    frames = list(src)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert [f.label for f in frames] == [1, 2, 3, 4, 5]
    assert np.array_equal(frames[2].image, images[2])
    assert src.class_names[0] == "a"
    looped = NpzSource(str(path), loop=True).open()
    assert [looped.read().label for _ in range(7)] == [1, 2, 3, 4, 5, 1, 2]


def test_bundled_clip_is_real_fashion_mnist_test_data():
    src = NpzSource("hbnn/models/fmnist-test-clip.npz").open()
    assert 200 <= len(src) <= 500
    assert src.images.dtype == np.uint8 and src.images.shape[1:] == (28, 28)
    assert set(np.unique(src.labels)) == set(range(10))


def test_npz_errors(tmp_path):
    with pytest.raises(CameraUnavailable, match="missing path"):
        NpzSource(str(tmp_path / "nope.npz")).open()
    np.savez(tmp_path / "x.npz", frames=np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(SourceError, match="'images'"):
        NpzSource(str(tmp_path / "x.npz")).open()
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(SourceError, match="readable"):
        NpzSource(str(tmp_path / "junk.npz")).open()
    np.savez(tmp_path / "pick.npz", images=np.array([object()], dtype=object))
    with pytest.raises(SourceError):  # object arrays would need pickle: refused
        NpzSource(str(tmp_path / "pick.npz")).open()


def test_image_dir_npy_and_pnm(tmp_path):
    np.save(tmp_path / "a.npy", np.full((4, 4), 7, np.uint8))
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    (tmp_path / "b.pgm").write_bytes(b"P5\n# comment\n4 3\n255\n" + gray.tobytes())
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    (tmp_path / "c.ppm").write_bytes(b"P6 4 2 255\n" + rgb.tobytes())
    (tmp_path / "notes.txt").write_text("ignored")
    frames = list(ImageDirSource(str(tmp_path)).open())
    assert len(frames) == 3
    assert np.array_equal(frames[1].image, gray) and np.array_equal(frames[2].image, rgb)


def test_image_dir_errors(tmp_path):
    with pytest.raises(CameraUnavailable):
        open_source(f"images:{tmp_path / 'none'}").open()
    with pytest.raises(SourceError, match="got none"):
        open_source(f"images:{tmp_path}").open()


def test_missing_camera_device_is_reported_before_importing_opencv():
    with pytest.raises(CameraUnavailable, match="/dev/video99"):
        open_source("v4l2:/dev/video99").open()


def test_opencv_missing_gives_install_hint(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 -> ImportError
    video = tmp_path / "v.mp4"
    video.write_bytes(b"\0")
    with pytest.raises(MissingDependency, match=r"hadanets-edge\[camera\]"):
        open_source(f"video:{video}").open()
    with pytest.raises(MissingDependency, match="camera"):
        open_source("gst:videotestsrc ! appsink").open()


def test_picamera2_missing_gives_install_hint(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(MissingDependency, match="python3-picamera2"):
        open_source("picamera2").open()


class _FastCamera(FrameSource):
    """A live source that produces frames much faster than the consumer takes them."""

    live = True
    spec = "fake:fast"

    def __init__(self, n, fail_after=None):
        super().__init__()
        self.n, self.fail_after = n, fail_after

    def read(self):
        if self.fail_after is not None and self._index >= self.fail_after:
            raise CameraUnavailable("Expected a frame, got USB disconnect")
        if self._index >= self.n:
            return None
        time.sleep(0.0005)
        return self._frame(np.full((2, 2), self._index % 256, np.uint8))


def test_latest_frame_wins_drops_stale_frames():
    grabber = LatestFrameGrabber(_FastCamera(300)).start()
    seen = []
    while True:
        frame = grabber.get(timeout=5)
        if frame is None:
            break
        seen.append(frame.index)
        time.sleep(0.005)  # a slow model
    grabber.stop()
    assert seen == sorted(set(seen))          # never a frame twice, never out of order
    assert seen[-1] == 299                   # the newest frame is the one delivered last
    assert grabber.dropped == 300 - len(seen) > 0


def test_grabber_hands_over_source_errors_and_timeouts():
    grabber = LatestFrameGrabber(_FastCamera(100, fail_after=3)).start()
    with pytest.raises(CameraUnavailable, match="disconnect"):
        for _ in range(10):
            grabber.get(timeout=5)
    grabber.stop()

    class Stuck(FrameSource):
        live = True
        spec = "fake:stuck"

        def read(self):
            time.sleep(0.05)
            return None if stop.is_set() else self.read()

    stop = threading.Event()
    stuck = LatestFrameGrabber(Stuck()).start()
    with pytest.raises(TimeoutError, match="fake:stuck"):
        stuck.get(timeout=0.05)
    stop.set()
    stuck.stop()


def test_frame_dataclass_fields():
    f = SyntheticSource((2, 2), count=1).read()
    assert isinstance(f, Frame) and f.index == 0 and f.label is None and f.timestamp_us > 0

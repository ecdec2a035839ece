"""OpenCV-backed sources (extra `camera`): video files, PNG/JPEG directories, colour order."""
from __future__ import annotations

import numpy as np
import pytest

from edge.sources import CameraUnavailable, open_source

cv2 = pytest.importorskip("cv2")  # the `camera` extra, also in `test` (CI runs these); not on QEMU


def _write_video(path, frames):
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (w, h))
    assert writer.isOpened(), f"Expected OpenCV {cv2.__version__} to write MJPG video, got a closed writer"
    for f in frames:
        writer.write(f)
    writer.release()


def test_video_file_frames_in_rgb_order(tmp_path):
    bgr_red = np.zeros((32, 48, 3), np.uint8)
    bgr_red[..., 2] = 255  # red in OpenCV's BGR
    path = tmp_path / "clip.avi"
    _write_video(path, [bgr_red] * 5)
    src = open_source(f"video:{path}").open()
    frames = list(src)
    src.close()
    assert len(frames) == 5 and frames[0].image.shape == (32, 48, 3)
    r, g, b = frames[0].image[16, 24].astype(int)
    assert r > 200 and g < 50 and b < 50  # delivered as RGB


def test_video_loop_rewinds(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path, [np.full((16, 16, 3), 100, np.uint8)] * 3)
    src = open_source(f"video:{path}", loop=True).open()
    assert all(src.read() is not None for _ in range(8))
    src.close()


def test_png_directory(tmp_path):
    img = np.zeros((10, 12, 3), np.uint8)
    img[..., 0] = 255  # blue in BGR
    cv2.imwrite(str(tmp_path / "a.png"), img)
    cv2.imwrite(str(tmp_path / "b.png"), img[..., 0])
    frames = list(open_source(f"images:{tmp_path}").open())
    assert frames[0].image.shape == (10, 12, 3) and frames[0].image[0, 0].tolist() == [0, 0, 255]
    assert frames[1].image.shape == (10, 12)


def test_unopenable_video_and_pipeline(tmp_path):
    bad = tmp_path / "bad.avi"
    bad.write_bytes(b"not a video at all")
    with pytest.raises(CameraUnavailable, match="closed capture"):
        open_source(f"video:{bad}").open()
    with pytest.raises(CameraUnavailable):
        open_source("gst:nosuchelement ! appsink").open()

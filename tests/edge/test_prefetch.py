"""edge.prefetch: the next frame read and preprocessed on a thread gives the same results, in order."""
from __future__ import annotations

import os

import numpy as np
import pytest

from edge import Interpreter
from edge.loop import InferenceLoop
from edge.prefetch import PrefetchSource
from edge.preprocess import Preprocessor
from edge.sources import FrameSource, NpzSource, SyntheticSource

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "hbnn", "models")
BUNDLED = os.path.join(MODELS, "lenet-fmnist-bw16-ba2.hbn")
CLIP = os.path.join(MODELS, "fmnist-test-clip.npz")


def _results(loop, source, **kwargs):
    seen = []
    stats = loop.run(source, on_result=lambda r, f: seen.append((f.index, r.class_id, r.confidence)), **kwargs)
    return seen, stats


@pytest.mark.parametrize("threads", [1, 2])
def test_prefetched_clip_gives_the_same_results_in_order(threads):
    loop = InferenceLoop(Interpreter(BUNDLED, num_threads=threads))
    want, _ = _results(loop, NpzSource(CLIP).open(), max_frames=60)
    pre = Preprocessor(loop.interpreter.input_spec)
    source = PrefetchSource(NpzSource(CLIP).open(), pre).open()
    try:
        got, stats = _results(loop, source, max_frames=60)
    finally:
        source.close()
    assert got == want and stats.frames == 60
    assert source.class_names == NpzSource(CLIP).open().class_names  # the clip's facts stay reachable


def test_end_of_stream_bad_frames_and_errors_pass_through():
    loop = InferenceLoop(Interpreter(BUNDLED))

    class Mixed(FrameSource):
        """Three good frames, one of the wrong shape, then a camera failure."""
        spec = "mixed"

        def read(self):
            if self._index == 4:
                raise OSError("camera unplugged")
            shape = (28, 28, 7) if self._index == 2 else (28, 28)
            return self._frame(np.full(shape, 40 * self._index, np.uint8))

    source = PrefetchSource(Mixed(), Preprocessor(loop.interpreter.input_spec)).open()
    bad = []
    with pytest.raises(OSError, match="unplugged"):
        _results(loop, source, on_bad_frame=lambda f, e: bad.append(f.index))
    assert bad == [2]  # rejected by the loop's own preprocessor, as without prefetching
    source.close()

    ended = PrefetchSource(SyntheticSource((28, 28), count=3).open(), Preprocessor(loop.interpreter.input_spec))
    frames = [ended.read() for _ in range(5)]
    assert [f.index for f in frames[:3]] == [0, 1, 2] and frames[3:] == [None, None]
    assert all(f.tensor.shape == (1, 28, 28, 1) for f in frames[:3])
    assert frames[0].tensor is not frames[1].tensor  # each frame keeps its own input
    ended.close()
    assert not ended._thread.is_alive()

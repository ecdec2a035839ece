"""The fuzz corpus itself: the recorded traffic still decodes as recorded, the models load."""
from __future__ import annotations

import json
import os

import pytest

from record_corpus import CORPUS, decode_counts

with open(os.path.join(CORPUS, "manifest.json")) as fh:
    MANIFEST = json.load(fh)


@pytest.mark.parametrize("name", sorted(MANIFEST))
def test_recorded_traffic_decodes_as_recorded(name):
    with open(os.path.join(CORPUS, name), "rb") as fh:
        data = fh.read()
    want = MANIFEST[name]
    assert len(data) == want["bytes"]
    got = decode_counts(name, data)
    assert got == {k: want[k] for k in ("messages", "errors", "types")}
    assert got["errors"] == 0 and got["messages"] > 50


def test_recordings_split_into_whole_frames():
    from fuzz_frames import FramesTarget
    from fuzz_mavlink import MavlinkTarget

    frames = FramesTarget()
    assert len(frames.frames) == MANIFEST["frames.bin"]["messages"]
    mav = MavlinkTarget()
    for name, split in mav.recordings.items():
        assert len(split) == MANIFEST[name]["messages"]
    signed = [f for f in mav.recordings["mavlink-reporter-signed.bin"] if f[2] & 1]
    assert len(signed) == len(mav.recordings["mavlink-reporter-signed.bin"])


def test_model_corpus_loads(tmp_path):
    from edge.format import read_hbn

    from fuzz_model import ModelTarget

    target = ModelTarget(folder=str(tmp_path))
    for i, blob in enumerate(target.corpus):
        path = tmp_path / f"m{i}.hbn"
        path.write_bytes(blob)
        model = read_hbn(path)
        assert model.file_bytes == len(blob)
    assert {layer["type"] for layer in read_hbn(tmp_path / "m1.hbn").graph["layers"]} == {
        "conv2d", "affine", "relu", "avgpool", "maxpool", "flatten", "dense", "softmax"}


_DIGEST = """
import hashlib, sys
sys.path.insert(0, {folder!r})
from fuzz_core import case_rng
from fuzz_frames import FramesTarget
from fuzz_mavlink import MavlinkTarget
from fuzz_model import ModelTarget
h = hashlib.sha256()
for target in (ModelTarget({tmp!r}), FramesTarget(), MavlinkTarget()):
    for i in range(60):
        case = target.generate(case_rng(3, target.name, i))
        h.update(case.data + repr(sorted(case.params.items())).encode())
print(h.hexdigest())
"""


@pytest.mark.no_emulation
def test_a_seed_gives_the_same_cases_in_every_process(tmp_path):
    """Replaying a case by (seed, index) needs generation independent of hash randomization
    (safetensors writes metadata in hash-map order: the corpus is re-serialized with sorted keys)."""
    import subprocess
    import sys

    folder = os.path.dirname(os.path.abspath(__file__))
    code = _DIGEST.format(folder=folder, tmp=str(tmp_path))
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=dict(os.environ, PYTHONHASHSEED=seed)).stdout for seed in ("1", "2")}
    assert len(outs) == 1

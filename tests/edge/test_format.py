"""The .hbn model file: round trip, atomic writes, and graph/tensor validation."""
from __future__ import annotations

import json
import mmap
import os

import numpy as np
import pytest

from cy_kernels import reference as ref
from edge.errors import ModelFormatError
from edge.format import read_hbn, write_hbn
from model_fakes import random_lenet, rewritten_hbn


@pytest.fixture()
def lenet():
    return random_lenet(16, 2, seed=3)


def test_round_trip_keeps_graph_tensors_and_metadata(tmp_path, lenet):
    graph, tensors = lenet
    path = tmp_path / "m.hbn"
    sha = write_hbn(path, graph, tensors, metadata={"seed": 7, "note": "unit test"})
    m = read_hbn(path)
    assert m.sha256 == sha and m.version == (1, 0)
    assert m.metadata == {"seed": 7, "note": "unit test"}
    assert m.labels == graph["labels"] and m.input_spec["shape"] == [28, 28, 1]
    assert [layer["type"] for layer in m.graph["layers"]] == [layer["type"] for layer in graph["layers"]]
    # binarized layers: exactly the reference packing; full-precision layers and BN vectors: floats
    for name, beta in (("conv2", 16), ("fc3", 16)):
        w = tensors[f"{name}.weight"]
        rows = w.reshape(w.shape[0], -1)
        np.testing.assert_array_equal(m.tensors[f"{name}.weight.bits"], ref.pack_bits(rows))
        np.testing.assert_array_equal(m.tensors[f"{name}.weight.scales"], ref.segment_scales(rows, beta))
        assert m.weights[name].shape == w.shape and m.weights[name].beta_w == beta
    for name in ("conv1.weight", "fc4.weight", "bn2.scale", "bn3.bias", "fc3.bias"):
        np.testing.assert_array_equal(m.tensors[name], tensors[name])
    assert "conv2.weight" not in m.tensors
    assert m.shapes[-1] == (10,)


def _mapped(a) -> bool:
    while isinstance(a, np.ndarray):
        a = a.base
    return isinstance(getattr(a, "obj", a), mmap.mmap)  # frombuffer keeps a memoryview of the map


def test_tensors_are_views_of_the_mapped_file_which_never_changes(tmp_path, lenet):
    path = tmp_path / "m.hbn"
    write_hbn(path, *lenet)
    before = path.read_bytes()
    m = read_hbn(path)
    bits = m.tensors["conv2.weight.bits"]
    assert _mapped(bits) and bits.flags.c_contiguous
    assert m.weights["conv2"].bits is bits  # wrapped, not repacked or copied
    bits[0, 0] ^= np.uint64(1)  # copy-on-write: the file on disk is untouched
    assert path.read_bytes() == before
    assert bits.ctypes.data % 8 == 0 and m.tensors["conv2.weight.scales"].ctypes.data % 4 == 0


def test_packed_file_is_much_smaller_than_float32(tmp_path, lenet):
    graph, tensors = lenet
    path = tmp_path / "m.hbn"
    write_hbn(path, graph, tensors)
    float_bytes = sum(t.nbytes for t in tensors.values())
    assert os.path.getsize(path) * 7 < float_bytes


def test_infinite_betas_and_full_precision_layers(tmp_path):
    graph, tensors = random_lenet(None, None, seed=1)
    write_hbn(tmp_path / "inf.hbn", graph, tensors)
    m = read_hbn(tmp_path / "inf.hbn")
    assert m.graph["layers"][3]["beta_w"] is None
    assert m.tensors["conv2.weight.scales"].shape == (50, 1)
    graph, tensors = random_lenet(1, 1, seed=1)
    write_hbn(tmp_path / "fp.hbn", graph, tensors)
    np.testing.assert_array_equal(read_hbn(tmp_path / "fp.hbn").tensors["fc3.weight"], tensors["fc3.weight"])


def test_write_is_atomic_and_a_bad_graph_leaves_the_old_file(tmp_path, lenet):
    graph, tensors = lenet
    path = tmp_path / "m.hbn"
    write_hbn(path, graph, tensors)
    before = path.read_bytes()
    bad = json.loads(json.dumps(graph))
    bad["layers"][3]["beta_a"] = 6  # 16 and 6: neither divides the other
    with pytest.raises(ModelFormatError, match="one divides the other"):
        write_hbn(path, bad, tensors)
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["m.hbn"]  # no temp file left behind


@pytest.mark.parametrize("mutate, message", [
    (lambda g, t: g["layers"].append({"type": "lstm"}), "type in"),
    (lambda g, t: t.pop("fc3.bias"), "Expected tensor 'fc3.bias'"),
    (lambda g, t: t.__setitem__("conv2.weight", t["conv2.weight"][:, :, :, :10]), "C=20"),
    (lambda g, t: t.__setitem__("fc3.weight", t["fc3.weight"][:, :799]), "K=800"),
    (lambda g, t: t.__setitem__("bn3.scale", t["bn3.scale"][:5]), "shape"),
    (lambda g, t: t["fc4.weight"].__setitem__((0, 0), np.nan), "finite"),
    (lambda g, t: g["layers"][1].__setitem__("kernel", 40), "fit"),
    (lambda g, t: g.__setitem__("labels", ["a", "b"]), "10 labels"),
    (lambda g, t: g["input"].__setitem__("std", [0.0]), "std"),
    (lambda g, t: g["layers"][3].__setitem__("beta_w", 0), "beta_w"),
    (lambda g, t: g["layers"].pop(6), "flat input"),  # dense straight after a pool
])
def test_writer_rejects_inconsistent_graphs(tmp_path, lenet, mutate, message):
    graph, tensors = lenet
    mutate(graph, tensors)
    with pytest.raises(ModelFormatError, match=message):
        write_hbn(tmp_path / "m.hbn", graph, tensors)
    assert not os.listdir(tmp_path)


def test_writer_rejects_metadata_that_is_not_json(tmp_path, lenet):
    with pytest.raises(ModelFormatError, match="JSON-serializable"):
        write_hbn(tmp_path / "m.hbn", *lenet, metadata={"x": object()})


# ---- files with a valid checksum but a bad graph: the reader's own checks ------------------

def _raw(tmp_path, lenet, edit_graph=None, edit_arrays=None, edit_meta=None):
    """A checksummed file whose content was edited after validation (what a buggy writer makes)."""
    return rewritten_hbn(tmp_path, *lenet, edit_graph, edit_arrays, edit_meta)


@pytest.mark.parametrize("kw, message", [
    ({"edit_graph": lambda g: g["layers"][3].__setitem__("weight_shape", [50, 5, 5, 21])}, "C=20"),
    ({"edit_graph": lambda g: g["layers"][3].__setitem__("weight_shape", [50, 5, 5, 20, 1])}, "rank 4"),
    ({"edit_graph": lambda g: g["layers"][3].__setitem__("beta_w", 8)}, r"conv2.weight.scales.*F32 \[50, 63\]"),
    ({"edit_graph": lambda g: g["layers"][3].__setitem__("beta_a", 3)}, "one divides the other"),
    ({"edit_graph": lambda g: g["layers"].insert(0, {"type": "dropout"})}, "type in"),
    ({"edit_graph": lambda g: g["layers"][3].__setitem__("stride", 2)}, "K=200 columns"),
    ({"edit_graph": lambda g: g["input"].__setitem__("shape", [28, 28])}, r"\[H, W, C\]"),
    ({"edit_graph": lambda g: g["input"].__setitem__("shape", [30000, 30000, 1])}, "activations"),
    ({"edit_arrays": lambda a: a.pop("fc3.bias")}, "missing.*fc3.bias"),
    ({"edit_arrays": lambda a: a.__setitem__("extra", np.zeros(3, np.float32))}, "extra.*'extra'"),
    ({"edit_arrays": lambda a: a.__setitem__("conv2.weight.bits",
                                             a["conv2.weight.bits"].view(np.float32)[:, :8].copy())},
     "conv2.weight.bits.*U64"),
    ({"edit_arrays": lambda a: a["conv2.weight.scales"].__setitem__((0, 0), np.nan)}, "finite"),
    ({"edit_arrays": lambda a: a["conv2.weight.scales"].__setitem__((0, 0), -1.0)}, "scales >= 0"),
    ({"edit_arrays": lambda a: a["fc3.weight.bits"].__setitem__((0, -1), np.uint64(1) << np.uint64(63))},
     "padding bits"),
    ({"edit_arrays": lambda a: a.__setitem__("fc4.weight", a["fc4.weight"].astype(np.float64))}, "dtype"),
    ({"edit_meta": lambda m: m.__setitem__("format_version", "2.0")}, "version 1.x"),
    ({"edit_meta": lambda m: m.__setitem__("format_version", "one")}, "MAJOR.MINOR"),
    ({"edit_meta": lambda m: m.__setitem__("format", "pytorch")}, "bad magic"),
    ({"edit_meta": lambda m: m.__setitem__("graph", "{not json")}, "JSON"),
])
def test_reader_rejects_checksummed_but_inconsistent_files(tmp_path, lenet, kw, message):
    path = _raw(tmp_path, lenet, **kw)
    with pytest.raises(ModelFormatError, match=message) as info:
        read_hbn(path)
    assert str(path) in str(info.value)


def test_reader_accepts_a_newer_minor_version(tmp_path, lenet):
    path = _raw(tmp_path, lenet, edit_meta=lambda m: m.__setitem__("format_version", "1.7"))
    assert read_hbn(path).version == (1, 7)


def test_reader_rejects_a_plain_safetensors_file(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": np.zeros((2, 2), np.float32)}, str(path))
    with pytest.raises(ModelFormatError, match="not a .hbn model"):
        read_hbn(path)


def test_missing_file_is_a_model_format_error(tmp_path):
    with pytest.raises(ModelFormatError, match="readable model file"):
        read_hbn(tmp_path / "nope.hbn")


def test_graph_whose_buffers_would_be_huge_is_refused(tmp_path):
    graph = {"input": {"shape": [4096, 4096, 1]}, "layers": [{"type": "relu"} for _ in range(20)]}
    with pytest.raises(ModelFormatError, match="over all layers"):
        write_hbn(tmp_path / "m.hbn", graph, {})


def test_written_model_is_readable_by_others(tmp_path):
    """mkstemp makes 0600 files; a model written by one user must be readable by the daemon's user."""
    import stat

    from model_fakes import random_lenet

    graph, tensors = random_lenet(16, 2)
    path = tmp_path / "m.hbn"
    old = os.umask(0o022)
    try:
        write_hbn(path, graph, tensors)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

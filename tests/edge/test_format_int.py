"""Integer-scale layers in .hbn files (format 1.2, and 1.1 files) and in the runtime: written, validated, run exactly."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from cy_kernels import reference_int as ri
from edge.errors import ModelFormatError
from edge.format import read_hbn, write_hbn
from edge.format_int import pack_levels, unpack_levels
from int_fakes import int_lenet
from model_fakes import random_lenet, rewritten_hbn


@pytest.fixture()
def int_path(tmp_path):
    path = tmp_path / "int.hbn"
    write_hbn(path, *int_lenet(16, 2, seed=4))
    return path


def test_int_model_round_trip(int_path):
    m = read_hbn(int_path)
    assert m.version == (1, 2)
    conv2 = next(layer for layer in m.graph["layers"] if layer["name"] == "conv2")
    assert conv2["int_scales"] is True
    # K = 500: 63 sign bytes per row; 50 x 32 levels of 7 bits: 1,400 bytes
    assert m.tensors["conv2.weight.bits"].dtype == np.uint8 and m.tensors["conv2.weight.bits"].shape == (50, 63)
    assert m.tensors["conv2.weight.levels"].dtype == np.uint8 and m.tensors["conv2.weight.levels"].shape == (1400,)
    assert m.tensors["conv2.weight.factors"].shape == (50,) and m.tensors["conv2.weight.act_factor"].shape == (1,)
    assert "conv2.weight.scales" not in m.tensors
    graph, tensors = int_lenet(16, 2, seed=4)
    for name, rows in (("conv2", 50), ("fc3", 500)):
        pw = m.weights[name]
        bits, levels, factors = ri.pack_rows_int(tensors[name + ".weight"].reshape(rows, -1), 16)
        np.testing.assert_array_equal(pw.levels, levels)
        np.testing.assert_array_equal(pw.factors, factors)
        np.testing.assert_array_equal(pw.bits, bits)  # the kernels' words, decoded from the row bytes
        assert pw.bits.dtype == np.uint64 and pw.bits.flags.c_contiguous
    assert m.weights["conv2"].act_factor == np.float32(0.03)


def _legacy_1_1(arrays):
    """Format 1.1's layout of the integer layers: sign words, one level byte per segment in words."""
    for name, (rows, k, nseg) in {"conv2": (50, 500, 32), "fc3": (500, 800, 50)}.items():
        row_bytes = arrays[name + ".weight.bits"]
        words = np.zeros((rows, -(-k // 64) * 8), np.uint8)
        words[:, :row_bytes.shape[1]] = row_bytes
        arrays[name + ".weight.bits"] = words.view("<u8").copy()
        levels = unpack_levels(arrays[name + ".weight.levels"], rows, nseg, name)
        lw = np.zeros((rows, -(-nseg // 8) * 8), np.uint8)
        lw[:, :nseg] = levels
        arrays[name + ".weight.levels"] = lw.view("<u8").copy()


def test_format_1_1_files_still_load_and_run_the_same(tmp_path, int_path):
    from edge.interpreter import Interpreter

    old = _raw(tmp_path, edit_arrays=_legacy_1_1, version="1.1", seed=4)
    m_old, m_new = read_hbn(old), read_hbn(int_path)
    assert m_old.version == (1, 1) and m_old.tensors["fc3.weight.levels"].shape == (500, 7)
    for name in ("conv2", "fc3"):
        np.testing.assert_array_equal(m_old.weights[name].bits, m_new.weights[name].bits)
        np.testing.assert_array_equal(m_old.weights[name].levels, m_new.weights[name].levels)
    frames = np.random.default_rng(2).integers(0, 256, (3, 28, 28), dtype=np.uint8)
    np.testing.assert_array_equal(Interpreter(old).predict(frames), Interpreter(int_path).predict(frames))
    assert os.path.getsize(int_path) < os.path.getsize(old) - 5000  # 1.2 drops the words' padding


@pytest.mark.parametrize("n", [0, 1, 7, 8, 9, 63, 1000])
def test_level_stream_round_trips_with_zero_padding(n):
    levels = np.random.default_rng(n).integers(0, 128, n).astype(np.uint8)
    stream = pack_levels(levels)
    assert stream.dtype == np.uint8 and stream.shape == (-(-n * 7 // 8),)
    np.testing.assert_array_equal(unpack_levels(stream, 1, n, "x")[0], levels)
    if n % 8:  # a 1 in the padding bits is refused, not ignored
        bad = stream.copy()
        bad[-1] |= 0x80
        with pytest.raises(ModelFormatError, match=f"zero padding bits past {n} levels in x"):
            unpack_levels(bad, 1, n, "x")
    with pytest.raises(ValueError, match="levels in 0..127, got 128"):
        pack_levels(np.array([128], np.uint8))


def test_float_scale_models_stay_format_1_0(tmp_path):
    path = tmp_path / "f.hbn"
    write_hbn(path, *random_lenet(16, 2, seed=4))
    m = read_hbn(path)
    assert m.version == (1, 0) and not any("int_scales" in layer for layer in m.graph["layers"])


def test_int_file_is_smaller_than_float_scales(tmp_path, int_path):
    path = tmp_path / "f.hbn"
    write_hbn(path, *random_lenet(16, 2, seed=4))
    fm, im = read_hbn(path), read_hbn(int_path)
    # fc3: 500 x 800 weights, 50 segments per row: 1 bit + 7/16 bits per weight instead of 1 + 32/16
    # (plus one factor per filter)
    int_bytes = sum(im.tensors[n].nbytes for n in im.tensors if n.startswith("fc3.weight"))
    float_bytes = sum(fm.tensors[n].nbytes for n in fm.tensors if n.startswith("fc3.weight"))
    assert int_bytes == 500 * 100 + 500 * 50 * 7 // 8 + 500 * 4 + 4
    assert int_bytes * 8 / (500 * 800) < 1.5 and float_bytes / int_bytes > 2
    assert os.path.getsize(int_path) < 0.6 * os.path.getsize(path)


def _raw(tmp_path, edit_graph=None, edit_arrays=None, version="1.2", seed=5):
    return rewritten_hbn(tmp_path, *int_lenet(16, 2, seed=seed), edit_graph, edit_arrays, version=version)


def _legacy(edit):
    def both(a):
        _legacy_1_1(a)
        edit(a)
    return {"edit_arrays": both, "version": "1.1"}


def _set_level(a, value, name="conv2", byte=0):
    raw = a[name + ".weight.levels"].view(np.uint8)
    raw[0, byte] = value


def _set_last_bit(name):
    def edit(a):
        a[name][-1] |= np.uint8(0x80)
    return edit


@pytest.mark.parametrize("kw, message", [
    ({"version": "1.0"}, r"Expected format version 1.1 or later for integer-scale layers, got 1.0"),
    ({"version": "1.1"}, r"Expected tensor 'conv2.weight.bits' as U64 \[50, 8\], got U8 \[50, 63\]"),
    ({"edit_arrays": _set_last_bit("conv2.weight.bits")}, r"zero padding bits past K=500 in conv2.weight.bits"),
    (_legacy(lambda a: _set_level(a, 128)), r"levels in 0..127 in conv2.weight.levels, got 128"),
    (_legacy(lambda a: _set_level(a, 1, "fc3", byte=52)), r"zero padding bytes past 50 levels in fc3"),
    (_legacy(lambda a: a["conv2.weight.bits"].__setitem__((0, -1), np.uint64(1) << np.uint64(63))),
     r"zero padding bits past K=500 in conv2.weight.bits"),
    ({"edit_arrays": lambda a: a["conv2.weight.factors"].__setitem__(3, 0.0)}, r"factors > 0"),
    ({"edit_arrays": lambda a: a["fc3.weight.act_factor"].__setitem__(0, -1.0)}, r"factors > 0"),
    ({"edit_arrays": lambda a: a["fc3.weight.factors"].__setitem__(0, np.inf)}, r"finite values"),
    ({"edit_arrays": lambda a: a.pop("fc3.weight.act_factor")}, r"missing \['fc3.weight.act_factor'\]"),
    ({"edit_arrays": lambda a: a.__setitem__("fc3.weight.scales", np.zeros((500, 50), np.float32))},
     r"extra \['fc3.weight.scales'\]"),
    ({"edit_arrays": lambda a: a.__setitem__("fc3.weight.levels", a["fc3.weight.levels"][:3].copy())},
     r"fc3.weight.levels' as U8 \[21875\]"),
    ({"edit_graph": lambda g: g["layers"][3].__setitem__("int_scales", "yes")}, r"int_scales to be true or false"),
    ({"edit_graph": lambda g: g["layers"][3].__setitem__("beta_a", 1)}, r"integer scales to have beta_w and beta_a > 1"),
])
def test_reader_validates_the_integer_fields(tmp_path, kw, message):
    path = _raw(tmp_path, **kw)
    with pytest.raises(ModelFormatError, match=message):
        read_hbn(path)


def test_writer_refuses_layers_beyond_the_int32_bound(tmp_path):
    k = 33 * 33 * 123  # 133,947 > 133,144
    graph = {"input": {"shape": [33, 33, 123]}, "labels": ["a", "b"], "layers": [
        {"type": "flatten"},
        {"type": "dense", "name": "d", "weight": "d.w", "bias": None, "beta_w": 16, "beta_a": 16,
         "int_scales": True}]}
    tensors = {"d.w": np.ones((2, k), np.float32), "d.w.act_factor": np.array([0.1], np.float32)}
    with pytest.raises(ModelFormatError, match=r"at most K=133144 weights per output in layer 1 \(d\) with "
                                               r"integer scales .*got K=133947"):
        write_hbn(tmp_path / "m.hbn", graph, tensors)


def test_writer_needs_the_activation_factor(tmp_path):
    graph, tensors = int_lenet(16, 16)
    del tensors["conv2.weight.act_factor"]
    with pytest.raises(ModelFormatError, match=r"Expected tensor 'conv2.weight.act_factor'"):
        write_hbn(tmp_path / "m.hbn", graph, tensors)
    tensors["conv2.weight.act_factor"] = np.array([0.0], np.float32)
    with pytest.raises(ModelFormatError, match=r"one float > 0"):
        write_hbn(tmp_path / "m.hbn", graph, tensors)


@pytest.mark.parametrize("bw,ba", [(16, 2), (16, 16), (64, 64), (None, None)])
def test_runtime_matches_the_reference(tmp_path, bw, ba):
    """Compiled kernels (whole frame, per op, threads: bit-identical to each other) against the NumPy
    reference mode. The float first and last layers sum in another order than the reference (float64),
    so the logits agree to float tolerance; the integer layers themselves are bit-exact
    (tests/cy_kernels/test_int_kernels.py)."""
    from edge.interpreter import Interpreter

    path = tmp_path / "m.hbn"
    write_hbn(path, *int_lenet(bw, ba, seed=6, softmax=False))
    frames = np.random.default_rng(1).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    ref = Interpreter(path, reference=True)
    x = ref.preprocess(frames).reshape(5, 28, 28, 1)

    def logits(it):
        it.resize_tensor_input(0, [5, 28, 28, 1])
        it.set_tensor(0, np.ascontiguousarray(x))
        it.invoke()
        return it.get_tensor(it.get_output_details()[0]["index"])

    want = logits(ref)
    got = logits(Interpreter(path))
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * float(np.abs(want).max()))
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))
    for kwargs in ({"per_op": True}, {"num_threads": 2}):
        np.testing.assert_array_equal(logits(Interpreter(path, **kwargs)), got)


def test_inspect_shows_the_scale_mode(int_path, capsys):
    from hbnn.cli import main

    assert main(["inspect", str(int_path)]) == 0
    out = capsys.readouterr().out
    assert "hbn 1.2" in out
    assert [line.split()[4] for line in out.splitlines() if line.split()[1:2] in (["conv2"], ["fc3"])] == ["int", "int"]
    assert main(["inspect", str(int_path), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert {r["name"]: r["scales"] for r in s["layers"] if r["scales"]} == {"conv2": "int", "fc3": "int"}
    # LeNet (16,2): float scales make the file ~9x smaller than float32, integer scales ~15x
    assert s["ratio_vs_float32"] > 15 and s["minimum_bytes"] < s["file_bytes"] < 1.1 * s["minimum_bytes"]

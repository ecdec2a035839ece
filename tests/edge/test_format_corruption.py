"""Damaged .hbn files: every corruption is a ModelFormatError, never another exception."""
from __future__ import annotations

import struct
import tracemalloc

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.errors import ModelFormatError
from edge.format import read_hbn, write_hbn
from model_fakes import random_lenet


@pytest.fixture(scope="module")
def good_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("hbn") / "good.hbn"
    write_hbn(path, *random_lenet(16, 2, seed=5))
    return path.read_bytes()


def _header_end(blob: bytes) -> int:
    return 8 + struct.unpack("<Q", blob[:8])[0]


def _load(tmp_path, blob: bytes):
    path = tmp_path / "x.hbn"
    path.write_bytes(blob)
    return read_hbn(path)


def test_the_good_file_loads(tmp_path, good_bytes):
    assert _load(tmp_path, good_bytes).labels[0] == "T-shirt/top"


def test_truncation_at_many_offsets(tmp_path, good_bytes):
    end = _header_end(good_bytes)
    offsets = sorted(set(list(range(0, 16)) + list(range(16, end + 16, 7)) + [end - 1, end, end + 1]
                         + list(range(end, len(good_bytes), 997)) + [len(good_bytes) - 1]))
    for n in offsets:
        with pytest.raises(ModelFormatError):
            _load(tmp_path, good_bytes[:n])


def test_trailing_garbage_is_rejected(tmp_path, good_bytes):
    with pytest.raises(ModelFormatError, match="trailing bytes"):
        _load(tmp_path, good_bytes + b"\0" * 8)


def test_every_header_byte_flip_is_caught(tmp_path, good_bytes):
    end = _header_end(good_bytes)
    for i in range(8, end, 3):
        blob = bytearray(good_bytes)
        blob[i] ^= 0x01
        with pytest.raises(ModelFormatError):
            _load(tmp_path, bytes(blob))


def test_payload_flips_fail_the_checksum(tmp_path, good_bytes):
    end = _header_end(good_bytes)
    for i in list(range(end, len(good_bytes), 1013)) + [len(good_bytes) - 1]:
        blob = bytearray(good_bytes)
        blob[i] ^= 0x80
        with pytest.raises(ModelFormatError, match="checksum mismatch"):
            _load(tmp_path, bytes(blob))


@pytest.mark.parametrize("length", [2 ** 64 - 1, 2 ** 40, "size", "size-7", 0, 1])
def test_lying_header_length_never_allocates(tmp_path, good_bytes, length):
    size = len(good_bytes)
    n = {"size": size, "size-7": size - 7}.get(length, length)
    blob = struct.pack("<Q", n) + good_bytes[8:]
    tracemalloc.start()
    try:
        with pytest.raises(ModelFormatError, match="header length"):
            _load(tmp_path, blob)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * size


def test_non_json_and_non_object_headers(tmp_path):
    for body in (b"\xff\xfe{}", b"[1, 2, 3]", b"{\"__metadata__\": 5}"):
        blob = struct.pack("<Q", len(body)) + body
        with pytest.raises(ModelFormatError):
            _load(tmp_path, blob)


def test_tampered_tensor_shape_in_header(tmp_path, good_bytes):
    end = _header_end(good_bytes)
    header = good_bytes[8:end]
    target = b'"shape":[10,500]'
    assert target in header
    tampered = header.replace(target, b'"shape":[500,10]')
    with pytest.raises(ModelFormatError, match="checksum mismatch"):
        _load(tmp_path, good_bytes[:8] + tampered + good_bytes[end:])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_mutations_only_raise_model_format_error(tmp_path, good_bytes, data):
    blob = bytearray(good_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(blob) - 1))
        blob[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.one_of(st.none(), st.integers(0, len(blob))))
    if cut is not None:
        del blob[cut:]
    if bytes(blob) == good_bytes:
        return
    with pytest.raises(ModelFormatError):
        _load(tmp_path, bytes(blob))


# ---- crafted graphs with a valid checksum: the graph checks never crash ------------------

_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 2 ** 70) | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


@pytest.fixture(scope="module")
def good_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("hbn") / "good.hbn"
    write_hbn(path, *random_lenet(16, 2, seed=6))
    m = read_hbn(path)
    return m.graph, {k: v.copy() for k, v in m.tensors.items()}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_crafted_graph_values_only_raise_model_format_error(tmp_path, good_model, data):
    import json

    from edge.format import FORMAT_NAME, _write_container

    graph, arrays = good_model
    g = json.loads(json.dumps(graph))
    paths = [p for p in _paths(g) if p]
    path = data.draw(st.sampled_from(paths))
    node = g
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = data.draw(_json_values)
    meta = {"format": FORMAT_NAME, "format_version": "1.0", "graph": json.dumps(g), "metadata": "{}"}
    out = tmp_path / "crafted.hbn"
    _write_container(out, arrays, meta, verify=False)
    try:
        read_hbn(out)
    except ModelFormatError:
        pass

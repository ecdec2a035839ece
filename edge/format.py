"""The packed model file (.hbn): a safetensors container, validated on every load.

Layout and rules: docs/FORMAT.md. In short: safetensors (8-byte little-endian
header length, JSON header, aligned little-endian tensors); ``__metadata__``
holds the format name and version, the layer graph (JSON), user metadata and a
SHA-256 over the metadata, the tensor table and the data. Binarized layers
store sign bits (uint64) + per-segment scales (float32), or with integer scales
sign bits + 7-bit levels + float32 factors (edge/format_int.py: 1.2's compact layout, 1.1's
word layout); everything else is float32. The reader maps the file (copy-on-write) and hands
out views (no copies; integer-scale layers are decoded once, kilobytes).
"""
from __future__ import annotations

import hashlib
import json
import math
import mmap
import os
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple

import numpy as np

from .errors import ModelFormatError
from .format_graph import expected_tensors, infer_shapes, int_tensor_names, is_int_scales, is_packed, normalize_graph
from .format_int import int_arrays, int_weights

FORMAT_NAME = "hadanets-hbn"
FORMAT_VERSION = (1, 2)
INT_SCALES_VERSION = (1, 1)  # the first version with integer-scale layers; files without any are written as 1.0
COMPACT_INT_VERSION = (1, 2)  # integer-scale layers as sign bytes + a 7-bit level stream (edge/format_int.py)
MAX_HEADER_BYTES = 16 << 20  # a graph's JSON is kilobytes; anything near this is not ours
DTYPES = {"U64": np.dtype("<u8"), "F32": np.dtype("<f4"), "U8": np.dtype("u1")}
REQUIRED_KEYS = ("format", "format_version", "graph", "sha256")


@dataclass
class HbnModel:
    """A validated model: normalized graph, per-layer shapes and read-only tensor views."""

    path: str
    graph: dict
    shapes: list
    tensors: Dict[str, np.ndarray]   # file tensors (views over the private mapping of the file)
    weights: Dict[str, object]       # layer name -> PackedWeights (binarized) or float32 array
    metadata: dict                   # user metadata given to write_hbn
    version: Tuple[int, int]
    sha256: str
    file_bytes: int
    _mapping: Optional[mmap.mmap] = field(default=None, repr=False)

    @property
    def labels(self):
        return self.graph["labels"]

    @property
    def input_spec(self) -> dict:
        return self.graph["input"]


def _digest(meta: Dict[str, str], table: Dict[str, dict], data) -> str:
    """SHA-256 over metadata (less 'sha256'), the tensor table and the data bytes (docs/FORMAT.md)."""
    h = hashlib.sha256(b"hbn-sha256-v1\n")
    for key in sorted(meta):
        if key != "sha256":
            h.update(key.encode() + b"\0" + meta[key].encode() + b"\n")
    for name in sorted(table):
        info = table[name]
        shape = ",".join(str(s) for s in info["shape"])
        start, end = info["data_offsets"]
        h.update(f"{name}\0{info['dtype']}\0{shape}\0{start}\0{end}\n".encode())
    h.update(data)
    return h.hexdigest()


def _split(blob) -> Tuple[int, dict]:
    n = struct.unpack("<Q", blob[:8])[0]
    return n, json.loads(bytes(blob[8:8 + n]))


# ---- writing ------------------------------------------------------------------------------

def _float_tensor(tensors, name: str, where: str) -> np.ndarray:
    if name not in tensors:
        raise ModelFormatError(f"Expected tensor {name!r} for {where}, got no such tensor")
    a = tensors[name]
    if not isinstance(a, np.ndarray) or a.dtype.kind != "f":
        raise ModelFormatError(f"Expected {name!r} as a float numpy array, got "
                               f"{getattr(a, 'dtype', type(a).__name__)}")
    a = np.ascontiguousarray(a, dtype=np.float32)
    if not np.isfinite(a).all():
        raise ModelFormatError(f"Expected finite values in {name!r}, got NaN or inf")
    return a


def _file_arrays(graph: dict, tensors) -> Dict[str, np.ndarray]:
    """Pack binarized weights and collect the float tensors under their file names.

    Packing uses the NumPy reference packer, the ground truth the C packer is checked against bit
    for bit, so writing a model needs no compiled extension and cannot depend on the kernels' build.
    """
    from cy_kernels.reference import pack_rows

    arrays: Dict[str, np.ndarray] = {}
    for i, layer in enumerate(graph["layers"]):
        where = f"layer {i} ({layer['name']})"
        if layer["type"] in ("conv2d", "dense"):
            w = _float_tensor(tensors, layer["weight"], where)
            layer["weight_shape"] = list(w.shape)
            if is_int_scales(layer):
                act_name = int_tensor_names(layer)[2]
                arrays.update(int_arrays(layer, w, _float_tensor(tensors, act_name, where), where))
            elif is_packed(layer):
                rank = 4 if layer["type"] == "conv2d" else 2
                if w.ndim != rank:
                    raise ModelFormatError(f"Expected {where} weight of rank {rank}, got shape {w.shape}")
                bits, scales = pack_rows(w.reshape(w.shape[0], -1), layer["beta_w"])
                arrays[layer["weight"] + ".bits"] = np.ascontiguousarray(bits, dtype=np.uint64)
                arrays[layer["weight"] + ".scales"] = np.ascontiguousarray(scales, dtype=np.float32)
            else:
                arrays[layer["weight"]] = w
            if layer["bias"] is not None:
                arrays[layer["bias"]] = _float_tensor(tensors, layer["bias"], where)
        elif layer["type"] == "affine":
            for key in ("scale", "bias"):
                arrays[layer[key]] = _float_tensor(tensors, layer[key], where)
    return arrays


def _version_for(graph: dict) -> Tuple[int, int]:
    """The oldest version that holds ``graph``: 1.0 readers keep reading float-scale models."""
    return COMPACT_INT_VERSION if any(is_int_scales(layer) for layer in graph["layers"]) else (1, 0)


def write_hbn(path, graph: dict, tensors: Dict[str, np.ndarray], *, metadata: Optional[dict] = None) -> str:
    """Validate ``graph`` + float ``tensors``, pack them and write ``path`` atomically.

    ``metadata``: optional JSON-serializable dict (training run, accuracy...) kept in the file.
    The file is read back and fully validated before it replaces ``path``. Returns the SHA-256.
    """
    g = normalize_graph(graph)
    arrays = _file_arrays(g, tensors)
    shapes = infer_shapes(g)
    want = expected_tensors(g, shapes)
    for name, (dtype, shape) in want.items():
        if arrays[name].shape != shape:
            raise ModelFormatError(f"Expected tensor {name!r} of shape {shape}, got {arrays[name].shape}")
    try:
        user = json.dumps(metadata or {}, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ModelFormatError(f"Expected JSON-serializable metadata, got {exc}") from None
    meta = {"format": FORMAT_NAME, "format_version": "%d.%d" % _version_for(g),
            "graph": json.dumps(g, sort_keys=True, allow_nan=False), "metadata": user}
    return _write_container(path, {k: arrays[k] for k in want}, meta)


def _write_container(path, arrays: Dict[str, np.ndarray], meta: Dict[str, str], verify: bool = True) -> str:
    """Serialize with safetensors, add the digest, verify by reading back, then rename into place.

    ``verify=False`` is for tests that need well-checksummed files with a bad graph.
    """
    from safetensors.numpy import save

    blob = save(arrays, metadata=dict(meta))
    n, header = _split(blob)
    table = {k: v for k, v in header.items() if k != "__metadata__"}
    meta = dict(meta, sha256=_digest(meta, table, memoryview(blob)[8 + n:]))
    blob = save(arrays, metadata=meta)
    n2, header2 = _split(blob)
    if {k: v for k, v in header2.items() if k != "__metadata__"} != table:  # pragma: no cover
        raise RuntimeError("safetensors laid the tensors out differently on the second pass")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".hbn", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        if verify:
            read_hbn(tmp)  # never publish a file our own reader rejects
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600: a daemon user could not read the model
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return meta["sha256"]


# ---- reading ------------------------------------------------------------------------------

def _brief(value, limit: int = 120) -> str:
    """repr() of a header value for an error message, cut: a hostile header may hold megabytes."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


def _check_text(text: str, what: str) -> None:
    """Header strings are hashed as UTF-8 (the digest) and printed by the tools; a lone surrogate
    escape such as "\\ud800" is valid JSON but decodes to a str with no UTF-8 form (found by
    fuzzing: it raised UnicodeEncodeError instead of ModelFormatError)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ModelFormatError(f"Expected valid Unicode text in {what}, got a lone surrogate escape in "
                               f"{_brief(text)}") from None


def _shape_bytes(shape: list, itemsize: int, limit: int) -> Optional[int]:
    """Bytes of a tensor of ``shape``, or None once the product passes ``limit`` (and 2**64).

    Stopping early keeps a shape of thousands of huge dimensions from costing quadratic time in
    big-integer products and from yielding a number too long to print (found by fuzzing: 20,000
    dims of 2**62 took seconds, then str() raised ValueError).
    """
    if 0 in shape:
        return 0
    cap = max(limit, 1 << 64)
    total = itemsize
    for s in shape:
        total *= s
        if total > cap:
            return None
    return total


def _check_table(header: dict, data_len: int, data_start: int) -> Dict[str, dict]:
    """Every tensor entry well-formed, aligned, in bounds, no gaps or overlaps, covering the data."""
    table, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            continue
        _check_text(name, "a tensor name")
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise ModelFormatError(f"Expected tensor {name!r} entry with dtype, shape, data_offsets, "
                                   f"got {_brief(info)}")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in DTYPES:
            raise ModelFormatError(f"Expected tensor {name!r} of dtype U64, F32 or U8, got {_brief(dtype)}")
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise ModelFormatError(f"Expected tensor {name!r} shape as a list of ints >= 0, got {_brief(shape)}")
        if not isinstance(offs, list) or len(offs) != 2 or not all(type(o) is int for o in offs) \
                or not 0 <= offs[0] <= offs[1]:
            raise ModelFormatError(f"Expected tensor {name!r} data_offsets [start, end], got {_brief(offs)}")
        size = DTYPES[dtype].itemsize
        span = offs[1] - offs[0]
        nbytes = _shape_bytes(shape, size, span)
        if nbytes != span:
            want = f"more than {span}" if nbytes is None else f"{nbytes}"
            raise ModelFormatError(f"Expected tensor {name!r} of {want} bytes for shape {_brief(shape)}, got {span}")
        if (data_start + offs[0]) % size:
            raise ModelFormatError(f"Expected tensor {name!r} aligned to {size} bytes, got offset "
                                   f"{data_start + offs[0]}")
        table[name] = info
        spans.append((offs[0], offs[1], name))
    pos = 0
    for start, end, name in sorted(spans):
        if start != pos:
            raise ModelFormatError(f"Expected tensor {name!r} to start at byte {pos} of the data, got {start} "
                                   f"(gap or overlap)")
        pos = end
    if pos != data_len:
        what = "truncated" if pos > data_len else "trailing bytes after the tensors"
        raise ModelFormatError(f"Expected {pos} bytes of tensor data, got {data_len} ({what})")
    return table


def _parse_version(text) -> Tuple[int, int]:
    try:
        major, minor = (int(p) for p in str(text).split("."))
    except ValueError:
        raise ModelFormatError(f"Expected format_version 'MAJOR.MINOR', got {text!r}") from None
    if major != FORMAT_VERSION[0]:
        raise ModelFormatError(f"Expected format version {FORMAT_VERSION[0]}.x (this reader), got {text} "
                               f"(a newer or older major version: convert the model again)")
    return major, minor


def _check_metadata(header: dict) -> Dict[str, str]:
    meta = header.get("__metadata__")
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise ModelFormatError("Expected a safetensors __metadata__ object of strings, got none "
                               "(not a .hbn model)")
    for key, value in meta.items():
        _check_text(key, "a metadata key")
        _check_text(value, f"metadata {_brief(key)}")
    if meta.get("format") != FORMAT_NAME:
        raise ModelFormatError(f"Expected format {FORMAT_NAME!r} (bad magic), got {_brief(meta.get('format'))}")
    for key in REQUIRED_KEYS:
        if key not in meta:
            raise ModelFormatError(f"Expected metadata key {key!r}, got keys {sorted(meta)}")
    return meta


def _safetensors_cross_check(path: str, table: Dict[str, dict]) -> None:
    """Let the safetensors library validate the container too (its own offset/dtype checks)."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            keys = set(f.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFormatError(f"Expected a valid safetensors container, got: {exc}") from None
    if keys != set(table):  # pragma: no cover - both parsers read the same header
        raise ModelFormatError(f"Expected tensors {sorted(table)}, safetensors sees {sorted(keys)}")


def read_hbn(path) -> HbnModel:
    """Open, validate and map a .hbn model. Raises ModelFormatError naming the problem."""
    path = os.fspath(path)
    try:
        return _read(path)
    except ModelFormatError as exc:
        raise ModelFormatError(f"{path}: {exc}") from None


def _read(path: str) -> HbnModel:
    try:
        f = open(path, "rb")
    except OSError as exc:
        raise ModelFormatError(f"Expected a readable model file, got {exc.strerror or exc}") from None
    with f:
        size = os.fstat(f.fileno()).st_size
        if size < 8:
            raise ModelFormatError(f"Expected at least 8 bytes (header length), got a {size}-byte file (truncated)")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > size - 8:  # checked before reading: a lying length never allocates
            raise ModelFormatError(f"Expected a header length within the {size}-byte file, got {n} (truncated?)")
        if n > MAX_HEADER_BYTES or n < 2:
            raise ModelFormatError(f"Expected a header length of 2..{MAX_HEADER_BYTES} bytes, got {n}")
        raw = f.read(n)
        try:
            header = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ModelFormatError(f"Expected a JSON header, got unparsable bytes ({exc})") from None
        if not isinstance(header, dict):
            raise ModelFormatError(f"Expected a JSON object header, got {type(header).__name__}")
        meta = _check_metadata(header)
        version = _parse_version(meta["format_version"])
        table = _check_table(header, size - 8 - n, 8 + n)
        # Private copy-on-write mapping: pages stay shared with the page cache (no copy), the
        # arrays are writable for kernels whose memoryviews need that, and the file never changes.
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
    data = memoryview(mapping)[8 + n:]
    digest = _digest(meta, table, data)
    data.release()
    if digest != meta["sha256"]:
        raise ModelFormatError(f"Expected SHA-256 {meta['sha256']}, got {digest} (checksum mismatch: "
                               f"the file is corrupt or was modified)")
    _safetensors_cross_check(path, table)
    try:
        graph = json.loads(meta["graph"])
        user = json.loads(meta.get("metadata", "{}"))
    except (ValueError, RecursionError) as exc:
        raise ModelFormatError(f"Expected JSON in the graph metadata, got {exc}") from None
    graph = normalize_graph(graph)
    if version < INT_SCALES_VERSION and any(is_int_scales(layer) for layer in graph["layers"]):
        raise ModelFormatError(f"Expected format version {INT_SCALES_VERSION[0]}.{INT_SCALES_VERSION[1]} or later "
                               f"for integer-scale layers, got {version[0]}.{version[1]}")
    shapes = infer_shapes(graph)
    want = expected_tensors(graph, shapes, compact_int=version >= COMPACT_INT_VERSION)
    missing, extra = sorted(set(want) - set(table)), sorted(set(table) - set(want))
    if missing or extra:
        raise ModelFormatError(f"Expected the graph's tensors exactly, got missing {missing}, extra {extra}")
    tensors = {}
    for name, (dtype, shape) in want.items():
        info = table[name]
        if info["dtype"] != dtype or tuple(info["shape"]) != shape:
            raise ModelFormatError(f"Expected tensor {name!r} as {dtype} {list(shape)}, got {info['dtype']} "
                                   f"{info['shape']}")
        tensors[name] = _view(mapping, 8 + n + info["data_offsets"][0], DTYPES[dtype], shape)
    weights = _check_values(graph, tensors, compact_int=version >= COMPACT_INT_VERSION)
    return HbnModel(path, graph, shapes, tensors, weights, user if isinstance(user, dict) else {},
                    version, digest, size, mapping)


def _view(mapping: mmap.mmap, offset: int, dtype: np.dtype, shape) -> np.ndarray:
    count = math.prod(shape)
    a = np.frombuffer(mapping, dtype=dtype, count=count, offset=offset).reshape(shape)
    if sys.byteorder != "little":  # pragma: no cover - big-endian hosts get native copies
        a = a.astype(dtype.newbyteorder("="))
    return a


def _check_values(graph: dict, tensors: Dict[str, np.ndarray], compact_int: bool = True) -> Dict[str, object]:
    """Finite floats, non-negative scales, zero padding bits; wrap packed weights for the kernels."""
    from cy_kernels.packed import PackedWeights  # pure Python: reading a model needs no extension

    for name, a in tensors.items():
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            raise ModelFormatError(f"Expected finite values in tensor {name!r}, got NaN or inf")
    weights: Dict[str, object] = {}
    for layer in graph["layers"]:
        if layer["type"] not in ("conv2d", "dense"):
            continue
        if not is_packed(layer):
            weights[layer["name"]] = tensors[layer["weight"]]
            continue
        if is_int_scales(layer):
            weights[layer["name"]] = int_weights(layer, tensors, compact_int)
            continue
        bits, scales = tensors[layer["weight"] + ".bits"], tensors[layer["weight"] + ".scales"]
        if (scales < 0).any():
            raise ModelFormatError(f"Expected scales >= 0 in {layer['weight']}.scales, got negative values")
        k = math.prod(layer["weight_shape"][1:])
        if k % 64 and (bits[:, -1] >> np.uint64(k % 64)).any():
            raise ModelFormatError(f"Expected zero padding bits past K={k} in {layer['weight']}.bits, got ones")
        try:
            weights[layer["name"]] = PackedWeights.from_packed(bits, scales, layer["weight_shape"],
                                                               layer["beta_w"])
        except (TypeError, ValueError) as exc:
            raise ModelFormatError(f"Expected packed weights for {layer['name']}, got: {exc}") from None
    return weights


load_model = read_hbn

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "HbnModel", "ModelFormatError", "load_model", "read_hbn",
           "write_hbn"]

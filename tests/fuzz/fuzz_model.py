"""Fuzz target: the model loader, ``edge.format.read_hbn`` (= ``edge.load_model``).

Entry point and contract (docs/FORMAT.md, "What the reader checks"): ``read_hbn(path)`` returns
an ``HbnModel`` or raises ``edge.errors.ModelFormatError`` naming the problem; anything else is a
failure. The loader reads nothing but a path, so each case is written to a file first (tmpfs
when there is one) and the old file is unlinked, never overwritten (a model in use is mapped).

Corpus: the bundled model (hbnn/models/lenet-fmnist-bw16-ba2.hbn, 195 KB) and a 2 KB model built
here that uses every layer type, null betas, a bias-less conv and K % 64 != 0 (padding bits).

Strategies (one per case, weights in STRATEGIES): raw byte havoc biased to the header;
the 8-byte header length; tensor-table edits (dtype, shape, data_offsets, entries added,
dropped, renamed, swapped); ``__metadata__`` edits (magic, version, required keys, types);
graph JSON edits; data-section edits (NaN/inf/negative floats, padding bits); splices of two
corpus files; text edits (lone surrogates, NUL, long names) applied consistently to the table
and the graph; and pathological headers (thousands of huge dims, JSON that inflates when parsed,
deep nesting, 4000-digit integers, many tensors or layers). Structured edits re-serialize the
header (length and 8-byte padding right, usually) and, most of the time, recompute the SHA-256,
so the edit reaches the checks behind the digest (the digest is an integrity check, not a MAC:
a hostile file can carry a correct one).

Oracle: loaded, or ModelFormatError (counted by the check that rejected it). A model that loads
must also run: ``Interpreter(model).predict`` on one zero frame returns one score per label.

Memory bound: tracemalloc peak of ``read_hbn`` <= 32 x file size + 8 MiB. The file is mapped,
not read, so the data section costs nothing; what grows with the input is the parsed JSON
header, and CPython's json inflates the worst JSON (``[{},{},...]``: a 56-64-byte object per
3 input bytes) about 28-31x; a real model peaks at 0.33x its size. The constant covers the one
allocation a graph may declare without carrying it: labels "0".."N-1" made for a graph that has
none, at most 65536 of them (~4 MB). A loader that allocated by any other *declared* size
(header length, shape, offsets, channels, classes) instead of the bytes present breaks the
bound by orders of magnitude. Time: 2 s per case (a normal load takes ~1-5 ms; hard limit 20 s).
"""
from __future__ import annotations

import copy
import json
import os
import re
import struct
import tempfile
from collections import Counter
from typing import Any, List, Optional, Tuple

import numpy as np

from fuzz_core import Case, Limits, OracleFailure, describe_exception, havoc

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUNDLED = os.path.join(REPO, "hbnn", "models", "lenet-fmnist-bw16-ba2.hbn")

LIMITS = Limits(time_s=2.0, hard_s=20.0, mem_factor=32, mem_const=8 << 20)

# Which check rejected a file, from the ModelFormatError message (first match wins).
STAGES = [
    ("file", r"readable model file|at least 8 bytes"),
    ("header-length", r"header length"),
    ("header-json", r"JSON header|JSON object header|UTF-8 text|valid Unicode"),
    ("metadata", r"__metadata__|bad magic|metadata key|format_version|format version"),
    ("tensor-table", r"entry with dtype|dtype U64, F32 or U8|shape as a list|data_offsets|bytes for shape|aligned to"
                     r"|to start at byte|bytes of tensor data|fit the .*data section"),
    ("checksum", r"checksum mismatch"),
    ("safetensors", r"safetensors"),
    ("graph-json", r"JSON in the graph metadata"),
    ("tensor-set", r"graph's tensors exactly|Expected tensor '.*' as (U64|F32)"),
    ("values", r"finite values in tensor|scales >= 0|padding bits|packed weights|integer-scale (levels|factors)"
               r"|padding bytes"),
    ("shapes", r"activations|input to|to fit its|weights with (C|K)=|class scores|labels \(one per output\)"
               r"|used once|weight_shape$"),
    ("graph", r""),
]
_STAGES = [(name, re.compile(rx)) for name, rx in STAGES]


def stage_of(message: str) -> str:
    for name, rx in _STAGES:
        if rx.search(message):
            return name
    return "graph"  # pragma: no cover - the last pattern matches everything


# ---- corpus -------------------------------------------------------------------------------

def tiny_model(folder: str) -> bytes:
    """A 2 KB model touching every layer type, null betas, no-bias conv, K % 64 != 0."""
    from edge.format import write_hbn

    rng = np.random.default_rng(7)
    f32 = lambda *shape: rng.normal(0, 0.3, shape).astype(np.float32)  # noqa: E731
    graph = {
        "arch": "fuzz-tiny", "labels": ["a", "b", "é", "d", "e"],
        "input": {"shape": [6, 6, 2], "layout": "NHWC", "pixel_scale": 1 / 255, "mean": [0.5, 0.25],
                  "std": [0.5]},
        "layers": [
            {"type": "conv2d", "name": "c1", "weight": "c1.w", "bias": None, "stride": 2, "padding": 1,
             "beta_w": None, "beta_a": 2, "relu": False},
            {"type": "affine", "name": "a1", "scale": "a1.s", "bias": "a1.b"},
            {"type": "relu", "name": "r1"},
            {"type": "avgpool", "name": "p1", "kernel": 2, "stride": 1},
            {"type": "conv2d", "name": "c2", "weight": "c2.w", "bias": "c2.b", "beta_w": 2, "beta_a": 4,
             "relu": True},
            {"type": "maxpool", "name": "p2", "kernel": 1},
            {"type": "flatten", "name": "f"},
            {"type": "dense", "name": "d1", "weight": "d1.w", "bias": "d1.b", "beta_w": 4, "beta_a": None},
            {"type": "softmax", "name": "sm"},
        ],
    }
    tensors = {"c1.w": f32(4, 3, 3, 2), "a1.s": np.abs(f32(4)) + 0.5, "a1.b": f32(4), "c2.w": f32(3, 1, 1, 4),
               "c2.b": f32(3), "d1.w": f32(5, 12), "d1.b": f32(5)}
    path = os.path.join(folder, "tiny.hbn")
    write_hbn(path, graph, tensors, metadata={"purpose": "fuzz corpus"})
    with open(path, "rb") as fh:
        blob = fh.read()
    os.unlink(path)
    # safetensors writes __metadata__ in hash-map order, which changes from process to process;
    # sorted keys make the corpus (and so every case of a seed) the same in every run.
    header, data = split(blob)
    raw = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


def split(blob: bytes) -> Tuple[dict, bytes]:
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def digest(header: dict, data: bytes) -> Optional[str]:
    """The SHA-256 the reader expects for this header and data; None if the header is too broken."""
    from edge.format import _digest

    try:
        meta = header["__metadata__"]
        table = {k: v for k, v in header.items() if k != "__metadata__"}
        return _digest(meta, table, data)
    except Exception:  # noqa: BLE001 - a mutated header may not even have the digest's shape
        return None


def assemble(header: Any, data: bytes, fix_digest: bool = True, pad: bool = True,
             length: Optional[int] = None) -> bytes:
    """Serialize a (mutated) header and data into a .hbn container."""
    if fix_digest and isinstance(header, dict) and isinstance(header.get("__metadata__"), dict):
        sha = digest(header, data)
        if sha is not None:
            header["__metadata__"]["sha256"] = sha
    raw = json.dumps(header, separators=(",", ":")).encode()  # ensure_ascii: lone surrogates stay \udxxx
    if pad:
        raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw) if length is None else length & 0xFFFFFFFFFFFFFFFF) + raw + data


# ---- structure-aware mutation values -------------------------------------------------------

BIG_INT = int("9" * 4000)  # just under Python's 4300-digit int<->str limit
INTERESTING_INTS = [0, 1, -1, 2, 3, 4, 7, 8, 15, 16, 63, 64, 65, 255, 256, 4095, 4096, 1 << 26, (1 << 26) + 1,
                    (1 << 31) - 1, 1 << 31, 1 << 32, (1 << 53) + 1, (1 << 63) - 1, 1 << 63, 1 << 64, (1 << 64) + 1,
                    10 ** 30, -(1 << 63), BIG_INT]
INTERESTING_JSON = INTERESTING_INTS + [
    None, True, False, 0.5, -0.0, 1e308, 5e-324, float("nan"), float("inf"), float("-inf"),
    "", "x", "F32", "U64", "F16", "I64", "U8", "BOOL", "f32", "conv2d", "dense", "affine", "flatten",
    "\ud800", "\udfff", "a\x00b", "é", "\u202e", "x" * 300,
    [], [0], [1, 1], [0, 0], [-1, 2], [1, 2, 3, 4, 5], [[]], [1.5], ["1"], {}, {"a": 1}, [None],
]
DTYPE_VALUES = ["F32", "U64", "F16", "F64", "I64", "I32", "U8", "I8", "BOOL", "BF16", "F8_E4M3", "f32", "", 5, None]
TEXT_VALUES = ["\ud800", "\udc80x", "a\udfff", "\x00", "a\x00", "é", "\u202eevil", "\ufeff", " ", "x" * 1000,
               "\\", '"', "\n", "..", "/etc/passwd", "\U0001F600"]


def _mutate_value(rng, value: Any) -> Any:
    """A replacement for one JSON value: interesting constant, or a nearby variant."""
    r = rng.random()
    if r < 0.55:
        return copy.deepcopy(rng.choice(INTERESTING_JSON))
    if isinstance(value, bool) or value is None:
        return rng.choice([not value if isinstance(value, bool) else 0, 1, "true", None])
    if isinstance(value, int):
        return value + rng.choice([-1, 1, -8, 8, 64, -64, value, -2 * value, 1 << rng.randrange(70)])
    if isinstance(value, float):
        return rng.choice([value * 2, -value, value + 1e-7, 0.0, float("nan")])
    if isinstance(value, str):
        if not value:
            return "x"
        i = rng.randrange(len(value) + 1)
        return rng.choice([value[:i], value + rng.choice(TEXT_VALUES), value[:i] + value[i + 1:], value.upper(),
                           value * 2, value[:i] + chr(rng.randrange(0x20, 0x3000)) + value[i:]])
    if isinstance(value, list):
        v = list(value)
        if v and rng.random() < 0.5:
            del v[rng.randrange(len(v))]
        else:
            v.insert(rng.randrange(len(v) + 1), rng.choice(INTERESTING_JSON))
        return v
    if isinstance(value, dict):
        v = dict(value)
        if v and rng.random() < 0.5:
            del v[rng.choice(sorted(v))]
        else:
            v[rng.choice(["x", "type", "name", "dtype", "shape", ""])] = rng.choice(INTERESTING_JSON)
        return v
    return rng.choice(INTERESTING_JSON)  # pragma: no cover


def _paths(node: Any, prefix: tuple = ()) -> List[tuple]:
    out = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, prefix + (i,))
    return out


def mutate_tree(rng, tree: Any, edits: int = 1) -> Any:
    """Replace, delete, duplicate or add at random paths of a parsed JSON tree (in place when possible)."""
    for _ in range(edits):
        paths = [p for p in _paths(tree) if p]
        if not paths:
            return _mutate_value(rng, tree)
        path = rng.choice(paths)
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        key = path[-1]
        r = rng.random()
        if r < 0.6:
            parent[key] = _mutate_value(rng, parent[key])
        elif r < 0.75:
            del parent[key]
        elif r < 0.87 and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif isinstance(parent, dict):
            parent[rng.choice(["x", "type", "name", "weight", "bias", "kernel", "stride", "padding", "relu",
                               "beta_w", "beta_a", "weight_shape", "shape", "labels"])] = \
                copy.deepcopy(rng.choice(INTERESTING_JSON))
        else:
            parent[key] = copy.deepcopy(rng.choice(INTERESTING_JSON))
    return tree


class ModelTarget:
    """read_hbn on a mutated .hbn file."""

    name = "model"
    limits = LIMITS

    STRATEGIES = {"havoc": 24, "length": 4, "table": 18, "metadata": 8, "graph": 20, "data": 10, "splice": 4,
                  "text": 6, "pathological": 3, "truncate": 3}

    def __init__(self, folder: Optional[str] = None, run_interpreter: bool = True) -> None:
        if folder is None:
            shm = "/dev/shm"
            base = shm if os.path.isdir(shm) and os.access(shm, os.W_OK) else None
            folder = tempfile.mkdtemp(prefix="hbnn-fuzz-", dir=base)
        self.folder = folder
        self.path = os.path.join(folder, "case.hbn")
        self.run_interpreter = run_interpreter
        with open(BUNDLED, "rb") as fh:
            bundled = fh.read()
        self.corpus = [bundled, tiny_model(folder)]
        self.parsed = [split(b) for b in self.corpus]
        self._names = list(self.STRATEGIES)
        self._weights = list(self.STRATEGIES.values())

    def close(self) -> None:
        import shutil

        shutil.rmtree(self.folder, ignore_errors=True)

    # ---- generation -----------------------------------------------------------------------
    def generate(self, rng) -> Case:
        which = 0 if rng.random() < 0.55 else 1
        strategy = rng.choices(self._names, self._weights)[0]
        data = getattr(self, "_gen_" + strategy)(rng, which)
        if strategy not in ("havoc", "truncate") and rng.random() < 0.1:
            data = havoc(rng, data, ops=rng.randint(1, 2), hot=(0, 64))
        return Case(data, {"base": which}, strategy)

    def _header(self, which: int) -> Tuple[dict, bytes]:
        header, data = self.parsed[which]
        return copy.deepcopy(header), data

    def _gen_havoc(self, rng, which: int) -> bytes:
        blob = self.corpus[which]
        end = 8 + struct.unpack("<Q", blob[:8])[0]
        return havoc(rng, blob, donors=[self.corpus[1 - which][:end]], hot=(0, end + 64))

    def _gen_truncate(self, rng, which: int) -> bytes:
        blob = self.corpus[which]
        end = 8 + struct.unpack("<Q", blob[:8])[0]
        cut = rng.choice([rng.randrange(len(blob)), rng.randrange(min(end + 16, len(blob))), len(blob) - 1,
                          end, end - 1, 8, 7])
        return blob[:cut]

    def _gen_length(self, rng, which: int) -> bytes:
        blob = self.corpus[which]
        n, size = struct.unpack("<Q", blob[:8])[0], len(blob)
        value = rng.choice([0, 1, 2, 3, 7, 8, n - 1, n + 1, n - 8, n + 8, size - 8, size - 7, size, 16 << 20,
                            (16 << 20) + 1, 1 << 31, 1 << 32, 1 << 63, (1 << 64) - 1, rng.getrandbits(64),
                            rng.randrange(size)])
        return struct.pack("<Q", value & 0xFFFFFFFFFFFFFFFF) + blob[8:]

    def _gen_table(self, rng, which: int) -> bytes:
        header, data = self._header(which)
        names = [k for k in header if k != "__metadata__"]
        for _ in range(rng.randint(1, 3)):
            name = rng.choice(names)
            entry = header.get(name)
            op = rng.randrange(10)
            if not isinstance(entry, dict):
                header[name] = _mutate_value(rng, entry)
            elif op == 0:
                entry["dtype"] = rng.choice(DTYPE_VALUES)
            elif op in (1, 2):
                shape = entry.get("shape")
                if isinstance(shape, list) and shape and rng.random() < 0.7:
                    shape = list(shape)
                    k = rng.randrange(len(shape))
                    r = rng.random()
                    if r < 0.3:
                        shape.insert(k, rng.choice([1, 0, 2, rng.choice(INTERESTING_INTS)]))
                    elif r < 0.5:
                        del shape[k]
                    elif r < 0.6 and len(shape) >= 2:  # transpose: same byte count, other shape
                        shape[0], shape[-1] = shape[-1], shape[0]
                    else:
                        shape[k] = _mutate_value(rng, shape[k])
                    entry["shape"] = shape
                else:
                    entry["shape"] = _mutate_value(rng, shape)
            elif op in (3, 4):
                offs = entry.get("data_offsets")
                if isinstance(offs, list) and len(offs) == 2 and rng.random() < 0.7:
                    offs = list(offs)
                    k = rng.randrange(2)
                    offs[k] = rng.choice([offs[k] + rng.choice([-8, -4, -1, 1, 4, 8]), offs[1 - k], 0, len(data),
                                          len(data) + 8, rng.choice(INTERESTING_INTS)])
                    entry["data_offsets"] = offs
                else:
                    entry["data_offsets"] = _mutate_value(rng, offs)
            elif op == 5:  # drop a key or add one
                if rng.random() < 0.5 and entry:
                    del entry[rng.choice(sorted(entry))]
                else:
                    entry[rng.choice(["x", "dtype ", "Shape"])] = 1
            elif op == 6:  # drop a tensor
                del header[name]
                names.remove(name)
                if not names:
                    break
            elif op == 7:  # duplicate under a new name (overlapping data)
                header[name + rng.choice(["", ".x", "_"]) + "2"] = copy.deepcopy(entry)
            elif op == 8:  # swap the offsets of two tensors
                other = header.get(rng.choice(names))
                if isinstance(other, dict) and "data_offsets" in entry and "data_offsets" in other:
                    entry["data_offsets"], other["data_offsets"] = other["data_offsets"], entry["data_offsets"]
            else:  # a zero-size tensor somewhere
                pos = rng.choice([0, len(data), rng.randrange(len(data) + 1)])
                header[rng.choice(["z", name + ".bits", name])] = {"dtype": rng.choice(["F32", "U64"]),
                                                                   "shape": rng.choice([[0], [0, 5], []]),
                                                                   "data_offsets": [pos, pos]}
        return assemble(header, data, fix_digest=rng.random() < 0.85, pad=rng.random() < 0.95)

    def _gen_metadata(self, rng, which: int) -> bytes:
        header, data = self._header(which)
        meta = header["__metadata__"]
        op = rng.randrange(7)
        if op == 0:
            meta["format"] = rng.choice(["", "hadanets-hbn ", "HADANETS-HBN", "hadanets", "safetensors", "\ud800"])
        elif op == 1:
            meta["format_version"] = rng.choice(["2.0", "0.9", "1", "1.0.0", "1.x", "x.1", "1.99", " 1 . 0 ", "١.0",
                                                 "1." + "9" * 5000, "-1.0", "1.-1", "", "\ud800"])
        elif op == 2:
            del meta[rng.choice(["format", "format_version", "graph", "sha256", "metadata"])]
        elif op == 3:
            meta[rng.choice(sorted(meta))] = rng.choice([1, None, [], {}, True, 1.5])
        elif op == 4:
            meta[rng.choice(["x", "", "sha256 ", "\ud800", "é"])] = rng.choice(TEXT_VALUES + ["{}"])
        elif op == 5:
            meta["metadata"] = rng.choice(["", "[", "[]", "1", "null", "{\"a\": NaN}", "[" * 5000, "\ud800",
                                           json.dumps({"k": ["\ud800"]})])
        else:
            header["__metadata__"] = _mutate_value(rng, meta)
        return assemble(header, data, fix_digest=rng.random() < 0.75)

    def _gen_graph(self, rng, which: int) -> bytes:
        header, data = self._header(which)
        meta = header["__metadata__"]
        if rng.random() < 0.85:
            graph = json.loads(meta["graph"])
            graph = mutate_tree(rng, graph, edits=rng.choice([1, 1, 1, 2, 3]))
            meta["graph"] = json.dumps(graph)
        else:  # raw text edits of the graph JSON
            text = meta["graph"].encode("utf-8")
            meta["graph"] = havoc(rng, text, ops=rng.randint(1, 3)).decode("utf-8", errors="replace")
        return assemble(header, data, fix_digest=rng.random() < 0.9)

    def _gen_data(self, rng, which: int) -> bytes:
        header, data = self._header(which)
        buf = bytearray(data)
        entries = [v for k, v in header.items() if k != "__metadata__"]
        for _ in range(rng.randint(1, 3)):
            entry = rng.choice(entries)
            start, end = entry["data_offsets"]
            if end <= start:
                continue
            if entry["dtype"] == "F32":
                values = [float("nan"), float("inf"), float("-inf"), -1.0, -0.0, 3.4e38, 1e-45, 0.0, -3.4e38]
                for _ in range(rng.randint(1, 4)):
                    i = start + 4 * rng.randrange((end - start) // 4)
                    if rng.random() < 0.8:
                        buf[i:i + 4] = struct.pack("<f", rng.choice(values))
                    else:
                        buf[i:i + 4] = struct.pack("<I", rng.choice([0x7FC00001, 0xFF800000, 0x7F800001,
                                                                     rng.getrandbits(32)]))
            elif entry["dtype"] == "U8":  # 1.2 integer layers: sign bytes / 7-bit levels, often the last byte
                shape = entry["shape"]
                width = shape[-1] if shape else 1
                row = rng.randrange(max(1, (end - start) // max(width, 1)))
                col = width - 1 if rng.random() < 0.6 else rng.randrange(max(width, 1))
                i = start + row * width + col
                bit = 7 - rng.randrange(3) if rng.random() < 0.6 else rng.randrange(8)
                buf[i] ^= 1 << bit
            else:  # U64 sign bits: flip bits, often in the last word of a row (padding past K)
                shape = entry["shape"]
                words = shape[-1] if shape else 1
                row = rng.randrange(max(1, (end - start) // 8 // max(words, 1)))
                word = words - 1 if rng.random() < 0.6 else rng.randrange(words)
                i = start + 8 * (row * words + word)
                bit = 63 - rng.randrange(8) if rng.random() < 0.6 else rng.randrange(64)
                value = struct.unpack("<Q", buf[i:i + 8])[0] ^ (1 << bit)
                buf[i:i + 8] = struct.pack("<Q", value)
        return assemble(header, bytes(buf), fix_digest=rng.random() < 0.9)

    def _gen_splice(self, rng, which: int) -> bytes:
        h0, d0 = self._header(which)
        h1, d1 = self._header(1 - which)
        op = rng.randrange(3)
        if op == 0:  # one file's header, the other's data
            return assemble(h0, d1, fix_digest=rng.random() < 0.7)
        if op == 1:  # graph of one, tensors of the other
            h0["__metadata__"]["graph"] = h1["__metadata__"]["graph"]
            return assemble(h0, d0, fix_digest=True)
        a, b = self.corpus[which], self.corpus[1 - which]
        return a[:rng.randrange(len(a))] + b[rng.randrange(len(b)):]

    def _gen_text(self, rng, which: int) -> bytes:
        """Rename a tensor (and the graph's reference to it) or a layer, or set a label/arch, to odd text."""
        header, data = self._header(which)
        meta = header["__metadata__"]
        graph = json.loads(meta["graph"])
        text = rng.choice(TEXT_VALUES)
        op = rng.randrange(4)
        layers = graph["layers"]
        if op == 0:
            layer = rng.choice([lay for lay in layers if "weight" in lay or "scale" in lay])
            key = rng.choice([k for k in ("weight", "bias", "scale") if layer.get(k)])
            old = layer[key]
            new = old + text if rng.random() < 0.5 else text
            layer[key] = new
            for suffix in ("", ".bits", ".scales"):
                if old + suffix in header:
                    header[new + suffix] = header.pop(old + suffix)
        elif op == 1:
            rng.choice(layers)["name"] = text
        elif op == 2:
            graph["labels"][rng.randrange(len(graph["labels"]))] = text
        else:
            graph["arch"] = text
        meta["graph"] = json.dumps(graph)
        return assemble(header, data, fix_digest=rng.random() < 0.9)

    def _gen_pathological(self, rng, which: int) -> bytes:
        header, data = self._header(which)
        meta = header["__metadata__"]
        op = rng.randrange(9)
        if op == 8:  # sizes the graph declares but the file does not carry: channels, classes
            graph = json.loads(meta["graph"])
            if rng.random() < 0.5:
                graph["input"]["shape"][2] = rng.choice([4096, 4097, 1 << 26, 1 << 40, 10 ** 20])
            else:  # a weightless network of 2**22-2**26 outputs and no labels (one label made per output)
                side = rng.choice([256, 2048, 8192])
                graph = {"input": {"shape": [side, side, 1]}, "layers": [{"type": "flatten"}]}
                header = {"__metadata__": meta}
                data = b""
            meta["graph"] = json.dumps(graph)
        elif op == 0:  # many huge dims: the shape product must not cost quadratic time
            k = rng.choice([100, 2000, 20000])
            header["zz"] = {"dtype": "F32", "shape": [rng.choice([1 << 62, 10 ** 18, 3])] * k,
                            "data_offsets": [0, 0]}
        elif op == 1:  # JSON that inflates when parsed (empty objects/lists)
            k = rng.choice([1000, 30000])
            header["zz"] = rng.choice([[{}] * k, [[]] * k, [{"": 0}] * k, list(range(k))])
        elif op == 2:  # deep nesting in the header or in the graph string
            depth = rng.choice([500, 5000, 50000])
            nested = "[" * depth + "]" * depth
            if rng.random() < 0.5:
                raw = ('{"__metadata__":' + json.dumps(meta) + ',"zz":' + nested + "}").encode()
                raw += b" " * (-len(raw) % 8)
                return struct.pack("<Q", len(raw)) + raw + data
            meta["graph"] = '{"layers":' + nested + "}"
        elif op == 3:  # 4000-digit integers in the table or the graph
            if rng.random() < 0.5:
                entry = header[rng.choice([k for k in header if k != "__metadata__"])]
                entry[rng.choice(["shape", "data_offsets"])] = [BIG_INT, rng.choice([0, BIG_INT])]
            else:
                graph = json.loads(meta["graph"])
                layer = rng.choice(graph["layers"])
                layer[rng.choice(["padding", "stride", "kernel", "beta_w", "beta_a"])] = BIG_INT
                meta["graph"] = json.dumps(graph)
        elif op == 4:  # many tensors
            for i in range(rng.choice([1000, 10000])):
                header[f"t{i}"] = {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
        elif op == 5:  # many layers
            graph = json.loads(meta["graph"])
            graph["layers"] = graph["layers"][:-1] + [{"type": "relu"}] * rng.choice([4090, 4097, 20000]) \
                + graph["layers"][-1:]
            meta["graph"] = json.dumps(graph)
        elif op == 6:  # huge geometry that still chains: padding/kernel sized to cancel out
            graph = json.loads(meta["graph"])
            conv = next(lay for lay in graph["layers"] if lay["type"] == "conv2d")
            p = rng.choice([10 ** 30, 1 << 40, BIG_INT])
            conv["padding"] = p
            if rng.random() < 0.5:
                ws = conv["weight_shape"]
                conv["weight_shape"] = [ws[0], 2 * p + ws[1], 2 * p + ws[2], ws[3]]
            meta["graph"] = json.dumps(graph)
        else:  # a huge label list or user metadata blob
            graph = json.loads(meta["graph"])
            graph["labels"] = ["x"] * rng.choice([10, 100000])
            meta["graph"] = json.dumps(graph)
            meta["metadata"] = json.dumps({"blob": "y" * 200000})
        return assemble(header, data, fix_digest=rng.random() < 0.9)

    # ---- running --------------------------------------------------------------------------
    def run(self, case: Case, meter) -> Tuple[str, Counter]:
        from edge.errors import ModelFormatError
        from edge.format import read_hbn

        if os.path.exists(self.path):
            os.unlink(self.path)  # never truncate a file a previous model may still map
        with open(self.path, "wb") as fh:
            fh.write(case.data)
        model, exc = meter.call(read_hbn, self.path)
        if exc is not None:
            if type(exc) is not ModelFormatError:
                raise OracleFailure(f"read_hbn raised {describe_exception(exc)}")
            return "rejected", Counter({"rejected:" + stage_of(str(exc)): 1})
        details = Counter({"loaded:" + case.strategy: 1})
        self._check_loaded(model, case)
        return "loaded", details

    def _check_loaded(self, model, case: Case) -> None:
        """A model the loader accepts is well-formed and runs."""
        labels = model.graph["labels"]
        if model.file_bytes != len(case.data) or len(model.sha256) != 64:
            raise OracleFailure("loaded model reports the wrong size or digest")
        try:  # what the tools print (hbnn inspect, logs) is valid text
            json.dumps(model.graph, ensure_ascii=False).encode("utf-8")
        except (UnicodeEncodeError, ValueError) as exc:
            raise OracleFailure(f"loaded graph holds text that cannot be printed: {exc}") from None
        if not self.run_interpreter:
            return
        from edge.interpreter import Interpreter

        try:
            x = np.zeros(tuple(model.graph["input"]["shape"]), dtype=np.uint8)
            with np.errstate(all="ignore"):  # huge finite values may overflow float32: not a loader bug
                y = Interpreter(model).predict(x)
        except Exception as exc:  # noqa: BLE001
            raise OracleFailure(f"loaded model does not run: {describe_exception(exc)}") from None
        if y.shape != (len(labels),):
            raise OracleFailure(f"loaded model gives {y.shape} scores for {len(labels)} labels")

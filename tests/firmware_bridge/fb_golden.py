"""Regenerate golden_frames.json (run by hand only when the wire format changes on purpose).

    .venv/bin/python tests/firmware_bridge/fb_golden.py
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from firmware_bridge import InferenceResult, encode_result, encode_status  # noqa: E402

CASES = [
    {"kind": "result", "sequence": 0, "timestamp_us": 0, "class_id": 0, "confidence": 0.0, "topk": [],
     "latency_ms": 0.0},
    {"kind": "result", "sequence": 1, "timestamp_us": 1700000000123456, "class_id": 3, "confidence": 0.875,
     "topk": [[3, 0.875], [5, 0.0625], [1, 0.03125]], "latency_ms": 12.5},
    {"kind": "result", "sequence": 4294967295, "timestamp_us": 18446744073709551615, "class_id": 65535,
     "confidence": -1.5, "topk": [[65535, 1.0], [0, 0.5], [256, 0.25], [1, 0.0]], "latency_ms": 4294967.295},
    {"kind": "result", "sequence": 255, "timestamp_us": 256, "class_id": 0, "confidence": 1.0,
     "topk": [[0, 1.0]], "latency_ms": 0.001},
    {"kind": "status", "severity": 6, "text": "model loaded"},
    {"kind": "status", "severity": 4, "text": "camera lost"},
    {"kind": "status", "severity": 0, "text": "x" * 50},
    {"kind": "status", "severity": 7, "text": ""},
]


def encode(case: dict) -> bytes:
    if case["kind"] == "status":
        return encode_status(case["text"], case["severity"])
    fields = {k: v for k, v in case.items() if k not in ("kind", "frame")}
    fields["topk"] = [tuple(p) for p in fields["topk"]]
    return encode_result(InferenceResult(**fields))


if __name__ == "__main__":
    out = [dict(case, frame=encode(case).hex()) for case in CASES]
    path = os.path.join(os.path.dirname(__file__), "golden_frames.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
        fh.write("\n")
    print(f"wrote {len(out)} frames to {path}")

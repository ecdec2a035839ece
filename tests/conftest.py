"""Suite-wide hooks for runs under emulated ARM (scripts/qemu-test sets HBNN_EMULATED=<arch>).

There, tests marked no_emulation are skipped even if selected, hypothesis gets no deadline
(QEMU runs code 10-50x slower), and a test module whose optional heavy dependency has no build in
the ARM sysroot (torch, OpenCV, ...) is reported as skipped instead of failing collection.
"""
from __future__ import annotations

import os
import re

import pytest

EMULATED = os.environ.get("HBNN_EMULATED", "")
OPTIONAL_ON_ARM = {"torch", "cv2", "onnx", "onnxruntime", "tflite_runtime", "ai_edge_litert", "matplotlib",
                   "tqdm"}

if EMULATED:
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:  # pragma: no cover - hypothesis is in the sysroot
        pass
    else:
        settings.register_profile("emulated", deadline=None, suppress_health_check=list(HealthCheck))
        settings.load_profile("emulated")


def pytest_runtest_setup(item):
    if EMULATED and item.get_closest_marker("no_emulation"):
        pytest.skip(f"needs subprocesses or ptys, not available under QEMU user mode ({EMULATED})")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    if not (EMULATED and report.failed and isinstance(collector, pytest.Module)):
        return
    missing = re.search(r"No module named '([\w]+)", str(report.longrepr))
    if missing and missing.group(1) in OPTIONAL_ON_ARM:
        report.outcome = "skipped"
        report.longrepr = (str(collector.path), 0,
                           f"Skipped: {missing.group(1)} is not installed in the emulated {EMULATED} sysroot")

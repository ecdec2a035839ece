"""scripts/arm-bench's additions for integer scales: the executable mappings its --profile attributes
blocks to, and the command line (integer-scale betas, peer precisions). No QEMU, no LLVM."""
from __future__ import annotations

import pytest

from bench_modules import load


def test_mapped_libraries_keep_executable_mappings_by_basename():
    bench = load("arm_bench")
    maps = ("5500000000-5500001000 r--p 00000000 08:01 1 /x/cy_kernels/_xhbnn.abi3.so\n"
            "5500001000-5500010000 r-xp 00001000 08:01 1 /x/cy_kernels/_xhbnn.abi3.so\n"
            "7000000000-7000100000 r-xp 00000000 08:01 2 /usr/lib/aarch64-linux-gnu/libc.so.6\n"
            "7ffff000-80000000 rw-p 00000000 00:00 0 [stack]\n")
    assert bench.mapped_libraries(maps) == [(0x5500001000, 0x5500010000, "_xhbnn.abi3.so"),
                                            (0x7000000000, 0x7000100000, "libc.so.6")]


def test_peers_must_be_fp32_or_int8(capsys):
    bench = load("arm_bench")
    paths = [f"--{n}=/nonexistent" for n in ("qemu", "qemu-libs", "plugin", "sysroot", "site-hbnn", "work")]
    with pytest.raises(SystemExit, match="Expected --peers among fp32, int8, got 'int4'"):
        bench.main(["aarch64", "--peers", "int8,int4", *paths])

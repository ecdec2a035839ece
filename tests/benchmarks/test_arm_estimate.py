"""scripts/arm-bench's arithmetic on small fixtures: plugin output, forms, k/2k differencing,
linearity, cycles and ratios, llvm-mca output parsing (no QEMU, no LLVM)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from bench_modules import ROOT, load


est = load("arm_estimate")

COUNTS = """T 4000 10 3
I 4000 20000291 add x0, x1, #0
I 4004 2058a04e cnt v0.16b, v1.16b
I 4008 e1ffff54 b.ne #0x4000
T 5000 2 2
I 5000 2058a04e cnt v0.16b, v1.16b
I 5004 c0035fd6 ret
"""


def test_parse_counts_reads_blocks_and_instructions():
    blocks = est.parse_counts(COUNTS)
    assert [(b["vaddr"], b["count"], b["n"]) for b in blocks] == [(0x4000, 10, 3), (0x5000, 2, 2)]
    assert blocks[0]["insns"][1] == (0x4004, "2058a04e", "cnt v0.16b, v1.16b")


def test_instruction_counts_sum_the_same_instruction_over_blocks():
    counts = est.instruction_counts(est.parse_counts(COUNTS))
    assert counts[("2058a04e", "cnt v0.16b, v1.16b")] == 12
    assert counts[("c0035fd6", "ret")] == 2
    assert sum(counts.values()) == 10 * 3 + 2 * 2


@pytest.mark.parametrize("text, message", [
    ("T 4000 10 2\nI 4000 20000291 add x0, x1, #0\n", "Expected 2 instructions"),
    ("I 4000 20000291 add\n", "Expected a T line"),
    ("X junk\n", "Expected a line starting"),
    ("T 4000 10\n", "Expected 'T vaddr count n'"),
])
def test_parse_counts_rejects_malformed_output(text, message):
    with pytest.raises(ValueError, match=message):
        est.parse_counts(text)


@pytest.mark.parametrize("text, form", [
    ("eor\tv3.16b, v1.16b, v7.16b", "eor vN.16b, vN.16b, vN.16b"),
    ("ldp q0, q1, [x0], #32", "ldp qN, qN, [xN], #I"),
    ("add x0, x1, x2, lsl #2  // encoding: [0x20]", "add xN, xN, xN, lsl #I"),
    ("sdot v0.4s, v1.16b, v2.4b[3]", "sdot vN.4s, vN.16b, vN.4b[L]"),
    ("vmovl.s16 q0, d1", "vmovl.s16 qN, dN"),          # the type suffix is not a register
    ("vld1.8 {d0, d1}, [r0]!", "vld1.8 {dN, dN}, [rN]!"),
])
def test_canonical_form_abstracts_registers_and_immediates(text, form):
    assert est.canonical_form(text) == form


def test_per_frame_cancels_start_up():
    start = {"a": 1000, "b": 50}
    per = {"a": 7, "b": 2, "c": 1}
    k = 4
    at = lambda n: {key: start.get(key, 0) + n * per.get(key, 0) for key in set(start) | set(per)}  # noqa: E731
    assert est.per_frame(at(k), at(2 * k), k) == {"a": 7.0, "b": 2.0, "c": 1.0}
    with pytest.raises(ValueError, match="Expected k >= 1"):
        est.per_frame({}, {}, 0)


def test_linearity_is_zero_for_linear_counts_and_signed_otherwise():
    assert est.linearity(1000 + 10 * 4, 1000 + 10 * 8, 1000 + 10 * 12, 4) == 0.0
    assert est.linearity(100, 200, 310, 1) == pytest.approx(0.10)
    with pytest.raises(ValueError, match="Expected more instructions"):
        est.linearity(200, 200, 300, 1)


def test_estimate_adds_count_times_reciprocal_throughput():
    out = est.estimate({"eor": 100, "cnt": 100, "odd": 10}, {"eor": 0.5, "cnt": 0.5, "odd": None}, default=1.0)
    assert out == {"instructions": 210.0, "cycles": 110.0, "unmodelled_instructions": 10.0}
    assert est.ms_at(2.4e6, 2.4) == pytest.approx(1.0)
    assert est.ratio(300.0, 100.0) == 3.0
    assert est.ratio(None, 100.0) is None


MCA_INFO = """

Instruction Info:
[1]: #uOps
[2]: Latency
[3]: RThroughput
[4]: MayLoad
[5]: MayStore
[6]: HasSideEffects (U)

[1]    [2]    [3]    [4]    [5]    [6]    Instructions:
 1      1     0.50                        add	x0, x1, x2
 1      3     0.50                        cnt	v0.16b, v1.16b
 4      6     2.00    *                   ldp	q0, q1, [x0], #32
 1      1     1.00           *            str	x0, [x1]
 1      1     1.00    *      *      U     ldaddal	x0, x1, [x2]
"""

MCA_SUMMARY = """Iterations:        300
Instructions:      7800
Total Cycles:      4809
Total uOps:        7800

Dispatch Width:    3
uOps Per Cycle:    1.62
IPC:               1.62
Block RThroughput: 16.0
"""


def test_parse_mca_instruction_info_reads_each_row():
    rows = est.parse_mca_instruction_info(MCA_INFO)
    assert rows[0] == (1, 1, 0.5, "add\tx0, x1, x2")
    assert rows[2] == (4, 6, 2.0, "ldp\tq0, q1, [x0], #32")
    assert [r[3].split()[0] for r in rows] == ["add", "cnt", "ldp", "str", "ldaddal"]


def test_align_rows_survives_lines_llvm_mca_skipped():
    texts = ["add x0, x1, x2", "weird x1", "cnt v0.16b, v1.16b", "ldp q0, q1, [x0]"]
    rows = [(1, 1, 0.5, "add\tx0, x1, x2"), (1, 3, 0.5, "cnt\tv0.16b, v1.16b"), (4, 6, 2.0, "ldp\tq0, q1, [x0]")]
    assert est.align_rows(texts, rows) == [(0, 0.5), (2, 0.5), (3, 2.0)]


def test_parse_mca_summary_and_loop_macs():
    s = est.parse_mca_summary(MCA_SUMMARY)
    assert s == {"iterations": 300.0, "instructions": 7800.0, "total_cycles": 4809.0, "block_rthroughput": 16.0}
    with pytest.raises(ValueError, match="summary lines"):
        est.parse_mca_summary("Iterations: 3\n")
    body = ["eor v0.16b, v1.16b, v2.16b", "eor v3.8b, v4.8b, v5.8b", "cnt v0.16b, v0.16b", "veor q0, q1, q2"]
    assert est.eor_bits(body) == 128 + 64 + 128
    assert est.loop_macs_per_cycle(body, 2.0) == 160.0
    with pytest.raises(ValueError, match="positive cycles"):
        est.loop_macs_per_cycle(body, 0)


def test_hot_blocks_keep_the_library_and_spot_self_loops():
    bench = load("arm_bench")
    maps = ("5500000000-5500001000 r--p 00000000 08:01 1 /x/cy_kernels/_xhbnn.cpython-311-aarch64-linux-gnu.so\n"
            "5500001000-5500010000 r-xp 00001000 08:01 1 /x/cy_kernels/_xhbnn.cpython-311-aarch64-linux-gnu.so\n"
            "7000000000-7000100000 r-xp 00000000 08:01 2 /usr/lib/libc.so.6\n")
    blocks = [{"vaddr": 0x5500002000, "count": 50, "n": 2,
               "insns": [(0x5500002000, "00", "eor v0.16b, v1.16b, v2.16b"), (0x5500002004, "01", "b.ne #0x5500002000")]},
              {"vaddr": 0x7000000100, "count": 9999, "n": 1, "insns": [(0x7000000100, "02", "ret")]}]
    hot = bench.hot_blocks(blocks, maps, "_xhbnn")
    assert [(h["offset"], h["self_loop"]) for h in hot] == [(0x2000, True)]
    assert not bench.branches_to("b.ne #0x5500002004", 0x5500002000)


@pytest.mark.no_emulation
def test_plugin_compiles_against_our_api_header(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        pytest.skip("no host C compiler")
    src = ROOT / "scripts" / "arm-bench.d" / "insn_count.c"
    subprocess.run([cc, "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-o", str(tmp_path / "p.so"),
                    str(src)], check=True)
    syms = subprocess.run(["nm", "-D", "--defined-only", str(tmp_path / "p.so")], capture_output=True, text=True)
    assert "qemu_plugin_install" in syms.stdout and "qemu_plugin_version" in syms.stdout

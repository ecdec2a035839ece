"""scripts/arm-bench end to end on a tiny program: the plugin under the real qemu-user 7.2 counts a
known loop exactly, k/2k/3k differencing is linear, and llvm-mca prices the loop's forms.

Slow (fetches and unpacks Debian's qemu-user once, into .cache/arm-bench) and needs the aarch64
cross compiler and llvm-19; skipped, with the reason, when any of them cannot be had."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench_modules import ROOT, load


est = load("arm_estimate")

pytestmark = [pytest.mark.slow, pytest.mark.no_emulation]

PROGRAM = r"""
#include <stdlib.h>
int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 0;
    for (long i = 0; i < n; i++) {
        __asm__ volatile("eor v0.16b, v1.16b, v2.16b\n\tcnt v0.16b, v0.16b\n\tuadalp v3.8h, v0.16b" ::: "v0", "v3");
    }
    return 0;
}
"""


def qemu_user():
    """(qemu binary, its library folder, plugin) from scripts/arm-bench.d/bench-env.sh, or skip."""
    script = ('set -e; source scripts/arm-common.sh; source scripts/arm-bench.d/bench-env.sh; set_target aarch64; '
              'ensure_qemu_user; build_plugin; echo "$QEMU_USER_BIN"; echo "$QEMU_USER_LIBS"; echo "$PLUGIN"')
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip("qemu-user 7.2 (the dynamic build that loads TCG plugins) cannot be had here: "
                    f"'apt-get download qemu-user libcapstone4 liburing2' failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout.split()[-3:]


def test_plugin_counts_a_known_loop_exactly(tmp_path):
    cc = shutil.which("aarch64-linux-gnu-gcc")
    if not cc or not Path("/usr/aarch64-linux-gnu/lib/libc.a").is_file():
        pytest.skip("needs the aarch64 cross compiler with a static libc (gcc-aarch64-linux-gnu, libc6-dev-arm64-cross)")
    if not Path("/usr/lib/llvm-19/bin/llvm-mca").is_file():
        pytest.skip("needs llvm-19 (llvm-mca and llvm-mc)")
    qemu, libs, plugin = qemu_user()
    (tmp_path / "loop.c").write_text(PROGRAM)
    exe = tmp_path / "loop"
    subprocess.run([cc, "-O1", "-static", "-o", str(exe), str(tmp_path / "loop.c")], check=True)

    def counts(n):
        out = tmp_path / f"counts-{n}.txt"
        subprocess.run(["/lib64/ld-linux-x86-64.so.2", "--library-path", libs, qemu, "-cpu", "cortex-a72",
                        "-plugin", f"{plugin},out={out}", str(exe), str(n)], check=True, timeout=120)
        c = est.instruction_counts(est.parse_counts(out.read_text()))
        return {f"{op}|{text}": v for (op, text), v in c.items()}   # the keys arm_bench.py uses

    k = 1000
    runs = {n: counts(n) for n in (k, 2 * k, 3 * k)}
    bench = load("arm_bench")
    decoder = bench.Decoder("aarch64", tmp_path)
    keys = set().union(*runs.values())
    texts = decoder.texts(keys)
    forms = {n: {} for n in runs}
    for n, c in runs.items():
        for key, v in c.items():
            f = est.canonical_form(texts[key])
            forms[n][f] = forms[n].get(f, 0) + v
    frame = est.per_frame(forms[k], forms[2 * k], k)
    # each iteration: exactly one of each instruction in the asm, whatever the compiler adds around it
    assert frame["eor vN.16b, vN.16b, vN.16b"] == 1.0
    assert frame["cnt vN.16b, vN.16b"] == 1.0
    assert frame["uadalp vN.8h, vN.16b"] == 1.0
    totals = {n: sum(c.values()) for n, c in runs.items()}
    assert est.linearity(totals[k], totals[2 * k], totals[3 * k], k) == 0.0
    examples = {est.canonical_form(t): t for t in texts.values()}
    rt = bench.CostModel("aarch64", "cortex-a72", tmp_path).rthroughput(examples)
    assert rt["cnt vN.16b, vN.16b"] == 0.5     # two NEON pipes in LLVM's A57 model
    cycles = est.estimate({f: v for f, v in frame.items() if v}, rt)
    assert 1.5 <= cycles["cycles"] <= 10 and cycles["unmodelled_instructions"] == 0

"""Pure arithmetic of ``scripts/arm-bench`` (no QEMU, no LLVM): unit-tested on small fixtures.

* ``parse_counts``: the TCG plugin's output (``scripts/arm-bench.d/insn_count.c``) -> translation
  blocks with execution counts and their instructions.
* ``instruction_counts``: executed count per distinct instruction (opcode bytes + QEMU's text).
* ``canonical_form``: an instruction's cost class (registers and immediates abstracted away).
* ``per_frame``: (count at 2k frames - count at k) / k per key, so start-up cancels.
* ``linearity``: how far the per-frame figure from (3k - 2k) departs from (2k - k).
* ``estimate``: cycles = sum over forms of count x reciprocal throughput; ms at a clock.
* ``parse_mca_instruction_info`` / ``parse_mca_summary``: llvm-mca's text output.
* ``loop_macs_per_cycle``: binary MACs (bits through EOR) per cycle of a loop body.
"""
from __future__ import annotations

import re
from collections import Counter

CLOCKS_GHZ = (1.2, 1.5, 2.4)


def parse_counts(text):
    """Blocks from the plugin output: [{"vaddr", "count", "insns": [(vaddr, opcode_hex, disas)]}]."""
    blocks = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line:
            continue
        kind = line[:2]
        if kind == "T ":
            parts = line.split()
            if len(parts) != 4:
                raise ValueError(f"Expected 'T vaddr count n' on line {lineno}, got {line!r}")
            blocks.append({"vaddr": int(parts[1], 16), "count": int(parts[2]), "n": int(parts[3]), "insns": []})
        elif kind == "I ":
            if not blocks:
                raise ValueError(f"Expected a T line before the I line {lineno}, got {line!r}")
            parts = line.split(" ", 3)
            if len(parts) < 3:
                raise ValueError(f"Expected 'I vaddr opcode [disas]' on line {lineno}, got {line!r}")
            blocks[-1]["insns"].append((int(parts[1], 16), parts[2], parts[3] if len(parts) > 3 else ""))
        else:
            raise ValueError(f"Expected a line starting 'T ' or 'I ' on line {lineno}, got {line!r}")
    for b in blocks:
        if len(b["insns"]) != b["n"]:
            raise ValueError(f"Expected {b['n']} instructions in the block at {b['vaddr']:#x}, "
                             f"got {len(b['insns'])} (truncated output?)")
    return blocks


def instruction_counts(blocks):
    """Executed count per (opcode_hex, QEMU text), summed over addresses and blocks."""
    counts = Counter()
    for b in blocks:
        for _, opcode, disas in b["insns"]:
            counts[(opcode, disas)] += b["count"]
    return counts


_COMMENT = re.compile(r"\s*(//|;|@).*$")
_REG = re.compile(r"(?<![.\w])([xwbhsdqvrz])([0-9]+)\b")
_IMM = re.compile(r"#-?(0x[0-9a-f]+|[0-9]+(\.[0-9]+)?(e[-+]?[0-9]+)?)")
_LANE = re.compile(r"\[[0-9]+\]")


def canonical_form(text):
    """The instruction's cost class: mnemonic, register classes, arrangement, addressing mode.

    ``eor v3.16b, v1.16b, v7.16b`` and ``eor v0.16b, v2.16b, v2.16b`` share one form; an
    immediate offset or a shift amount becomes ``#I`` (llvm-mca's models rarely depend on it).
    """
    t = _COMMENT.sub("", text.strip().lower())
    t = " ".join(t.replace(",", ", ").split()).replace(" ,", ",")
    t = _REG.sub(lambda m: m.group(1) + "N", t)
    t = _IMM.sub("#I", t)
    return _LANE.sub("[L]", t)


def per_frame(counts_k, counts_2k, k):
    """{key: (counts_2k[key] - counts_k[key]) / k}, keys of either; start-up counts cancel."""
    if k <= 0:
        raise ValueError(f"Expected k >= 1 frames, got {k}")
    keys = set(counts_k) | set(counts_2k)
    return {key: (counts_2k.get(key, 0) - counts_k.get(key, 0)) / k for key in keys}


def linearity(total_k, total_2k, total_3k, k):
    """Relative gap between the per-frame totals from (2k - k) and (3k - 2k): 0 when linear."""
    a = (total_2k - total_k) / k
    b = (total_3k - total_2k) / k
    if a <= 0:
        raise ValueError(f"Expected more instructions at 2k frames than at k, got {total_k} -> {total_2k}")
    return (b - a) / a


def estimate(form_counts, rthroughput, default=1.0):
    """Cycles = sum count x reciprocal throughput; forms without a figure cost ``default``.

    Returns {"instructions", "cycles", "unmodelled_instructions"}.
    """
    cycles = 0.0
    unmodelled = 0.0
    for form, n in form_counts.items():
        rt = rthroughput.get(form)
        if rt is None:
            unmodelled += n
            rt = default
        cycles += n * rt
    return {"instructions": float(sum(form_counts.values())), "cycles": cycles,
            "unmodelled_instructions": unmodelled}


def ms_at(cycles, ghz):
    return cycles / (ghz * 1e6)


def ratio(peer_cycles, our_cycles):
    """Peer's cycles / ours: > 1 means we need fewer cycles."""
    if not our_cycles or peer_cycles is None:
        return None
    return peer_cycles / our_cycles


_INFO_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+([0-9.]+)\s+(.*)$")


def parse_mca_instruction_info(text):
    """Rows of llvm-mca's "Instruction Info" view: [(uops, latency, rthroughput, instruction text)]."""
    rows = []
    in_table = False
    for line in text.splitlines():
        if "Instructions:" in line and line.lstrip().startswith("[1]"):
            in_table = True
            continue
        if not in_table:
            continue
        if not line.strip():
            if rows:
                break
            continue
        m = _INFO_ROW.match(line)
        if not m:
            break
        rest = m.group(4)
        # the flag columns (MayLoad, MayStore, HasSideEffects) are '*' / 'U' before the text
        text_part = re.sub(r"^(\s*[*U]\s+)+", "", rest).strip()
        rows.append((int(m.group(1)), int(m.group(2)), float(m.group(3)), text_part))
    return rows


def _mnemonic(text):
    return text.strip().split(None, 1)[0].lower() if text.strip() else ""


def align_rows(texts, rows, lookahead=4):
    """Pair llvm-mca's instruction-info rows with the input lines they came from.

    llvm-mca skips lines it has no scheduling data for, so rows and lines can fall out of step;
    a row belongs to the next line with its mnemonic (within ``lookahead`` lines), else to the
    current one. Returns [(line index, reciprocal throughput)]; skipped lines are absent.
    """
    out, i = [], 0
    for row in rows:
        if i >= len(texts):
            break
        m = _mnemonic(row[3])
        j = next((j for j in range(i, min(len(texts), i + lookahead + 1)) if _mnemonic(texts[j]) == m), i)
        out.append((j, row[2]))
        i = j + 1
    return out


def parse_mca_summary(text):
    """llvm-mca's summary: {"iterations", "instructions", "total_cycles", "block_rthroughput"}."""
    fields = {"Iterations:": "iterations", "Instructions:": "instructions", "Total Cycles:": "total_cycles",
              "Block RThroughput:": "block_rthroughput"}
    out = {}
    for line in text.splitlines():
        for label, key in fields.items():
            if line.startswith(label):
                out[key] = float(line.split(":", 1)[1])
    missing = set(fields.values()) - set(out)
    if missing:
        raise ValueError(f"Expected llvm-mca's summary lines {sorted(missing)}, got none")
    return out


_EOR_BITS = ((re.compile(r"^eor\s+vN\.16b"), 128), (re.compile(r"^eor\s+vN\.8b"), 64),
             (re.compile(r"^veor\s+qN"), 128), (re.compile(r"^veor\s+dN"), 64))


def eor_bits(texts):
    """Bits that vector EORs combine in one pass over the given instructions (binary MACs)."""
    bits = 0
    for t in texts:
        form = canonical_form(t)
        for pattern, width in _EOR_BITS:
            if pattern.match(form):
                bits += width
                break
    return bits


def loop_macs_per_cycle(texts, cycles_per_iteration):
    if cycles_per_iteration <= 0:
        raise ValueError(f"Expected a positive cycles per iteration, got {cycles_per_iteration}")
    return eor_bits(texts) / cycles_per_iteration

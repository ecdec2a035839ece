"""Shared machinery of the fuzz harnesses (``fuzz_model.py``, ``fuzz_frames.py``, ``fuzz_mavlink.py``).

One seeded, deterministic mutation loop serves both the short run in the test suite and the
long run (``scripts/fuzz-long``):

* a **case** is fully determined by ``(seed, target name, index)``: :func:`case_rng` seeds a
  ``random.Random`` from the three, so any case of a long run replays alone
  (``scripts/fuzz-long --target T --seed S --case N``);
* **mutators** here work on raw bytes (bit flips, byte substitutions, interesting integers,
  insertions, deletions, duplications, truncations, splices from another corpus entry); each
  target adds structure-aware ones (length fields, JSON header, CRCs, signatures);
* the **oracle**: each target's ``run(case, meter)`` feeds the input to the real entry point and
  either returns an outcome class or raises :class:`OracleFailure` (wrong exception type, a
  decoded value that breaks an invariant, a decoder that does not recover). Around it,
  :func:`run_case` enforces a per-case time limit (a soft limit on the case's CPU time, checked
  after it returns, so a machine busy with other work does not fail it; and a hard wall-clock
  one, SIGALRM, that interrupts a hang) and a memory bound: the tracemalloc peak of the
  measured call must stay under ``mem_factor * len(input) + mem_const``.

tracemalloc sees every allocation made through Python's allocators and numpy's; it does not
see ``mmap`` (the model is mapped, never read) or the Rust heap of the safetensors library,
so the long run also reports the process's peak RSS.
"""
from __future__ import annotations

import os
import random
import resource
import signal
import sys
import time
import traceback
import tracemalloc
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

EMULATED = os.environ.get("HBNN_EMULATED", "")
#: QEMU user mode runs Python 10-50x slower: time limits stretch by this factor there.
SLOWDOWN = 50.0 if EMULATED else 1.0


class OracleFailure(AssertionError):
    """An input produced an outcome outside the target's documented contract."""


class CaseTimeout(BaseException):
    """Raised by the SIGALRM handler in a case that overran its hard time limit.

    A BaseException so that the code under test (``except Exception``) cannot swallow it.
    """


@dataclass(frozen=True)
class Limits:
    """Per-case bounds. Time limits are seconds on this machine (stretched under emulation)."""

    time_s: float      # soft: CPU time of the whole case, checked after it returns
    hard_s: float      # hard: SIGALRM interrupts the case (a hang)
    mem_factor: float  # tracemalloc peak of the measured call <= mem_factor * len(input) + mem_const
    mem_const: int

    def bound(self, size: int) -> int:
        return int(self.mem_factor * size + self.mem_const)


@dataclass
class Case:
    """One generated input: the bytes, and target-specific parameters (read boundaries, key...)."""

    data: bytes
    params: Dict[str, Any] = field(default_factory=dict)
    strategy: str = ""


@dataclass
class CaseResult:
    outcome: str                  # the class counted in the tally (e.g. "loaded", "rejected")
    details: Counter              # finer counts (rejecting check, error codes, message types)
    elapsed: float                # CPU seconds
    peak: int
    wall: float = 0.0


def case_rng(seed: int, target: str, index: int) -> random.Random:
    """The generator of case ``index`` (string seeds hash with SHA-512: stable across runs)."""
    return random.Random(f"hbnn-fuzz:{seed}:{target}:{index}")


# ---- measuring ----------------------------------------------------------------------------

class Meter:
    """Runs the measured call(s) of a case and keeps their tracemalloc peak.

    ``call`` returns ``(value, exception)``: whatever the code under test raises is handed to the
    target's oracle to judge, except KeyboardInterrupt and the hang timeout.
    """

    def __init__(self) -> None:
        self.peak = 0

    def call(self, fn: Callable[..., Any], *args: Any) -> Tuple[Any, Optional[BaseException]]:
        tracing = tracemalloc.is_tracing()
        if tracing:
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
        try:
            return fn(*args), None
        except (KeyboardInterrupt, CaseTimeout):
            raise
        except BaseException as exc:  # noqa: BLE001 - the oracle judges every exception type
            return None, exc
        finally:
            if tracing:
                self.peak = max(self.peak, tracemalloc.get_traced_memory()[1] - base)


def describe_exception(exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6))
    return f"{type(exc).__module__}.{type(exc).__name__}: {exc}\n{tb}"


def _on_alarm(signum, frame):  # pragma: no cover - only runs on a hang
    raise CaseTimeout()


def run_case(target: Any, case: Case, limits: Limits) -> CaseResult:
    """Run one case under the target's oracle, the time limits and the memory bound."""
    meter = Meter()
    hard = limits.hard_s * SLOWDOWN
    use_alarm = hasattr(signal, "setitimer") and _in_main_thread()
    if use_alarm:
        old = signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, hard)
    start, cpu0 = time.perf_counter(), time.process_time()
    try:
        outcome, details = target.run(case, meter)
    except CaseTimeout:
        raise OracleFailure(f"hang: the case ran past the hard limit of {hard:.1f} s") from None
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
    elapsed, wall = time.process_time() - cpu0, time.perf_counter() - start
    if elapsed > limits.time_s * SLOWDOWN:
        raise OracleFailure(f"slow: {elapsed:.3f} s of CPU for a {len(case.data)}-byte input "
                            f"(limit {limits.time_s * SLOWDOWN:.1f} s)")
    bound = limits.bound(len(case.data))
    if meter.peak > bound:
        raise OracleFailure(f"memory: tracemalloc peak {meter.peak} bytes for a {len(case.data)}-byte input "
                            f"(bound {bound} = {limits.mem_factor:g} x input + {limits.mem_const})")
    return CaseResult(outcome, details, elapsed, meter.peak, wall)


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---- the tally ----------------------------------------------------------------------------

@dataclass
class Tally:
    target: str
    seed: int
    limits: Limits
    cases: int = 0
    outcomes: Counter = field(default_factory=Counter)
    details: Counter = field(default_factory=Counter)
    strategies: Counter = field(default_factory=Counter)
    max_time: float = 0.0         # CPU seconds of the slowest case
    max_time_case: int = -1
    max_wall: float = 0.0
    max_peak: int = 0
    max_peak_case: int = -1
    max_ratio: float = 0.0        # peak / input bytes, over inputs of at least ratio_min_bytes
    max_ratio_case: int = -1
    max_bound_used: float = 0.0   # peak / bound
    total_bytes: int = 0
    duration: float = 0.0
    failures: List[Tuple[int, str, Case]] = field(default_factory=list)

    ratio_min_bytes: int = 1024  # below this the constant term dominates: the ratio says nothing

    def add(self, index: int, case: Case, res: CaseResult) -> None:
        self.cases += 1
        self.total_bytes += len(case.data)
        self.outcomes[res.outcome] += 1
        self.details.update(res.details)
        self.strategies[case.strategy] += 1
        if res.elapsed > self.max_time:
            self.max_time, self.max_time_case = res.elapsed, index
        self.max_wall = max(self.max_wall, res.wall)
        if res.peak > self.max_peak:
            self.max_peak, self.max_peak_case = res.peak, index
        if len(case.data) >= self.ratio_min_bytes and res.peak / len(case.data) > self.max_ratio:
            self.max_ratio, self.max_ratio_case = res.peak / len(case.data), index
        self.max_bound_used = max(self.max_bound_used, res.peak / self.limits.bound(len(case.data)))

    def fail(self, index: int, case: Case, message: str) -> None:
        self.cases += 1
        self.outcomes["FAILURE"] += 1
        self.failures.append((index, message, case))

    def summary(self) -> str:
        lines = [f"target {self.target}: {self.cases} cases (seed {self.seed}) in {self.duration:.1f} s "
                 f"({self.cases / max(self.duration, 1e-9):.0f}/s), {self.total_bytes / 1e6:.1f} MB of input"]
        lines.append("  outcomes:   " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())))
        top = sorted(self.details.items(), key=lambda kv: (-kv[1], kv[0]))
        lines.append("  details:    " + ", ".join(f"{k} {v}" for k, v in top[:24])
                     + (f", ... ({len(top) - 24} more)" if len(top) > 24 else ""))
        lines.append("  strategies: " + ", ".join(f"{k} {v}" for k, v in sorted(self.strategies.items())))
        lines.append(f"  max case time {self.max_time * 1e3:.1f} ms CPU (case {self.max_time_case}; limit "
                     f"{self.limits.time_s * SLOWDOWN:g} s), {self.max_wall * 1e3:.1f} ms wall (hard limit "
                     f"{self.limits.hard_s * SLOWDOWN:g} s)")
        lines.append(f"  max tracemalloc peak {self.max_peak} B (case {self.max_peak_case}); max peak/input "
                     f"{self.max_ratio:.2f} (case {self.max_ratio_case}, inputs >= {self.ratio_min_bytes} B); "
                     f"max share of the bound {self.max_bound_used:.3f} (bound {self.limits.mem_factor:g} x input"
                     f" + {self.limits.mem_const} B)")
        lines.append(f"  failures {len(self.failures)}"
                     + "".join(f"\n    case {i}: {msg.splitlines()[0]}" for i, msg, _ in self.failures[:10]))
        return "\n".join(lines)

    def as_dict(self) -> Dict[str, Any]:
        return {"target": self.target, "seed": self.seed, "cases": self.cases, "duration_s": round(self.duration, 2),
                "outcomes": dict(self.outcomes), "details": dict(self.details), "strategies": dict(self.strategies),
                "max_case_cpu_ms": round(self.max_time * 1e3, 3), "max_case_cpu_index": self.max_time_case,
                "max_case_wall_ms": round(self.max_wall * 1e3, 3),
                "max_peak_bytes": self.max_peak, "max_peak_index": self.max_peak_case,
                "max_peak_per_input_byte": round(self.max_ratio, 3), "max_bound_used": round(self.max_bound_used, 4),
                "bound": {"mem_factor": self.limits.mem_factor, "mem_const": self.limits.mem_const,
                          "time_s": self.limits.time_s, "hard_s": self.limits.hard_s},
                "failures": [{"case": i, "error": msg} for i, msg, _ in self.failures]}


def campaign(target: Any, seed: int, cases: int, start: int = 0, max_failures: int = 5,
             progress: Optional[Callable[[Tally, int], None]] = None, progress_every: int = 5000,
             trace: bool = True, on_case: Optional[Callable[[int, Case], None]] = None) -> Tally:
    """Run cases ``start .. start + cases - 1`` of ``target`` with ``seed``; return the tally.

    ``on_case(index, case)`` is called before each case runs (the long run re-arms its watchdog
    there and keeps the frames cases for the C decoder differential).
    """
    tally = Tally(target.name, seed, target.limits,
                  ratio_min_bytes=getattr(target, "ratio_min_bytes", Tally.ratio_min_bytes))
    started = not tracemalloc.is_tracing() and trace
    if started:
        tracemalloc.start(1)
    t0 = time.perf_counter()
    try:
        for index in range(start, start + cases):
            case = target.generate(case_rng(seed, target.name, index))
            if on_case is not None:
                on_case(index, case)
            try:
                res = run_case(target, case, target.limits)
            except OracleFailure as exc:
                tally.fail(index, case, str(exc))
                if len(tally.failures) >= max_failures:
                    break
                continue
            tally.add(index, case, res)
            if progress is not None and (index - start + 1) % progress_every == 0:
                tally.duration = time.perf_counter() - t0
                progress(tally, index)
    finally:
        tally.duration = time.perf_counter() - t0
        if started:
            tracemalloc.stop()
    return tally


def check_clean(tally: Tally) -> None:
    """Fail a test with every failure and the command that replays it."""
    if tally.failures:
        lines = [f"{len(tally.failures)} fuzz failure(s) in {tally.target}:"]
        for index, message, case in tally.failures:
            lines.append(f"--- case {index} ({case.strategy}, {len(case.data)} bytes); replay: scripts/fuzz-long "
                         f"--target {tally.target} --seed {tally.seed} --case {index}\n{message}")
        raise AssertionError("\n".join(lines))


def replay(target: Any, seed: int, index: int) -> Tuple[Case, Optional[str]]:
    """Regenerate case ``index`` and run it once; return the case and the failure (None if it passes)."""
    case = target.generate(case_rng(seed, target.name, index))
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start(1)
    try:
        run_case(target, case, target.limits)
        return case, None
    except OracleFailure as exc:
        return case, str(exc)
    finally:
        if started:
            tracemalloc.stop()


def peak_rss_bytes() -> int:
    """The process's peak resident set size so far (what tracemalloc cannot see: mmap, Rust heaps)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


# ---- byte-level mutators ------------------------------------------------------------------

INTERESTING_8 = (0x00, 0x01, 0x02, 0x7E, 0x7F, 0x80, 0x81, 0xFD, 0xFE, 0xFF, 0x10, 0x20, 0x40, 0x64)
INTERESTING_16 = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x3FF, 0x7FFF, 0x8000, 0xFFFE, 0xFFFF)
INTERESTING_32 = INTERESTING_16 + (0x10000, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFE, 0xFFFFFFFF, 0x7F800000, 0x7FC00000,
                                   0xFF800000)
INTERESTING_64 = INTERESTING_32 + (1 << 32, (1 << 53) + 1, (1 << 63) - 1, 1 << 63, (1 << 64) - 1)


def _pos(rng: random.Random, n: int, hot: Optional[Tuple[int, int]]) -> int:
    """A position in 0..n-1, inside the ``hot`` region (start, end) with probability 0.7."""
    if hot is not None and rng.random() < 0.7:
        lo, hi = max(0, hot[0]), min(n, hot[1])
        if lo < hi:
            return rng.randrange(lo, hi)
    return rng.randrange(n)


def _rand_bytes(rng: random.Random, n: int) -> bytes:
    return bytes(rng.getrandbits(8) for _ in range(n))


def havoc(rng: random.Random, data: bytes, donors: List[bytes] = (), ops: Optional[int] = None,
          hot: Optional[Tuple[int, int]] = None, max_insert: int = 64) -> bytes:
    """Apply 1..8 random byte-level mutations (AFL-style "havoc"); ``hot`` biases positions."""
    buf = bytearray(data)
    max_insert = max(1, max_insert)
    if ops is None:
        ops = 1 + min(7, int(rng.expovariate(0.6)))
    for _ in range(ops):
        op = rng.randrange(13)
        n = len(buf)
        if n == 0:
            buf += _rand_bytes(rng, rng.randint(1, 8))
            continue
        i = _pos(rng, n, hot)
        if op == 0:    # flip one bit
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:  # random byte
            buf[i] = rng.getrandbits(8)
        elif op == 2:  # interesting byte
            buf[i] = rng.choice(INTERESTING_8)
        elif op == 3:  # small add/subtract
            buf[i] = (buf[i] + rng.choice((-1, 1)) * rng.randint(1, 35)) & 0xFF
        elif op == 4:  # interesting 16/32/64-bit little-endian integer
            width = rng.choice((2, 4, 8))
            value = rng.choice({2: INTERESTING_16, 4: INTERESTING_32, 8: INTERESTING_64}[width])
            buf[i:i + width] = value.to_bytes(width, "little")[:max(0, n - i)] or b""
        elif op == 5:  # insert random bytes
            buf[i:i] = _rand_bytes(rng, rng.randint(1, max_insert))
        elif op == 6:  # insert a run of one byte
            buf[i:i] = bytes([rng.choice(INTERESTING_8 + (rng.getrandbits(8),))]) * rng.randint(1, 4 * max_insert)
        elif op == 7:  # delete a range
            del buf[i:i + rng.randint(1, max_insert)]
        elif op == 8:  # duplicate a range
            j = rng.randrange(n)
            chunk = buf[j:j + rng.randint(1, max_insert)]
            buf[i:i] = chunk
        elif op == 9:  # overwrite with a range copied from elsewhere
            j = rng.randrange(n)
            chunk = buf[j:j + rng.randint(1, 16)]
            buf[i:i + len(chunk)] = chunk
        elif op == 10 and donors:  # splice: a range from another corpus entry
            donor = rng.choice(donors)
            if donor:
                j = rng.randrange(len(donor))
                chunk = donor[j:j + rng.randint(1, 4 * max_insert)]
                if rng.random() < 0.5:
                    buf[i:i] = chunk
                else:
                    buf[i:i + len(chunk)] = chunk
        elif op == 11:  # truncate the tail
            del buf[i:]
        else:          # swap two bytes
            j = rng.randrange(n)
            buf[i], buf[j] = buf[j], buf[i]
    return bytes(buf)


def cut_short(rng: random.Random, data: bytes) -> bytes:
    """A stream that stops anywhere (a port closed mid-frame)."""
    return data[:rng.randrange(len(data) + 1)]


def splice_junk(rng: random.Random, data: bytes, sizes: Sequence[int]) -> bytes:
    """Random bytes (one of `sizes` long) inserted at a random place (line noise)."""
    junk = bytes(rng.getrandbits(8) for _ in range(rng.choice(sizes)))
    cut = rng.randrange(len(data) + 1)
    return data[:cut] + junk + data[cut:]


def chunk_cuts(rng: random.Random, n: int, max_cuts: int = 6) -> List[int]:
    """Sorted read boundaries for feeding ``n`` bytes in pieces (as a serial port hands them over)."""
    if n == 0:
        return []
    if rng.random() < 0.25:  # byte by byte for short inputs: the worst case of a slow UART
        return list(range(1, n)) if n <= 64 else sorted(rng.sample(range(1, n), min(n - 1, 48)))
    return sorted({rng.randrange(1, n + 1) for _ in range(rng.randint(0, max_cuts))})


def split_at(data: bytes, cuts: List[int]) -> List[bytes]:
    edges = [0] + [c for c in cuts if 0 < c < len(data)] + [len(data)]
    return [data[a:b] for a, b in zip(edges, edges[1:])]

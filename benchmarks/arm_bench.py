"""Estimated ARM cost per frame: our runtime vs LiteRT, by instruction counts under QEMU + llvm-mca.

Run through ``scripts/arm-bench`` (it prepares QEMU, the plugin, the cross-built wheel and the
peer wheel, then calls this with their paths). For every model x engine x core:

1. run the engine for k, 2k and 3k frames in user-mode QEMU (``-cpu`` = the core) with the
   counting plugin; per frame = (count(2k) - count(k)) / k per instruction, so start-up cancels,
   and (count(3k) - count(2k)) / k must agree (linearity, printed);
2. decode every executed instruction (aarch64: ``llvm-mc --disassemble`` on the opcode, since
   QEMU 7.2's disassembler misses ``sdot`` and some atomics; armv7: QEMU's Thumb/ARM text, with
   llvm-mc as the fallback), group them by form, and price each form with the reciprocal
   throughput from llvm-mca's model of the core (cached per model);
3. cycles = sum count x reciprocal throughput; ms at 1.2 / 1.5 / 2.4 GHz; ratios vs LiteRT.

It also prices our hottest loops (translation blocks in ``_xhbnn`` that branch to themselves) with
llvm-mca's steady-state simulation: binary MACs (bits through EOR) per cycle vs the ~85 bound.

The model ignores: overlap between instructions of different pipes beyond each one's own
throughput (it adds reciprocal throughputs, so a mix of integer and NEON work is charged in
full), latency chains, caches and memory bandwidth, branch mispredictions, and the in-order
A53's issue constraints beyond what its llvm-mca model encodes. It is a like-for-like
comparison of executed work, not a stopwatch.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

import arm_estimate as est  # noqa: E402

GUEST = REPO / "benchmarks" / "arm_bench_guest.py"

# name -> QEMU -cpu, llvm-mca -mcpu, /proc/cpuinfo "CPU part", Features line, what it stands for
CORES = {
    "aarch64": {
        "a53": ("cortex-a53", "cortex-a53", "0xd03", "fp asimd evtstrm crc32 cpuid", "Pi 3 / Zero 2 W (A53)"),
        "a72": ("cortex-a72", "cortex-a72", "0xd08", "fp asimd evtstrm crc32 cpuid", "Pi 4 (A72; LLVM's A57 model)"),
        "a76": ("cortex-a76", "neoverse-n1", "0xd0b",
                "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp",
                "Pi 5 (A76; LLVM's Neoverse-N1 model)"),
    },
    "armv7": {
        # LLVM's ARM backend has no scheduling model for A7/A15/A53 (only itineraries, which
        # llvm-mca cannot use): Cortex-R52 (in-order, dual issue) stands for the in-order cores,
        # the A57 model (A72 in AArch32 state) for the out-of-order ones.
        "a7": ("cortex-a7", "cortex-r52", "0xc07",
               "half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm",
               "Pi 2/3/Zero 2 W 32-bit OS (A7 in QEMU; LLVM's Cortex-R52 model)"),
        "a15": ("cortex-a15", "cortex-a57", "0xc0f",
                "half thumb fastmult vfp edsp neon vfpv3 tls vfpv4 idiva idivt vfpd32 lpae evtstrm",
                "Pi 4 32-bit OS (A15 in QEMU; LLVM's A57/A72 AArch32 model)"),
    },
}
TRIPLE = {"aarch64": "aarch64-linux-gnu", "armv7": "armv7a-linux-gnueabihf"}
MC_ATTR = {"aarch64": "+v8.2a,+dotprod,+fullfp16,+lse,+rcpc,+crc,+aes,+sha2,+rdm", "armv7": "+neon,+vfp4,+hwdiv"}
PEER_ENGINE = {"aarch64": "litert", "armv7": "tflite"}
PEER_LABEL = {"aarch64": "LiteRT", "armv7": "tflite-runtime"}
# frames k per model: enough that a frame's work dwarfs run-to-run noise in start-up
FRAMES = {"lenet": 20, "alexnet": 4}
LLVM_BIN = Path(os.environ.get("HBNN_LLVM_BIN", "/usr/lib/llvm-19/bin"))


def sha(*parts):
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else str(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def file_hash(path):
    return sha(Path(path).read_bytes())


def tree_hash(folder):
    h = hashlib.sha256()
    for p in sorted(Path(folder).rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()[:20]


def write_atomic(path, text):
    """Replace a cache file whole (two arm-bench runs may share the cache)."""
    tmp = Path(f"{path}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- models (built on this machine)

def beta_name(bw, ba):
    f = lambda b: "inf" if b is None else str(b)  # noqa: E731
    return f"{f(bw)},{f(ba)}"


def build_models(archs, betas, peer_python, work, seed=0, int_betas=()):
    """The .hbn per beta (and per integer-scale beta) and the LiteRT .tflite fp32/int8 of each arch,
    as ``hbnn bench models`` makes them (``--int-betas``: the float weights with integer scales, the
    activation factors calibrated on LiteRT's int8 calibration images). The peer models depend on
    the arch only, so they are cached apart from the betas (a new beta does not reconvert them)."""
    import bench_models as bm
    sources = sorted((REPO / "converters").glob("*.py")) + [REPO / "edge" / "format.py",
                                                          REPO / "benchmarks" / "bench_models.py",
                                                          REPO / "benchmarks" / "peer_worker.py"]
    src_key = sha(seed, *[p.read_bytes() for p in sources])
    key = sha(src_key, archs, betas, int_betas)
    out = work / "models" / key
    done = out / "done.json"
    if done.is_file():
        return json.loads(done.read_text())
    import torch
    from converters.export import model_to_graph
    from converters.zoo import build_model, get_arch
    from edge.format import write_hbn
    out.mkdir(parents=True, exist_ok=True)
    models = {}
    for arch in archs:
        log(f"building the {arch} models")
        h, w, c = get_arch(arch)["input"]
        fp = bm.float_model(arch, seed)
        state = fp.state_dict()
        x = np.random.default_rng(seed).normal(size=(1, h, w, c)).astype(np.float32)
        calib = np.random.default_rng(7).normal(size=(64, h, w, c)).astype(np.float32)  # LiteRT int8's too
        np.save(out / f"{arch}-x.npy", x)
        entry = {"input": str(out / f"{arch}-x.npy"), "hbnn": {}, "peer": {}}
        for bw, ba, int_scales in [(bw, ba, False) for bw, ba in betas] + [(bw, ba, True) for bw, ba in int_betas]:
            if int_scales:
                model = bm.int_model(arch, bw, ba, state, torch.from_numpy(calib).permute(0, 3, 1, 2))
            else:
                model = build_model(arch, bw, ba)
                model.load_state_dict(state)
            graph, tensors = model_to_graph(model.eval())
            name = beta_name(bw, ba) + (" int" if int_scales else "")
            path = out / f"{arch}-{name.replace(',', '-').replace(' ', '-')}.hbn"
            write_hbn(str(path), graph, tensors)
            entry["hbnn"][name] = str(path)
        peer_dir = work / "models" / f"peer-{sha(src_key, arch)}"
        if peer_python and Path(peer_python).is_file():
            if not (peer_dir / "done").is_file():
                peer_dir.mkdir(parents=True, exist_ok=True)
                graph, tensors = model_to_graph(fp)
                (peer_dir / f"{arch}.json").write_text(json.dumps(graph))
                np.savez(peer_dir / f"{arch}-tensors.npz", **tensors)
                np.save(peer_dir / f"{arch}-calib.npy", calib)
                bm.peer(peer_python, "tflite", peer_dir / f"{arch}.json", peer_dir / f"{arch}-tensors.npz",
                        peer_dir / "tflite", peer_dir / f"{arch}-calib.npy", timeout=1800)
                (peer_dir / "done").write_text("")
            entry["peer"] = {"fp32": str(peer_dir / "tflite" / "fp32.tflite"),
                             "int8": str(peer_dir / "tflite" / "int8.tflite")}
        else:
            log(f"  LiteRT models skipped: no peer interpreter at {peer_python}")
        models[arch] = entry
    done.write_text(json.dumps(models))
    return models


# ---------------------------------------------------------------- emulation

class Emulator:
    """QEMU user mode with the counting plugin, a private -L prefix per core (ARM /proc/cpuinfo)."""

    def __init__(self, args):
        self.args = args
        self.target = args.target
        self.work = Path(args.work)
        self.qemu_id = sha(file_hash(args.qemu), file_hash(args.plugin))
        self.warmed = set()

    def prefix(self, core):
        qcpu, _, part, features, _ = CORES[self.target][core]
        pre = self.work / f"prefix-{self.target}-{core}"
        if not (pre / "proc" / "cpuinfo").is_file():
            pre.mkdir(parents=True, exist_ok=True)
            for entry in Path(self.args.sysroot).iterdir():
                link = pre / entry.name
                if not link.exists() and entry.name != "proc":
                    link.symlink_to(entry.resolve())
            (pre / "proc").mkdir(exist_ok=True)
            arch_line = "8" if self.target == "aarch64" else "7"
            one = (f"BogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
                   f"CPU architecture: {arch_line}\nCPU variant\t: 0x0\nCPU part\t: {part}\nCPU revision\t: 0\n\n")
            (pre / "proc" / "cpuinfo").write_text("".join(f"processor\t: {i}\n{one}" for i in range(4)))
        return pre

    def run(self, core, engine, model, x, frames):
        """Instruction counts of one guest run: {"counts": {opcode|text: n}, "hot": [...], "total": n}."""
        key = sha("run-v1", self.qemu_id, self.target, core, CORES[self.target][core], engine,
                  file_hash(model), file_hash(x), frames, file_hash(GUEST), self.args.site_hash[engine])
        cached = self.work / "runs" / f"{key}.json"
        if cached.is_file():
            return json.loads(cached.read_text())
        if engine not in self.warmed:
            # The first run of an engine writes the bytecode cache; later runs only read it. Warm it
            # without counting, or the k-frame run carries the compilation and the difference lies.
            self._guest(core, engine, model, x, 1, None)
            self.warmed.add(engine)
        t0 = time.time()
        counts_path, maps_path, output = self._guest(core, engine, model, x, frames, "count")
        try:
            blocks = est.parse_counts(counts_path.read_text())
            maps = maps_path.read_text()
        finally:
            shutil.rmtree(counts_path.parent, ignore_errors=True)
        result = {"output": output, "seconds": time.time() - t0,
                  "counts": {f"{op}|{d}": n for (op, d), n in est.instruction_counts(blocks).items()},
                  "hot": hot_blocks(blocks, maps, "_xhbnn"), "total": sum(b["count"] * b["n"] for b in blocks)}
        cached.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(cached, json.dumps(result))
        return result

    def _guest(self, core, engine, model, x, frames, count):
        """One emulated run; with ``count``, under the plugin. Returns (counts file, maps file, output)."""
        site = self.args.site_hbnn if engine == "hbnn" else self.args.site_peer
        qcpu = CORES[self.target][core][0]
        tmp = tempfile.mkdtemp(prefix="arm-bench-", dir=self.work)
        counts_path, maps_path = Path(tmp) / "counts.txt", Path(tmp) / "maps.txt"
        guest_env = [f"PYTHONPATH={site}", "PYTHONHASHSEED=0", "OMP_NUM_THREADS=1",
                     f"PYTHONPYCACHEPREFIX={self.work / 'pycache' / self.target}", "LANG=C.UTF-8",
                     f"HOME={tmp}"]
        if self.args.guest_libs:
            guest_env.append(f"LD_LIBRARY_PATH={self.args.guest_libs}")
        cmd = ["nice", "-n", "10", "/lib64/ld-linux-x86-64.so.2", "--library-path", self.args.qemu_libs,
               self.args.qemu, "-cpu", qcpu, "-L", str(self.prefix(core))]
        if count:
            cmd += ["-plugin", f"{self.args.plugin},out={counts_path}"]
        proc = subprocess.run(cmd + [f"{self.args.sysroot}/usr/bin/python3.11", "-P", str(GUEST), engine,
                                     str(model), str(x), str(frames), str(maps_path)],
                              env={"PATH": "/usr/bin:/bin", **dict(e.split("=", 1) for e in guest_env)},
                              capture_output=True, text=True, timeout=self.args.run_timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"Expected the emulated {engine} run to succeed on {qcpu}, got exit "
                               f"{proc.returncode}: {proc.stderr.strip()[-2000:]}")
        if not count:
            shutil.rmtree(tmp, ignore_errors=True)
        return counts_path, maps_path, json.loads(proc.stdout.strip().splitlines()[-1])


def library_ranges(maps, name):
    """[(start, end, base)] of the executable mappings of a library; base = its lowest mapping."""
    rows = []
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) >= 6 and name in parts[5]:
            start, end = (int(v, 16) for v in parts[0].split("-"))
            rows.append((start, end, parts[1], int(parts[2], 16)))
    if not rows:
        return []
    base = min(r[0] - r[3] for r in rows)
    return [(s, e, base) for s, e, perm, _ in rows if "x" in perm]


def hot_blocks(blocks, maps, library, top=12):
    """The most-executed blocks inside ``library``, by instructions executed, with offsets."""
    ranges = library_ranges(maps, library)
    inside = []
    for b in blocks:
        for s, e, base in ranges:
            if s <= b["vaddr"] < e:
                inside.append({"offset": b["vaddr"] - base, "vaddr": b["vaddr"], "count": b["count"],
                               "insns": [[op, d] for _, op, d in b["insns"]],
                               "self_loop": branches_to(b["insns"][-1][2], b["vaddr"]) if b["insns"] else False})
                break
    inside.sort(key=lambda b: -b["count"] * len(b["insns"]))
    return inside[:top]


def branches_to(disas, target):
    """Whether QEMU's text of a branch names ``target`` (it prints absolute addresses)."""
    m = re.match(r"^\s*(b|cb|tb|bne|beq|blt|bgt|ble|bge|blo|bhi|bls|bhs|bcc|bcs|bmi|bpl)\S*\s.*#(0x[0-9a-f]+)\s*$",
                 disas.strip().lower())
    return bool(m) and int(m.group(2), 16) == target


# ---------------------------------------------------------------- decoding and costs

def llvm(tool):
    path = LLVM_BIN / tool
    if not path.is_file():
        raise SystemExit(f"Expected LLVM 19's {tool} at {path} (apt-get install llvm-19), got nothing")
    return str(path)


class Decoder:
    """Opcode -> LLVM assembly text, cached on disk per target."""

    def __init__(self, target, work):
        self.target = target
        self.path = Path(work) / f"decode-{target}.json"
        self.cache = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def _llvm_decode(self, opcodes, triple):
        lines = [" ".join(f"0x{op[i:i + 2]}" for i in range(0, len(op), 2)) for op in opcodes]
        proc = subprocess.run([llvm("llvm-mc"), "--disassemble", "--show-encoding", f"-triple={triple}",
                               f"-mattr={MC_ATTR[self.target]}"], input="\n".join(lines) + "\n",
                              capture_output=True, text=True)
        out = {}
        for line in proc.stdout.splitlines():
            m = re.match(r"^\s*(.*?)\s*// encoding: \[(.*)\]", line)
            if m:
                enc = "".join(b[2:] for b in m.group(2).split(","))
                out[enc] = " ".join(m.group(1).split())
        return out

    def texts(self, keys):
        """{key "opcode|qemu text": llvm text}; unknown keys are decoded in one batch."""
        missing = [k for k in keys if k not in self.cache]
        if missing:
            if self.target == "aarch64":
                dec = self._llvm_decode(sorted({k.split("|", 1)[0] for k in missing}), "aarch64")
                for k in missing:
                    op, q = k.split("|", 1)
                    self.cache[k] = dec.get(op) or q
            else:
                # QEMU knows ARM vs Thumb state; its text is what we keep unless it is empty.
                bad = [k for k in missing if not k.split("|", 1)[1].strip()]
                dec = self._llvm_decode(sorted({k.split("|", 1)[0] for k in bad}), "thumbv7")
                for k in missing:
                    op, q = k.split("|", 1)
                    self.cache[k] = " ".join(q.split()) or dec.get(op, "")
            write_atomic(self.path, json.dumps(self.cache))
        return {k: self.cache[k] for k in keys}


class CostModel:
    """Form -> reciprocal throughput from llvm-mca's instruction-info view, cached per -mcpu."""

    def __init__(self, target, mcpu, work):
        self.target, self.mcpu = target, mcpu
        self.path = Path(work) / f"rthroughput-{target}-{mcpu}.json"
        self.cache = json.loads(self.path.read_text()) if self.path.is_file() else {}

    def _flags(self, mode):
        if self.target == "aarch64":
            return TRIPLE["aarch64"], [f"-mattr={MC_ATTR['aarch64']}"]
        # Debian's armhf code is Thumb-2 (conditional instructions get their IT block implied);
        # what does not assemble as Thumb is retried as ARM (hand-written kernels, some libraries)
        triple = "thumbv7a-linux-gnueabihf" if mode == "thumb" else TRIPLE["armv7"]
        return triple, [f"-mattr={MC_ATTR['armv7']}", "-arm-implicit-it=always"]

    def _mca(self, texts, mode):
        triple, flags = self._flags(mode)
        proc = subprocess.run([llvm("llvm-mca"), f"-mtriple={triple}", f"-mcpu={self.mcpu}", *flags,
                               "--all-views=false", "--instruction-info", "-iterations=1",
                               "--skip-unsupported-instructions=any"],
                              input="\n".join(texts) + "\n", capture_output=True, text=True)
        return est.parse_mca_instruction_info(proc.stdout)

    def _assembles(self, texts, mode):
        """Indexes of the lines llvm-mc assembles (llvm-mca would drop the others)."""
        triple, flags = self._flags(mode)
        proc = subprocess.run([llvm("llvm-mc"), f"-triple={triple}", *flags, "-filetype=null"],
                              input="\n".join(texts) + "\n", capture_output=True, text=True)
        bad = {int(m.group(1)) - 1 for m in re.finditer(r"<stdin>:(\d+):\d+: error", proc.stderr)}
        return [i for i in range(len(texts)) if i not in bad]

    def _price(self, forms, texts):
        for i, f in enumerate(forms):
            if re.match(r"^it[te]*\b", f):
                self.cache[f] = 0.0   # Thumb IT: no uop of its own in LLVM's models; priced as free
        todo = [i for i, f in enumerate(forms) if f not in self.cache]
        for i in todo:
            self.cache[forms[i]] = None
        for mode in (["a64"] if self.target == "aarch64" else ["thumb", "arm"]):
            todo = [i for i in todo if self.cache[forms[i]] is None]
            ok = [todo[j] for j in self._assembles([texts[i] for i in todo], mode)] if todo else []
            rows = self._mca([texts[i] for i in ok], mode) if ok else []
            rows = [r for r in rows if not re.match(r"^it[te]*\s", r[3])]
            for i, rt in est.align_rows([texts[i] for i in ok], rows):
                self.cache[forms[ok[i]]] = rt

    def rthroughput(self, form_examples):
        """{form: reciprocal throughput or None}; ``form_examples`` maps each form to one real text."""
        missing = [f for f in form_examples if f not in self.cache]
        if missing:
            self._price(missing, [mca_text(form_examples[f]) for f in missing])
            write_atomic(self.path, json.dumps(self.cache))
        return {f: self.cache[f] for f in form_examples}


def mca_text(text):
    """An assembler-friendly copy of a decoded instruction (PC-relative targets as plain offsets)."""
    t = text.replace("\t", " ")
    m = re.match(r"^(\S+)\s+(.*)$", t)
    if m and re.match(r"^(b|cb|tb|adr)", m.group(1).lower()):
        t = re.sub(r"#-?0x[0-9a-f]+", "#0", t)  # absolute targets from QEMU's text: the cost ignores them
    return t


# ---------------------------------------------------------------- one configuration

def measure(emu, decoder, costs, core, engine, model, x, k, check_linearity):
    runs = {n: emu.run(core, engine, model, x, n) for n in ([k, 2 * k, 3 * k] if check_linearity else [k, 2 * k])}
    texts = decoder.texts(set().union(*[r["counts"] for r in runs.values()]))

    def by_form(counts):
        c = Counter()
        for key, n in counts.items():
            c[est.canonical_form(texts[key])] += n
        return c
    forms = {n: by_form(r["counts"]) for n, r in runs.items()}
    examples = {}
    for key, text in texts.items():
        examples.setdefault(est.canonical_form(text), text)
    rt = costs.rthroughput(examples)
    frame = est.per_frame(forms[k], forms[2 * k], k)
    e = est.estimate(frame, rt)
    lin = None
    if check_linearity:
        cyc = {n: est.estimate(forms[n], rt)["cycles"] for n in runs}
        lin = est.linearity(cyc[k], cyc[2 * k], cyc[3 * k], k)
    top = sorted(((f, n * (rt.get(f) if rt.get(f) is not None else 1.0), n) for f, n in frame.items()),
                 key=lambda r: -r[1])[:8]
    return {"instructions_per_frame": e["instructions"], "cycles_per_frame": e["cycles"],
            "unmodelled_share": e["unmodelled_instructions"] / e["instructions"] if e["instructions"] else 0.0,
            "linearity_gap": lin, "frames_k": k, "emulated_seconds": sum(r["seconds"] for r in runs.values()),
            "top_forms": [{"form": f, "cycles": c, "count": n} for f, c, n in top],
            "output": runs[2 * k]["output"], "hot": runs[2 * k]["hot"], "texts": texts}


def loop_figures(hot, texts_of, target, work, mcpus):
    """llvm-mca steady state of our self-looping hot blocks: cycles/iteration, binary MACs/cycle."""
    rows = []
    for b in hot:
        if not b["self_loop"]:
            continue
        body = [mca_text(texts_of.get(f"{op}|{d}", d)) for op, d in b["insns"]]
        if est.eor_bits(body) == 0:
            continue
        row = {"offset": hex(b["offset"]), "instructions": len(body), "eor_bits": est.eor_bits(body),
               "executions_per_run": b["count"], "models": {}}
        for mcpu in mcpus:
            triple, flags = CostModel(target, mcpu, work)._flags("thumb")   # our armv7 .so is Thumb-2
            proc = subprocess.run([llvm("llvm-mca"), f"-mtriple={triple}", f"-mcpu={mcpu}", *flags,
                                   "-iterations=300", "--all-views=false",
                                   "--summary-view", "--skip-unsupported-instructions=any"],
                                  input="\n".join(body) + "\n", capture_output=True, text=True)
            try:
                s = est.parse_mca_summary(proc.stdout)
            except ValueError:
                continue
            cpi = s["total_cycles"] / s["iterations"]
            row["models"][mcpu] = {"cycles_per_iteration": cpi, "block_rthroughput": s["block_rthroughput"],
                                   "binary_macs_per_cycle": est.loop_macs_per_cycle(body, cpi)}
        row["body"] = body
        rows.append(row)
    return rows


def symbolize(rows, so_path):
    """Name the function around each loop offset from the cross-built .so's symbol table."""
    if not so_path or not Path(so_path).is_file():
        return
    proc = subprocess.run([llvm("llvm-nm"), "--defined-only", "-n", str(so_path)], capture_output=True, text=True)
    syms = []
    for line in proc.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1].lower() == "t":
            syms.append((int(parts[0], 16), parts[2]))
    for r in rows:
        off = int(r["offset"], 16)
        best = [name for addr, name in syms if addr <= off]
        r["function"] = best[-1] if best else "?"


def mapped_libraries(maps):
    """[(start, end, name)] of every executable mapping (name: the file's basename)."""
    rows = []
    for line in maps.splitlines():
        parts = line.split()
        if len(parts) >= 6 and "x" in parts[1]:
            start, end = (int(v, 16) for v in parts[0].split("-"))
            rows.append((start, end, Path(parts[5]).name))
    return rows


def profile(emu, decoder, costs, core, model, x, k, so_path, top=14):
    """Estimated cycles per frame by function: symbols of our _xhbnn (from the cross-built .so),
    other libraries whole. Same differencing as measure(): (run(2k) - run(k)) / k, per function."""
    emu.run(core, "hbnn", model, x, k)   # warms the bytecode cache (and is cached itself)
    syms = []
    if so_path and Path(so_path).is_file():
        proc = subprocess.run([llvm("llvm-nm"), "--defined-only", "-n", str(so_path)], capture_output=True, text=True)
        syms = [(int(a, 16), n) for a, t, n in (l.split() for l in proc.stdout.splitlines() if len(l.split()) == 3)
                if t.lower() == "t"]
    per_run = {}
    for n in (k, 2 * k):
        counts_path, maps_path, _ = emu._guest(core, "hbnn", model, x, n, "count")
        try:
            blocks, maps = est.parse_counts(counts_path.read_text()), maps_path.read_text()
        finally:
            shutil.rmtree(counts_path.parent, ignore_errors=True)
        ours = library_ranges(maps, "_xhbnn")
        libs = mapped_libraries(maps)
        keys = {f"{op}|{d}" for b in blocks for _, op, d in b["insns"]}
        texts = decoder.texts(keys)
        forms = {key: est.canonical_form(t) for key, t in texts.items()}
        examples = {}
        for key, f in forms.items():
            examples.setdefault(f, texts[key])
        rt = costs.rthroughput(examples)
        cycles = Counter()
        for b in blocks:
            cost = sum(rt.get(forms[f"{op}|{d}"]) or 1.0 for _, op, d in b["insns"]) * b["count"]
            name = next((lib for s0, e0, lib in libs if s0 <= b["vaddr"] < e0), "?")
            for s0, e0, base in ours:
                if s0 <= b["vaddr"] < e0:
                    off = b["vaddr"] - base
                    name = "_xhbnn:" + (max(((a, sym) for a, sym in syms if a <= off), default=(0, "?"))[1])
                    break
            cycles[name] += cost
        per_run[n] = cycles
    frame = {f: (per_run[2 * k][f] - per_run[k][f]) / k for f in set(per_run[k]) | set(per_run[2 * k])}
    return sorted(frame.items(), key=lambda r: -r[1])[:top]


# ---------------------------------------------------------------- report

def inner_loop_figures():
    """The kernels' own inner-loop figures from scripts/neon-mca (the NEON kernel work's llvm-mca
    harness), when this tree has it: one tool for those numbers, printed here beside ours."""
    script = REPO / "scripts" / "neon-mca"
    if not script.is_file():
        return None
    proc = subprocess.run([sys.executable, str(script), "--json"], capture_output=True, text=True, cwd=REPO)
    if proc.returncode != 0:
        log(f"scripts/neon-mca failed (exit {proc.returncode}): {proc.stderr.strip()[-500:]}")
        return None
    rows = json.loads(proc.stdout)
    print("\nInner loops by scripts/neon-mca (harness per loop, llvm-mca steady state):\n")
    print("| target | core | loop | instr | binary MACs | cycles/iter | MACs/cycle |\n|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['target']} | {r['core']} | {r['loop']} | {r['instructions']} | {r['binary_macs']} | "
              f"{r['cycles']:.2f} | {r['macs_per_cycle']:.1f} |")
    return rows


def table(results, cores, target):
    lines = ["| model | engine | core (llvm-mca model) | instr/frame | est. cycles/frame | ms @1.2 | ms @1.5 | ms @2.4 "
             "| vs peer fp32 | vs peer int8 | linearity |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lin = "-" if r["linearity_gap"] is None else f"{100 * r['linearity_gap']:+.2f} %"
        f = lambda v: "-" if v is None else f"{v:.2f}x"  # noqa: E731
        lines.append(f"| {r['model']} | {r['engine']} | {r['core']} ({CORES[target][r['core']][1]}) | "
                     f"{r['instructions_per_frame'] / 1e6:.2f} M | {r['cycles_per_frame'] / 1e6:.2f} M | "
                     + " | ".join(f"{r['ms'][str(g)]:.2f}" for g in est.CLOCKS_GHZ)
                     + f" | {f(r['vs_peer_fp32'])} | {f(r['vs_peer_int8'])} | {lin} |")
    return "\n".join(lines)


def loops_table(loops):
    lines = ["| function (offset) | config | instr | EOR bits/iter | " + " | ".join(
        f"{m}: cyc/iter, MACs/cycle" for m in sorted({m for l in loops for m in l["models"]})) + " |"]
    models = sorted({m for l in loops for m in l["models"]})
    lines.append("|" + "---|" * (4 + len(models)))
    for l in loops:
        cells = []
        for m in models:
            v = l["models"].get(m)
            cells.append("-" if not v else f"{v['cycles_per_iteration']:.2f}, {v['binary_macs_per_cycle']:.1f}")
        lines.append(f"| {l.get('function', '?')} ({l['offset']}) | {l['config']} | {l['instructions']} | "
                     f"{l['eor_bits']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="arm-bench", description=__doc__.split("\n")[0])
    p.add_argument("target", choices=["aarch64", "armv7"])
    p.add_argument("--quick", action="store_true",
                   help="AlexNet and LeNet (16,16) and (inf,inf), integer (16,16) and (16,2) + LiteRT int8 on "
                        "one core, no linearity run")
    p.add_argument("--cores", help="comma list (aarch64: a53,a72,a76; armv7: a7,a15)")
    p.add_argument("--archs", default="lenet,alexnet")
    p.add_argument("--betas", help='float-scale betas (default "16,16 inf,inf 16,2 64,64 1,1"; --quick: '
                                   '"16,16 inf,inf"; "" for none)')
    p.add_argument("--int-betas", default="16,16 16,2",
                   help='integer-scale betas, as hbnn bench models --int-betas ("" for none)')
    p.add_argument("--peers", help='LiteRT precisions, comma list of fp32,int8 (default both; --quick: int8)')
    p.add_argument("--peer-python", default=os.environ.get("HBNN_PEER_PYTHON", str(REPO / ".venv-bench/bin/python")))
    p.add_argument("--json", help="write the results here")
    p.add_argument("--profile", action="store_true",
                   help="also print our runtime's estimated cycles per frame by function (first core)")
    p.add_argument("--run-timeout", type=int, default=3600)
    # paths prepared by scripts/arm-bench
    for name in ("qemu", "qemu-libs", "plugin", "sysroot", "site-hbnn", "site-peer", "guest-libs", "work", "xhbnn-so"):
        p.add_argument(f"--{name}", required=name not in ("guest-libs", "site-peer", "xhbnn-so"))
    args = p.parse_args(argv)
    import bench_models as bm
    cores = (args.cores or ("a72" if args.quick else ",".join(CORES[args.target]))).split(",")
    for c in cores:
        if c not in CORES[args.target]:
            raise SystemExit(f"Expected cores among {', '.join(CORES[args.target])} for {args.target}, got {c!r}")
    if args.betas is None:
        args.betas = "16,16 inf,inf" if args.quick else "16,16 inf,inf 16,2 64,64 1,1"
    betas = bm.parse_betas(args.betas)
    int_betas = bm.parse_betas(args.int_betas)
    archs = args.archs.split(",")
    peer_kinds = (args.peers or ("int8" if args.quick else "fp32,int8")).split(",")
    for kind in peer_kinds:
        if kind not in ("fp32", "int8"):
            raise SystemExit(f"Expected --peers among fp32, int8, got {kind!r}")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    args.site_hash = {"hbnn": tree_hash(args.site_hbnn),
                      PEER_ENGINE[args.target]: tree_hash(args.site_peer) if args.site_peer else ""}
    models = build_models(archs, betas, args.peer_python if args.site_peer else None, work, int_betas=int_betas)
    emu = Emulator(args)
    decoder = Decoder(args.target, work)
    results, loops = [], []
    peer = PEER_ENGINE[args.target]
    for core in cores:
        costs = CostModel(args.target, CORES[args.target][core][1], work)
        for arch in archs:
            m = models[arch]
            configs = [(f"HadaNet ({b})", "hbnn", path) for b, path in m["hbnn"].items()]
            configs += [(f"{PEER_LABEL[args.target]} {kind}", peer, m["peer"][kind])
                        for kind in peer_kinds if kind in m["peer"]]
            rows = []
            for label, engine, path in configs:
                log(f"{arch} {label} on {core}")
                r = measure(emu, decoder, costs, core, engine, path, m["input"], FRAMES[arch], not args.quick)
                log(f"  {r['instructions_per_frame'] / 1e6:.2f} M instr, {r['cycles_per_frame'] / 1e6:.2f} M cycles"
                    f" per frame ({r['emulated_seconds']:.0f} s emulated)")
                if engine == "hbnn" and core == cores[0]:
                    for l in loop_figures(r["hot"], r["texts"], args.target, work,
                                          [CORES[args.target][c][1] for c in CORES[args.target]]):
                        l["config"] = f"{arch} {label}"
                        loops.append(l)
                if args.profile and engine == "hbnn" and core == cores[0]:
                    r["profile"] = profile(emu, decoder, costs, core, path, m["input"], FRAMES[arch], args.xhbnn_so)
                    total = r["cycles_per_frame"]
                    print(f"\nProfile, {arch} {label} on {core} ({total / 1e6:.2f} M cycles per frame):")
                    for name, cyc in r["profile"]:
                        print(f"  {cyc / 1e6:8.2f} M  {100 * cyc / total:5.1f} %  {name}")
                del r["texts"], r["hot"]
                rows.append({"model": arch, "engine": label, "core": core, **r})
            for r in rows:
                base = {kind: next((q["cycles_per_frame"] for q in rows
                                    if q["engine"] == f"{PEER_LABEL[args.target]} {kind}"), None)
                        for kind in ("fp32", "int8")}
                r["vs_peer_fp32"] = est.ratio(base["fp32"], r["cycles_per_frame"])
                r["vs_peer_int8"] = est.ratio(base["int8"], r["cycles_per_frame"])
                r["ms"] = {str(g): est.ms_at(r["cycles_per_frame"], g) for g in est.CLOCKS_GHZ}
            results.extend(rows)
    symbolize(loops, args.xhbnn_so)
    # only the xor GEMMs count binary MACs with their EORs (the sign GEMM's EORs flip float signs)
    loops = [l for l in loops if "xor" in l.get("function", "xor")]
    print(f"\nARM ({args.target}), estimated: cycles = sum over executed instructions of llvm-mca's reciprocal "
          f"throughput; per frame = (count(2k) - count(k)) / k; ratios = "
          f"{PEER_LABEL[args.target]}'s cycles / ours (its default XNNPACK delegate on)")
    for c in cores:
        print(f"  {c}: QEMU -cpu {CORES[args.target][c][0]}, llvm-mca -mcpu={CORES[args.target][c][1]}: "
              f"{CORES[args.target][c][4]}")
    print()
    print(table(results, cores, args.target))
    if loops:
        print("\nHot xor-GEMM loops of _xhbnn (llvm-mca steady state, 300 iterations; bound ~85 binary MACs/cycle "
              "= EOR + CNT + one accumulate per 128 bits on two NEON pipes):\n")
        print(loops_table(loops))
    neon_mca = inner_loop_figures()
    print("\nIgnored by the model: overlap beyond each instruction's own throughput, latency chains, caches, "
          "memory bandwidth, branch mispredictions.")
    if args.json:
        Path(args.json).write_text(json.dumps({"target": args.target, "cores": {c: CORES[args.target][c] for c in cores},
                                               "results": results, "loops": loops, "neon_mca": neon_mca,
                                               "argv": sys.argv}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Security checks of what ships (issue 7, part 5; docs/RELIABILITY.md, "Security").

1. Nothing in the shipped packages can run code hidden in a data file: no pickle/marshal/shelve,
   no eval/exec, no yaml.load without a safe loader, np.load only without allow_pickle=True,
   torch.load only with weights_only=True. Python files are checked on their syntax tree (so
   ``model.eval()`` is not ``eval()``), Cython and shell files with patterns. Each detector is
   tested on a known-bad snippet too, so the scan cannot pass by finding nothing at all.
2. The daemon runs unprivileged: the systemd unit (User=, no capabilities, hardening that keeps
   the serial port and camera reachable) and the container (a numeric non-root USER).
3. MAVLink signing is documented where a user looks for it.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("cy_kernels", "converters", "edge", "firmware_bridge", "scripts")

BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib",
                  "jsonpickle"}
BANNED_CALLS = {"eval", "exec", "execfile", "__import__"}


def _dotted(node) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return ""


def _kw(call: ast.Call, name: str):
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    return None


def _is_const(node, value) -> bool:
    return isinstance(node, ast.Constant) and node.value is value


def python_findings(source: str, where: str = "<snippet>"):
    """(line, what) for every unsafe loading construct in a Python source."""
    found = []
    tree = ast.parse(source, where)
    numpy_names, torch_names, yaml_names = {"np", "numpy"}, {"torch"}, {"yaml"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                top = alias.name.split(".")[0]
                if top in BANNED_MODULES:
                    found.append((node.lineno, f"import {alias.name}"))
                for names, module in ((numpy_names, "numpy"), (torch_names, "torch"), (yaml_names, "yaml")):
                    if top == module:
                        names.add(alias.asname or top)
        elif isinstance(node, ast.ImportFrom):
            top = (node.module or "").split(".")[0]
            if top in BANNED_MODULES:
                found.append((node.lineno, f"from {node.module} import ..."))
            for alias in node.names:
                if top == "numpy" and alias.name == "load" or top == "torch" and alias.name == "load" \
                        or top == "yaml" and alias.name in ("load", "load_all", "unsafe_load"):
                    found.append((node.lineno, f"from {node.module} import {alias.name} (call it qualified)"))
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, attr = name.rpartition(".")
            if name in BANNED_CALLS or name in ("builtins.eval", "builtins.exec"):
                found.append((node.lineno, f"{name}()"))
            elif head in numpy_names and attr == "load":
                flag = _kw(node, "allow_pickle")
                if flag is not None and not _is_const(flag, False):
                    found.append((node.lineno, f"{name}(allow_pickle=...) other than False"))
            elif head in torch_names and attr == "load" or name in ("torch.jit.load", "torch.package"):
                if not _is_const(_kw(node, "weights_only"), True):
                    found.append((node.lineno, f"{name}() without weights_only=True"))
            elif head in yaml_names and attr in ("load", "load_all", "unsafe_load", "full_load"):
                loader = _kw(node, "Loader")
                if attr in ("unsafe_load", "full_load") or not (
                        loader is not None and _dotted(loader).endswith(("SafeLoader", "CSafeLoader"))):
                    found.append((node.lineno, f"{name}() without a safe Loader"))
            elif attr in ("loads", "load") and head.split(".")[0] in BANNED_MODULES:
                found.append((node.lineno, f"{name}()"))
            elif name in ("subprocess.run", "subprocess.Popen", "subprocess.call", "subprocess.check_call",
                          "subprocess.check_output", "os.system", "os.popen"):
                if name in ("os.system", "os.popen") or _is_const(_kw(node, "shell"), True):
                    found.append((node.lineno, f"{name}() through a shell"))
    return found


TEXT_PATTERNS = [  # for .pyx/.pxd (not Python syntax) and shell scripts
    (re.compile(r"^\s*(?:c?import|from)\s+(?:pickle|cPickle|_pickle|marshal|shelve|dill|cloudpickle)\b", re.M),
     "pickle-like import"),
    (re.compile(r"(?<![\w.])(?:eval|exec)\s*\("), "eval/exec call"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
    (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"yaml\.(?:unsafe_|full_)?load\((?![^)]*SafeLoader)"), "yaml.load without SafeLoader"),
    (re.compile(r"pickle\.loads?\("), "pickle.load"),
]


def text_findings(text: str):
    return [(text.count("\n", 0, m.start()) + 1, what) for rx, what in TEXT_PATTERNS for m in rx.finditer(text)]


def shipped_files():
    files = []
    for top in SHIPPED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".so", ".c", ".h", ".pyc"):
                files.append(path)
    return files


def _findings(path: Path):
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".py" or text.startswith("#!") and "python" in text.splitlines()[0]:
        return python_findings(text, str(path))
    if path.suffix in (".pyx", ".pxd", ".sh", "") or text.startswith("#!"):
        return text_findings(text)
    return []


def test_the_scan_covers_every_shipped_package():
    files = shipped_files()
    for top in SHIPPED:
        assert any(f.relative_to(ROOT).parts[0] == top for f in files), f"nothing scanned in {top}/"
    assert any(f.suffix == ".pyx" for f in files) and any(f.name == "cross-build" for f in files)


@pytest.mark.parametrize("path", shipped_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_code_execution_from_data_in_shipped_files(path):
    findings = _findings(path)
    assert not findings, f"{path.relative_to(ROOT)}: " + "; ".join(f"line {n}: {what}" for n, what in findings)


@pytest.mark.parametrize("snippet", [
    "import pickle",
    "from pickle import loads",
    "import marshal as m",
    "import numpy as n\nn.load('x.npy', allow_pickle=True)",
    "import numpy\nnumpy.load(p, allow_pickle=flag)",
    "from numpy import load",
    "import torch\ntorch.load(p)",
    "import torch\ntorch.load(p, weights_only=False)",
    "import torch as t\nt.load(p, map_location='cpu')",
    "import yaml\nyaml.load(s)",
    "import yaml\nyaml.load(s, Loader=yaml.Loader)",
    "import yaml\nyaml.full_load(s)",
    "eval(text)",
    "exec(code)",
    "__import__(name)",
    "import subprocess\nsubprocess.run(cmd, shell=True)",
    "import os\nos.system(cmd)",
])
def test_the_python_scan_catches(snippet):
    assert python_findings(snippet)


@pytest.mark.parametrize("snippet", [
    "model.eval()",
    "import numpy as np\nnp.load(p, allow_pickle=False)",
    "import numpy as np\nnp.load(p)",  # numpy >= 1.16.3 refuses pickles by default
    "import torch\ntorch.load(p, map_location='cpu', weights_only=True)",
    "import yaml\nyaml.load(s, Loader=yaml.SafeLoader)\nyaml.safe_load(s)",
    "import json\njson.loads(s)",
    "import subprocess\nsubprocess.run(['ls'], check=True)",
])
def test_the_python_scan_allows(snippet):
    assert not python_findings(snippet)


@pytest.mark.parametrize("snippet, bad", [
    ("cimport pickle", True), ("x = eval(s)", True), ("np.load(p, allow_pickle=True)", True),
    ("torch.load(p)", True), ("torch.load(p, weights_only=True)", False), ("m.eval()", False),
    ("# evaluate(x)", False),
])
def test_the_text_scan(snippet, bad):
    assert bool(text_findings(snippet)) is bad


def test_every_torch_load_passes_weights_only_true():
    calls = []
    for path in shipped_files():
        if path.suffix == ".py":
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call) and _dotted(node.func).endswith("torch.load"):
                    calls.append((path, node))
    assert calls, "expected the converters' torch.load (plain PyTorch state dicts)"
    for path, node in calls:
        assert _is_const(_kw(node, "weights_only"), True), f"{path}:{node.lineno}"


# ---- the daemon runs unprivileged ------------------------------------------------------------------
def unit_settings(text: str):
    """[(section, key, value)] of a systemd unit file (keys may repeat)."""
    out, section = [], None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key.strip(), value.strip()))
    return out


UNIT = unit_settings((ROOT / "deploy" / "hbnn.service").read_text())


def service(key):
    return [v for s, k, v in UNIT if s == "Service" and k == key]


def test_unit_runs_as_an_unprivileged_user_with_device_groups():
    assert service("User") == ["hbnn"] and service("Group") == ["hbnn"]
    assert set(" ".join(service("SupplementaryGroups")).split()) >= {"dialout", "video"}
    assert service("CapabilityBoundingSet") == [""] and service("AmbientCapabilities") in ([], [""])
    for exec_line in service("ExecStart") + service("ExecReload"):
        assert not exec_line.startswith(("+", "!", "@+")), f"privileged Exec prefix: {exec_line}"
    assert "hbnn daemon --config /etc/hbnn/daemon.toml" in service("ExecStart")[0]


def test_unit_hardening_that_keeps_serial_and_camera_reachable():
    yes = lambda key: service(key) and service(key)[-1] in ("yes", "true", "1")  # noqa: E731
    for key in ("NoNewPrivileges", "PrivateTmp", "ProtectKernelTunables", "ProtectKernelModules",
                "ProtectControlGroups", "RestrictSUIDSGID", "LockPersonality", "RestrictRealtime"):
        assert yes(key), f"Expected {key}=yes"
    assert service("ProtectSystem") == ["strict"] and service("ProtectHome")[-1] in ("yes", "read-only", "tmpfs")
    # The devices: PrivateDevices hides /dev/tty* and /dev/video*; a device allow-list, or ProtectClock
    # (which implies DeviceAllow=char-rtc r: before systemd 253 that closes every other device), too.
    assert not yes("PrivateDevices") and not yes("ProtectClock") and not service("DeviceAllow")
    assert service("DevicePolicy") in ([], ["auto"])
    families = " ".join(service("RestrictAddressFamilies")).split()
    assert "AF_UNIX" in families  # sd_notify (READY, WATCHDOG)
    # ProtectSystem=strict: the only place the daemon may write is its RuntimeDirectory, which is
    # where the example config puts the optional stats file.
    runtime = service("RuntimeDirectory")
    assert runtime == ["hbnn"]
    example = re.search(r'^#?\s*stats_file\s*=\s*"([^"]+)"', (ROOT / "deploy" / "daemon.toml").read_text(), re.M)
    assert example and example.group(1).startswith(f"/run/{runtime[0]}/")
    assert service("Type") == ["notify"] and service("WatchdogSec")


def dockerfile_runtime_stage():
    instrs, pending = [], ""
    for line in (ROOT / "Dockerfile.arm").read_text().splitlines():
        s = line.strip()
        if not pending and (not s or s.startswith("#")):
            continue
        if s.endswith("\\"):
            pending += s[:-1] + " "
            continue
        full, pending = pending + s, ""
        kw, _, rest = full.partition(" ")
        instrs.append((kw.upper(), rest.strip()))
    starts = [i for i, (kw, _) in enumerate(instrs) if kw == "FROM"]
    return instrs[starts[-1]:]


def test_container_runs_as_a_numeric_non_root_user():
    stage = dockerfile_runtime_stage()
    users = [(i, rest) for i, (kw, rest) in enumerate(stage) if kw == "USER"]
    assert users, "Expected a USER in the runtime stage"
    last_index, user = users[-1]
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"Expected a numeric non-root uid, got {user!r}"
    useradd = " ".join(rest for kw, rest in stage if kw == "RUN" and "useradd" in rest)
    assert f"--uid {uid}" in useradd and "--groups dialout,video" in useradd
    assert last_index > max(i for i, (kw, _) in enumerate(stage) if kw in ("RUN", "COPY"))
    text = (ROOT / "Dockerfile.arm").read_text()
    assert "/run/hbnn" in text  # the stats file's folder exists and belongs to the user
    assert not re.search(r"^\s*USER\s+(root|0)\b", "\n".join(f"{k} {r}" for k, r in stage), re.M)


def test_documented_docker_run_drops_privileges():
    doc = (ROOT / "docs" / "DEPLOY.md").read_text()
    run = re.search(r"docker run -d .*?hbnn:pi", doc, re.S)
    assert run, "Expected the docker run example in DEPLOY.md"
    cmd = run.group(0)
    assert "--cap-drop ALL" in cmd and "no-new-privileges" in cmd
    assert "--privileged" not in cmd and "--cap-add" not in cmd and "--user" not in cmd


# ---- MAVLink signing is documented -----------------------------------------------------------------
def test_mavlink_signing_is_documented():
    protocol = (ROOT / "docs" / "PROTOCOL.md").read_text()
    deploy = (ROOT / "docs" / "DEPLOY.md").read_text()
    assert "### Signing" in protocol and "signing_key_file" in protocol and "rx_bad_signatures" in protocol
    assert "Signing the link" in deploy and "signing_key_file" in deploy and "SETUP_SIGNING" in deploy
    assert "signing_key_file" in (ROOT / "deploy" / "daemon.toml").read_text()

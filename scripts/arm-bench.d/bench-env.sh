# Sourced by scripts/arm-bench after scripts/arm-common.sh (set_target done): the emulator with
# plugin support, the counting plugin, the peer runtime's wheel and the libraries it needs, all in
# $BENCH (private folders: nothing is installed on the host or into the shared sysroot).

BENCH="${HBNN_ARMBENCH_CACHE:-$REPO/.cache/arm-bench}"
HERE="$REPO/scripts/arm-bench.d"

# Debian's qemu-user-static cannot dlopen() TCG plugins; the dynamic qemu-user 7.2 can. Its .deb
# and the two libraries it links against are unpacked, not installed, and started through the
# host's dynamic loader with --library-path so the guest's environment stays clean.
ensure_qemu_user() {
    QEMU_DIR="$BENCH/qemu-user"
    QEMU_USER_BIN="$QEMU_DIR/usr/bin/qemu-$ARCH"
    [ "$ARCH" = armv7 ] && QEMU_USER_BIN="$QEMU_DIR/usr/bin/qemu-arm"
    QEMU_USER_LIBS="$QEMU_DIR/usr/lib/x86_64-linux-gnu"
    [ -x "$QEMU_USER_BIN" ] && [ -e "$QEMU_USER_LIBS/libcapstone.so.4" ] && return 0
    command -v apt-get >/dev/null || die "Expected apt-get to fetch Debian's qemu-user package"
    log "fetching qemu-user, libcapstone4, liburing2 (unpacked into $QEMU_DIR, not installed)"
    rm -rf "$BENCH/debs" && mkdir -p "$BENCH/debs"
    (cd "$BENCH/debs" && apt-get download -q qemu-user libcapstone4 liburing2 >/dev/null 2>&1) \
        || { [ "$(id -u)" = 0 ] && apt-get update -qq && (cd "$BENCH/debs" && apt-get download -q qemu-user libcapstone4 liburing2 >/dev/null); } \
        || die "Expected 'apt-get download qemu-user libcapstone4 liburing2' to work, got a failure"
    rm -rf "$QEMU_DIR"
    local deb
    for deb in "$BENCH"/debs/*.deb; do dpkg-deb -x "$deb" "$QEMU_DIR"; done
    [ -x "$QEMU_USER_BIN" ] || die "Expected $QEMU_USER_BIN in the qemu-user package"
}

build_plugin() {
    local src="$HERE/insn_count.c" key
    key="$(cat "$src" "$HERE/qemu-plugin-v1.h" | sha256sum | cut -c1-12)"
    PLUGIN="$BENCH/insn_count-$key.so"
    [ -f "$PLUGIN" ] && return 0
    mkdir -p "$BENCH"
    "${HOST_CC:-cc}" -O2 -Wall -Wextra -shared -fPIC -o "$PLUGIN.tmp" "$src" \
        || die "Expected the host C compiler to build $src"
    mv "$PLUGIN.tmp" "$PLUGIN"
}

# The peer wheel: ai-edge-litert (manylinux_2_27, needs libstdc++6, which the sysroot lacks) on
# aarch64; tflite-runtime's most recent armv7l wheel (2.14.0) on armv7. Unzipped into a site folder.
ensure_peer() {
    PEER_SITE="$BENCH/site-peer-$ARCH"
    GUEST_LIBS="$BENCH/extra-$ARCH/usr/lib/$TRIPLET"
    local py="$1" spec plats
    if [ "$ARCH" = aarch64 ]; then
        spec="${HBNN_ARMBENCH_LITERT:-ai-edge-litert}"
        plats="--platform manylinux_2_27_aarch64 --platform manylinux2014_aarch64 --platform linux_aarch64"
    else
        spec="${HBNN_ARMBENCH_TFLITE:-tflite-runtime==2.14.0}"
        plats="--platform manylinux_2_34_armv7l --platform manylinux2014_armv7l --platform linux_armv7l"
    fi
    if [ "$(cat "$PEER_SITE/.spec" 2>/dev/null)" != "$spec" ]; then
        log "downloading $spec for $ARCH"
        rm -rf "$PEER_SITE" "$BENCH/wheels-$ARCH" && mkdir -p "$BENCH/wheels-$ARCH" "$PEER_SITE"
        # shellcheck disable=SC2086
        "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --implementation cp \
            --python-version "$TARGET_PY" $plats -d "$BENCH/wheels-$ARCH" "$spec" 2>/dev/null \
            || die "Expected an $ARCH wheel of $spec on the package index"
        "$py" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
            "$PEER_SITE" "$BENCH/wheels-$ARCH"/*.whl
        echo "$spec" > "$PEER_SITE/.spec"
    fi
    if [ ! -e "$GUEST_LIBS/libstdc++.so.6" ]; then
        log "fetching the $DEB_ARCH libstdc++6 (unpacked into $BENCH/extra-$ARCH)"
        rm -rf "$BENCH/extra-debs-$ARCH" && mkdir -p "$BENCH/extra-debs-$ARCH"
        (cd "$BENCH/extra-debs-$ARCH" && target_apt download libstdc++6 >/dev/null 2>&1) \
            || die "Expected apt to download the $DEB_ARCH libstdc++6"
        dpkg-deb -x "$BENCH/extra-debs-$ARCH"/libstdc++6_*.deb "$BENCH/extra-$ARCH"
    fi
}

# Our cross-built wheel and the runtime dependency Debian bookworm does not package (safetensors),
# unzipped (neither has install-time steps); numpy is the sysroot's.
install_wheel() {
    local wheel="$1" py="$2" plats=()
    HBNN_SITE="$BENCH/site-hbnn-$ARCH"
    for p in $PIP_PLATS; do plats+=(--platform "$p"); done
    if ! ls "$BENCH/deps-$ARCH"/safetensors-*.whl >/dev/null 2>&1; then
        mkdir -p "$BENCH/deps-$ARCH"
        "$py" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: --implementation cp \
            --python-version "$TARGET_PY" "${plats[@]}" -d "$BENCH/deps-$ARCH" safetensors 2>/dev/null \
            || die "Expected an $ARCH wheel of safetensors on the package index"
    fi
    rm -rf "$HBNN_SITE" && mkdir -p "$HBNN_SITE"
    "$py" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' \
        "$HBNN_SITE" "$wheel" "$BENCH/deps-$ARCH"/safetensors-*.whl
    XHBNN_SO="$(ls "$HBNN_SITE"/cy_kernels/_xhbnn.*.so)"
}

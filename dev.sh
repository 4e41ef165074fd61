#!/usr/bin/env bash
# dev.sh: the one entry point for setting up, building, testing and demonstrating the project.
#
#   ./dev.sh demo     install what is missing, build, run the network-namespace demo lab
#   ./dev.sh test     install what is missing, build, run every test suite; ends with
#                     "N passed, N failed, N skipped" and exits non-zero on any failure
#   ./dev.sh deps     only install the Debian packages the project needs (idempotent)
#   ./dev.sh build    only configure and build ./build
#   ./dev.sh lab ...  the lab by hand: tests/lab/lab.sh up|down|status|exec|env
#
# Runs as root on Debian 12 (apt, network namespaces). Without root, `deps` cannot install and
# the tests that need root are skipped (exit 77), as meson reports.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$top"

# Debian 12 packages, grouped by why we need them.
PACKAGES_BUILD=(g++ meson ninja-build pkg-config python3
    libsystemd-dev libcap-dev nlohmann-json3-dev libspdlog-dev doctest-dev libnftables-dev)
PACKAGES_LAB=(iproute2 openssh-server openssh-client iperf3 socat dnsmasq-base dnsutils curl
    nftables iptables procps sshuttle
    dbus-daemon dbus-bin polkitd libglib2.0-bin python3-dbus)
PACKAGES_FUZZ=(clang libclang-rt-14-dev)
# The systemd tier: unit checks, the booted Debian container, man pages and bash completion.
PACKAGES_SYSTEMD=(systemd systemd-container debootstrap bash-completion)

log() { printf '==> %s\n' "$*" >&2; }

missing_packages() {
    local pkg
    for pkg in "$@"; do
        dpkg-query -W -f='${Status}\n' "$pkg" 2>/dev/null | grep -q '^install ok installed$' ||
            printf '%s\n' "$pkg"
    done
}

cmd_deps() {
    local missing
    mapfile -t missing < <(missing_packages "${PACKAGES_BUILD[@]}" "${PACKAGES_LAB[@]}" \
        "${PACKAGES_FUZZ[@]}" "${PACKAGES_SYSTEMD[@]}")
    if [ ${#missing[@]} -eq 0 ]; then
        log "all Debian packages present"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        echo "dev.sh: missing packages: ${missing[*]}; run as root to install them" >&2
        return 1
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
}

# configure DIR [meson options...]: set up DIR once, reconfigure when the options change.
configure() {
    local dir=$1
    shift
    if [ -f "$dir/build.ninja" ]; then
        meson configure "$dir" "$@" >/dev/null
    else
        meson setup "$dir" "$@" >/dev/null
    fi
}

cmd_build() {
    log "building ./build"
    # --prefix=/usr: the D-Bus policy and the polkit action are read only from /usr/share (and
    # /etc), never from /usr/local, so the installed helper works only with this prefix.
    configure build -Dwerror=true --prefix=/usr
    ninja -C build
}

# The sanitizer build of the unit tests (AddressSanitizer + UBSan), as CI runs it.
build_asan() {
    log "building ./build-asan (address,undefined sanitizers)"
    configure build-asan -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false
    ninja -C build-asan
}

# The fuzz targets, built with clang; the fuzz suite replays each seed corpus.
build_fuzz() {
    log "building ./build-fuzz (clang, libFuzzer)"
    if [ ! -f build-fuzz/build.ninja ]; then
        CXX=clang++ meson setup build-fuzz -Dfuzz=true -Dwerror=true >/dev/null
    fi
    # Only the fuzz targets: the rest of the tree is covered by the gcc builds (and clang 14
    # lacks some C++20 the unit tests use).
    # Regenerate build.ninja first (a meson.build may have changed): the target list below is
    # read from it, and a stale list silently leaves new fuzz targets unbuilt.
    ninja -C build-fuzz build.ninja >/dev/null
    local targets
    mapfile -t targets < <(ninja -C build-fuzz -t targets all 2>/dev/null |
        grep -o '^tests/fuzz/[a-z_]*_fuzz:' | tr -d : | sort -u)
    ninja -C build-fuzz "${targets[@]}"
}

cmd_test() {
    cmd_deps
    cmd_build
    build_asan
    local fuzz=0
    if command -v clang++ >/dev/null && [ -f tests/fuzz/meson.build ]; then
        build_fuzz
        fuzz=1
    fi
    local logs=() status=0
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

    # A log left by an earlier run must never be counted as this run's result.
    rm -f build/meson-logs/testlog.json build-asan/meson-logs/testlog.json \
        build-fuzz/meson-logs/testlog.json

    log "unit and integration suites (./build)"
    meson test -C build --print-errorlogs --no-rebuild || status=1
    logs+=("main=build/meson-logs/testlog.json")

    log "unit suites under sanitizers (./build-asan)"
    meson test -C build-asan --suite unit --print-errorlogs --no-rebuild || status=1
    logs+=("asan=build-asan/meson-logs/testlog.json")

    if [ "$fuzz" = 1 ]; then
        log "fuzz smoke (./build-fuzz)"
        meson test -C build-fuzz --suite fuzz --print-errorlogs --no-rebuild || status=1
        logs+=("fuzz=build-fuzz/meson-logs/testlog.json")
    fi

    echo
    python3 tests/summarize.py "${logs[@]}" || status=1
    return "$status"
}

cmd_demo() {
    cmd_deps
    cmd_build
    exec bash tests/lab/demo.sh "$@"
}

main() {
    local verb=${1:-help}
    [ $# -gt 0 ] && shift
    case "$verb" in
        deps) cmd_deps ;;
        build) cmd_deps && cmd_build ;;
        test) cmd_test ;;
        demo) cmd_demo "$@" ;;
        lab) exec bash tests/lab/lab.sh "$@" ;;
        help | -h | --help) sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' ;;
        *)
            echo "dev.sh: unknown command '$verb' (try: demo, test, deps, build, lab)" >&2
            return 2
            ;;
    esac
}

main "$@"

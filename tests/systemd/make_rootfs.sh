#!/usr/bin/env bash
# make_rootfs.sh: print the path of a cached Debian 12 root for the systemd tier, building it
# with debootstrap the first time (about a minute with a nearby mirror).
#
#   tests/systemd/make_rootfs.sh [CACHE_DIR]      default: /var/cache/sshuttle-test
#
# The cache key is a hash of the package list, so changing the list builds a new root instead
# of silently reusing a stale one. The archive is the one this machine's apt already uses: the
# mirror is read from /etc/apt/sources.list* at run time and never written into the repository.
# Exit 77 when debootstrap is missing or we are not root (the caller turns it into a skip).
set -euo pipefail

cache=${1:-/var/cache/sshuttle-test}
suite=bookworm

# What the container needs: systemd with logind and polkit (libpam-systemd, or debootstrap
# cannot satisfy polkitd's logind dependency), the firewall tools the helper drives, the
# libraries our binaries link, the ssh client, curl for the lab's target, and man-db and
# bash-completion to check that the installed pages and completion are found. The ssh server
# is the lab's, outside the container.
packages=(systemd systemd-sysv dbus libpam-systemd polkitd
    nftables iptables iproute2 procps util-linux libcap2-bin
    libsystemd0 libcap2 libnftables1 libspdlog1.10 libfmt9 libstdc++6
    openssh-client python3 curl man-db bash-completion)

die() { echo "make_rootfs: $*" >&2; exit "${2:-1}"; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, chroot)" 77
command -v debootstrap >/dev/null || die "debootstrap is not installed (./dev.sh deps)" 77

# The first deb URI of the main Debian archive from the machine's own apt sources: deb822
# (*.sources, "URIs:") or one-line ("deb URI suite ..."). Security archives are skipped.
find_mirror() {
    local f uri
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [ -r "$f" ] || continue
        case "$f" in
        *.sources) uri=$(awk 'tolower($1)=="uris:" {for (i=2;i<=NF;i++) print $i}' "$f") ;;
        *) uri=$(awk '$1=="deb" {for (i=2;i<=NF;i++) if ($i ~ /^[a-z]+:\/\//) {print $i; break}}' "$f") ;;
        esac
        uri=$(printf '%s\n' "$uri" | grep -v -- '-security' | head -n 1 || true)
        if [ -n "$uri" ]; then
            printf '%s\n' "$uri"
            return 0
        fi
    done
    return 1
}

key=$(printf '%s\n' "$suite" "${packages[@]}" | sha256sum | cut -c1-12)
root="$cache/$suite-$key"
if [ -f "$root/.sshuttle-rootfs-complete" ]; then
    printf '%s\n' "$root"
    exit 0
fi

mirror=$(find_mirror) || die "no Debian archive found in /etc/apt/sources.list*" 77
mkdir -p "$cache"
# Build beside the final path and rename, so an interrupted run never leaves a half root that
# looks complete.
tmp="$root.partial.$$"
trap 'rm -rf --one-file-system "$tmp"' EXIT
rm -rf --one-file-system "$tmp"
echo "make_rootfs: debootstrap $suite from $mirror into $root" >&2
include=$(IFS=,; echo "${packages[*]}")
if ! timeout 480 debootstrap --variant=minbase --include="$include" "$suite" "$tmp" "$mirror" \
    >"$cache/debootstrap-$key.log" 2>&1; then
    tail -n 20 "$cache/debootstrap-$key.log" >&2
    die "debootstrap failed (log: $cache/debootstrap-$key.log)"
fi
# Every container booted from this root makes its own machine id (the file is left empty).
rm -f "$tmp/etc/machine-id"
: >"$tmp/etc/machine-id"
touch "$tmp/.sshuttle-rootfs-complete"
mv "$tmp" "$root"
trap - EXIT
# Roots made for an older package list are never used again.
for old in "$cache/$suite"-*; do
    if [ "$old" != "$root" ] && [ -f "$old/.sshuttle-rootfs-complete" ]; then
        rm -rf --one-file-system "$old" "$cache/debootstrap-${old##*-}.log"
    fi
done
printf '%s\n' "$root"

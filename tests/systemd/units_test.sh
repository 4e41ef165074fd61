#!/usr/bin/env bash
# units_test.sh: the unit files, sysusers.d and tmpfiles.d entries, checked by systemd's own tools.
#
#   units_test.sh SYSTEM_UNIT HELPER_UNIT USER_UNIT MAN_DIR SYSUSERS TMPFILES
#
# Environment (from tests/meson.build): SUBST, a list of "INSTALLED_PATH=BUILD_PATH" words, so
# that the copies verified here run the binaries of this build tree instead of paths that are
# only there after `meson install`.
#
# 1. `systemd-analyze verify` must print nothing for every unit. It exits 0 even on an unknown
#    key, so any output is a failure. A deliberately broken copy must produce output, or the
#    check proves nothing on this machine.
# 2. `systemd-analyze security --offline=true` must rate the daemon and the helper at 3.0 or
#    less; the scores are printed.
# 3. The man pages render with groff without a warning.
# 4. As root: systemd-sysusers and systemd-tmpfiles apply our files to a scratch root and create
#    the user and the directories.
# Exit 77 (skip) when systemd-analyze is missing.
set -euo pipefail

system_unit=$1 helper_unit=$2 user_unit=$3 man_dir=$4 sysusers=$5 tmpfiles=$6
max_exposure=3.0

if ! command -v systemd-analyze >/dev/null; then
    echo "SKIP: systemd-analyze not installed (package systemd; ./dev.sh deps)"
    exit 77
fi

work=$(mktemp -d /tmp/sshuttle-units.XXXXXX)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# A copy of UNIT named NAME in DIR with installed paths replaced by build-tree paths. A binary
# this build does not produce yet is replaced by a stub, said out loud, so that the unit's own
# syntax is still checked.
stage_unit() {
    local unit=$1 dir=$2 name=$3 word installed built
    mkdir -p "$dir"
    cp "$unit" "$dir/$name"
    for word in ${SUBST:-}; do
        installed=${word%%=*} built=${word#*=}
        grep -qF "$installed" "$dir/$name" || continue
        if [ ! -x "$built" ]; then
            echo "note: $built is not built in this tree; $name is verified with a stub for $installed"
            built="$work/stub-$(basename "$installed")"
            printf '#!/bin/sh\nexit 0\n' >"$built"
            chmod +x "$built"
        fi
        sed -i "s#$installed#$built#g" "$dir/$name"
    done
}

# Man pages where man(1) finds them, so Documentation=man:... is checked too.
mkdir -p "$work/man/man1" "$work/man/man5" "$work/man/man8"
for page in "$man_dir"/*.[158]; do
    cp "$page" "$work/man/man${page##*.}/"
done
export MANPATH="$work/man"

# verify [--user] FILE...: run in the files' folder (systemd-analyze loads units beside them).
verify() {
    local mode=() out
    if [ "$1" = --user ]; then
        mode=(--user)
        shift
    fi
    out=$(cd "$(dirname "$1")" && systemd-analyze "${mode[@]}" verify "${@##*/}" 2>&1) || true
    printf '%s' "$out"
}

# The user manager wants a runtime and a config directory to expand %t and %E.
export XDG_RUNTIME_DIR="$work/runtime" XDG_CONFIG_HOME="$work/config" HOME="$work/home"
mkdir -m 0700 "$XDG_RUNTIME_DIR" "$XDG_CONFIG_HOME" "$HOME"

echo "== systemd-analyze verify"
stage_unit "$system_unit" "$work/sys" 'sshuttle@.service'
stage_unit "$system_unit" "$work/sys" 'sshuttle@lab.service'
stage_unit "$helper_unit" "$work/sys" 'sshuttle-helper.service'
stage_unit "$user_unit" "$work/user" 'sshuttle@.service'
stage_unit "$user_unit" "$work/user" 'sshuttle@work.service'

# The control: an unknown key and a bad value must be reported.
stage_unit "$system_unit" "$work/bad" 'sshuttle@.service'
printf '[Service]\nFooBar=1\nRestart=on-failur\n' >>"$work/bad/sshuttle@.service"
out=$(verify "$work/bad/sshuttle@.service")
if [ -z "$out" ]; then
    fail "systemd-analyze verify printed nothing for a unit with an unknown key: the check is blind here"
fi

for unit in "$work/sys/sshuttle@.service" "$work/sys/sshuttle@lab.service" \
    "$work/sys/sshuttle-helper.service"; do
    out=$(verify "$unit")
    if [ -n "$out" ]; then
        fail "systemd-analyze verify ${unit##*/}:"
        printf '%s\n' "$out" | sed 's/^/    /'
    else
        echo "ok: verify ${unit##*/} (system) printed nothing"
    fi
done
for unit in "$work/user/sshuttle@.service" "$work/user/sshuttle@work.service"; do
    out=$(verify --user "$unit")
    if [ -n "$out" ]; then
        fail "systemd-analyze --user verify ${unit##*/}:"
        printf '%s\n' "$out" | sed 's/^/    /'
    else
        echo "ok: verify ${unit##*/} (user) printed nothing"
    fi
done

echo "== systemd-analyze security --offline=true (exposure must be <= $max_exposure)"
for unit in "$work/sys/sshuttle@lab.service" "$work/sys/sshuttle-helper.service"; do
    out=$(cd "$work/sys" && systemd-analyze security --offline=true --no-pager "${unit##*/}" 2>&1) || true
    score=$(printf '%s\n' "$out" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\).*/\1/p')
    if [ -z "$score" ]; then
        fail "no exposure score for ${unit##*/}:"
        printf '%s\n' "$out" | tail -n 5 | sed 's/^/    /'
        continue
    fi
    echo "${unit##*/}: exposure $score"
    # What is still exposed, for the reader of the log.
    printf '%s\n' "$out" | grep '^✗' | sed 's/^/    /' || true
    if awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s > m) }'; then
        fail "${unit##*/} exposure $score is above $max_exposure"
    fi
done

echo "== sysusers.d and tmpfiles.d applied to a scratch root"
if [ "$(id -u)" -ne 0 ]; then
    echo "note: not root, sysusers/tmpfiles application skipped (chown needs root)"
else
    root="$work/root"
    mkdir -p "$root/etc"
    out=$(systemd-sysusers --root="$root" "$sysusers" 2>&1) || fail "systemd-sysusers: $out"
    if grep -q '^sshuttle:x:[0-9]*:[0-9]*:[^:]*:/var/lib/sshuttle:/usr/sbin/nologin$' "$root/etc/passwd"; then
        echo "ok: sysusers created the sshuttle user with home /var/lib/sshuttle"
    else
        fail "sysusers did not create the sshuttle user: $(cat "$root/etc/passwd" 2>/dev/null)"
    fi
    uid=$(awk -F: '$1 == "sshuttle" { print $3 }' "$root/etc/passwd")
    out=$(systemd-tmpfiles --root="$root" --create "$tmpfiles" 2>&1) || fail "systemd-tmpfiles: $out"
    for spec in "run/sshuttle 755" "var/lib/sshuttle 700" "etc/sshuttle 755"; do
        set -- $spec
        got=$(stat -c '%a %u' "$root/$1" 2>/dev/null || echo missing)
        want_uid=$uid
        [ "$1" = etc/sshuttle ] && want_uid=0
        if [ "$got" = "$2 $want_uid" ]; then
            echo "ok: tmpfiles created /$1 mode $2 owner uid $want_uid"
        else
            fail "tmpfiles: /$1 is '$got', expected '$2 $want_uid'"
        fi
    done
fi

echo "== man pages"
if command -v groff >/dev/null; then
    for page in "$man_dir"/*.[158]; do
        # -ww: every warning; -z: no output. Anything printed is a mistake in the page.
        out=$(groff -man -ww -z "$page" 2>&1)
        if [ -n "$out" ]; then
            fail "groff warns about ${page##*/}:"
            printf '%s\n' "$out" | sed 's/^/    /'
        else
            echo "ok: ${page##*/} renders without warnings"
        fi
    done
else
    echo "note: groff missing, man pages not rendered"
fi

if [ "$failures" -gt 0 ]; then
    echo "$failures check(s) failed"
    exit 1
fi
echo "all unit checks passed"

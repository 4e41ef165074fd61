#!/usr/bin/env bash
# nspawn_test.sh: sshuttle under a real systemd 252. Boots a debootstrapped Debian 12 with this
# build installed by `meson install` and checks, stage by stage, what an administrator and a
# desktop user would rely on.
#
#   nspawn_test.sh BUILD_DIR SOURCE_DIR
#
# The container (systemd-nspawn --register=no --keep-unit -b) shares only the network namespace
# of a lab client (tests/lab/lab.sh), so its traffic can reach the lab's ssh server and target and
# nothing else; without a lab it gets a private network with loopback only. The root file
# system is a cached debootstrap (make_rootfs.sh) under an overlay, so the cache stays clean.
#
# Each stage is a function that prints what it checks and returns 0 (pass), 1 (fail) or 77
# (skip, with the reason on its last line: a prerequisite that is not built yet). The test
# fails if any stage fails; it is skipped (77) only when the container cannot be built or
# booted here (not root, no debootstrap or systemd-nspawn).
#
# Knobs: SSHUTTLE_TEST_CACHE (default /var/cache/sshuttle-test) holds the root file system;
# SSHUTTLE_NSPAWN_HOLD=SECONDS keeps the container up that long before teardown, to look around.
# Every wait is bounded; the whole run takes about a minute with a cached root.
set -uo pipefail

build=$(readlink -f "${1:?usage: nspawn_test.sh BUILD_DIR SOURCE_DIR}")
src=$(readlink -f "${2:?usage: nspawn_test.sh BUILD_DIR SOURCE_DIR}")
here="$src/tests/systemd"
cache=${SSHUTTLE_TEST_CACHE:-/var/cache/sshuttle-test}

skip() { echo "SKIP: $*"; exit 77; }
log() { printf '[nspawn] %s\n' "$*"; }

[ "$(id -u)" -eq 0 ] || skip "needs root (debootstrap, overlay mounts, systemd-nspawn)"
for tool in systemd-nspawn nsenter meson tar; do
    command -v "$tool" >/dev/null || skip "$tool is not installed (./dev.sh deps)"
done

rootfs=$("$here/make_rootfs.sh" "$cache")
case $? in
0) ;;
77) skip "no Debian root: see make_rootfs.sh's message above" ;;
*) echo "FAIL: could not build the Debian root"; exit 1 ;;
esac

run=$(mktemp -d "$build/nspawn-run.XXXXXX")
machine="sshuttle-test-${run##*.}"
machine=${machine,,}
root="$run/root"
nspawn_pid='' leader='' lab_started=0 netns_opt=(--private-network)

# ---------------------------------------------------------------------------------------------
# Container plumbing

# ct CMD...: run CMD inside the container (all its namespaces), with a clean environment.
ct() {
    nsenter -t "$leader" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        LANG=C.UTF-8 "$@"
}

cleanup() {
    set +e
    if [ -n "${SSHUTTLE_NSPAWN_HOLD:-}" ] && [ -n "$leader" ]; then
        echo "holding the container for ${SSHUTTLE_NSPAWN_HOLD}s: nsenter -t $leader -a bash"
        sleep "$SSHUTTLE_NSPAWN_HOLD"
    fi
    if [ -n "$leader" ] && [ -d "/proc/$leader" ]; then
        timeout 20 nsenter -t "$leader" -a systemctl poweroff >/dev/null 2>&1
    fi
    if [ -n "$nspawn_pid" ]; then
        local i
        for ((i = 0; i < 150 && $(kill -0 "$nspawn_pid" 2>/dev/null && echo 1 || echo 0); i++)); do
            sleep 0.1
        done
        kill -TERM "$nspawn_pid" 2>/dev/null && sleep 2
        kill -KILL "$nspawn_pid" 2>/dev/null
        wait "$nspawn_pid" 2>/dev/null
    fi
    if mountpoint -q "$root"; then
        umount "$root" || umount -l "$root"
    fi
    if [ "$lab_started" = 1 ]; then
        lab_down >/dev/null 2>&1 || echo "warning: lab teardown failed ($LAB_DIR)"
    fi
    rm -rf --one-file-system "$run"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

setup_lab() {
    # shellcheck source=../lab/lab.sh
    source "$src/tests/lab/lab.sh"
    if lab_up >"$run/lab.log" 2>&1; then
        lab_started=1
        netns_opt=(--network-namespace-path="/run/netns/$LAB_NS_CLIENT")
        log "lab $LAB_ID up: the container joins $LAB_NS_CLIENT"
    else
        log "no lab (lab.sh up failed; see below): the container gets loopback only"
        tail -n 5 "$run/lab.log"
    fi
}

install_into_root() {
    mkdir -p "$run/upper" "$run/work" "$root" "$run/dest"
    if ! meson install -C "$build" --destdir "$run/dest" --no-rebuild >"$run/install.log" 2>&1; then
        tail -n 20 "$run/install.log"
        echo "FAIL: meson install --destdir failed"
        exit 1
    fi
    mount -t overlay "overlay-$machine" \
        -o "lowerdir=$rootfs,upperdir=$run/upper,workdir=$run/work" "$root" || exit 1
    # Merged onto the root's directories and symlinks (/lib -> usr/lib), as dpkg would.
    tar -C "$run/dest" -cf - . | tar -C "$root" -xf - --keep-directory-symlink || exit 1
}

boot() {
    # CAP_NET_ADMIN: nspawn keeps it only with --private-network, and the helper needs it. It
    # acts on the lab's (or the private) network namespace only.
    timeout 540 systemd-nspawn -D "$root" --register=no --keep-unit -M "$machine" \
        "${netns_opt[@]}" --capability=CAP_NET_ADMIN -b --console=read-only >"$run/console.log" 2>&1 </dev/null &
    nspawn_pid=$!
    # The container's PID 1: the systemd descendant of our nspawn (its child's child).
    local i p c
    for ((i = 0; i < 150; i++)); do
        [ -z "$leader" ] || break
        sleep 0.2
        for p in $(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null) \
            $(for c in $(cat /proc/"$nspawn_pid"/task/*/children 2>/dev/null); do
                cat /proc/"$c"/task/*/children 2>/dev/null; done); do
            if [ "$(cat "/proc/$p/comm" 2>/dev/null)" = systemd ]; then
                leader=$p
                break
            fi
        done
    done
    if [ -z "$leader" ]; then
        tail -n 20 "$run/console.log"
        echo "FAIL: the container did not start systemd within 30 s"
        exit 1
    fi
    # systemctl needs PID 1's private socket, which appears a moment after PID 1 does.
    for ((i = 0; i < 100; i++)); do
        ct test -S /run/systemd/private && break
        sleep 0.2
    done
    local state
    state=$(ct timeout 90 systemctl is-system-running --wait 2>&1)
    log "container $machine booted (PID 1 is host PID $leader): $state"
    if [ "$state" != running ]; then
        ct systemctl --failed --no-legend --no-pager
    fi
}

# ---------------------------------------------------------------------------------------------
# Stages

# What `meson install` put where the container's systemd, dbus, polkit, man and bash look.
stage_install_layout() {
    local bad=0 out
    if out=$(ct systemctl cat sshuttle@lab.service sshuttle-helper.service 2>&1); then
        echo "ok: systemctl cat finds sshuttle@lab.service and sshuttle-helper.service"
    else
        echo "systemctl cat: $out"; bad=1
    fi
    # The user manager's search path (no user manager runs here to ask with `systemctl --user`).
    local dir found=''
    for dir in $(ct systemd-analyze --global unit-paths); do
        [ -f "$root$dir/sshuttle@.service" ] && found=$dir
    done
    if [ -n "$found" ]; then
        echo "ok: the user unit is in $found, on the user manager's search path"
    else
        echo "the user unit is not on the user manager's search path:" \
            "$(cd "$run/dest" && find . -path '*user/sshuttle@.service')"
        bad=1
    fi
    # Captured first: grep -q would stop reading and fail the pipe under pipefail.
    out=$(ct systemd-sysusers --cat-config 2>&1)
    if grep -q '^u sshuttle ' <<<"$out"; then
        echo "ok: systemd-sysusers reads our sysusers.d entry"
    else
        echo "sysusers.d/sshuttle.conf is not where systemd-sysusers looks"; bad=1
    fi
    out=$(ct systemd-tmpfiles --cat-config 2>&1)
    if grep -q '^d /run/sshuttle ' <<<"$out"; then
        echo "ok: systemd-tmpfiles reads our tmpfiles.d entry"
    else
        echo "tmpfiles.d/sshuttle.conf is not where systemd-tmpfiles looks"; bad=1
    fi
    local page
    for page in "1 sshuttle" "8 sshuttled" "8 sshuttle-helper" "5 sshuttle.conf"; do
        # shellcheck disable=SC2086
        if out=$(ct man -w $page 2>&1); then
            echo "ok: man $page -> $out"
        else
            echo "man $page: not found ($out)"; bad=1
        fi
    done
    if out=$(ct bash -c 'source /usr/share/bash-completion/bash_completion &&
            __load_completion sshuttle && complete -p sshuttle' 2>&1) &&
        [[ $out == *"-F _sshuttle"* ]]; then
        echo "ok: bash-completion loads: $out"
    else
        echo "bash-completion does not find the sshuttle completion: $out"; bad=1
    fi
    # The bus reads policies from the includedirs of its system.conf, and activation files from
    # its standard service directories: ask the bus itself.
    ct busctl --system call org.freedesktop.DBus / org.freedesktop.DBus ReloadConfig >/dev/null 2>&1
    out=$(ct busctl --system list --activatable --no-legend 2>&1)
    if grep -q '^io\.sshuttle\.Helper1 ' <<<"$out"; then
        echo "ok: io.sshuttle.Helper1 is activatable on the system bus"
    else
        echo "io.sshuttle.Helper1 is not activatable (activation file not in a bus service directory)"; bad=1
    fi
    found=''
    for dir in $(ct sed -n 's#.*<includedir>\(.*\)</includedir>.*#\1#p' /usr/share/dbus-1/system.conf); do
        # A relative includedir is relative to system.conf's own folder.
        [[ $dir == /* ]] || dir="/usr/share/dbus-1/$dir"
        [ -f "$root$dir/io.sshuttle.Helper1.conf" ] && found="$dir"
    done
    if [ -n "$found" ]; then
        echo "ok: the bus policy is in $found, which system.conf includes"
    else
        echo "io.sshuttle.Helper1.conf is in none of the bus's includedirs:" \
            "$(cd "$run/dest" && find . -name 'io.sshuttle.Helper1.conf')"
        bad=1
    fi
    if out=$(ct timeout 30 pkaction --action-id io.sshuttle.tunnel 2>&1); then
        echo "ok: polkitd knows the action io.sshuttle.tunnel"
    else
        echo "polkit does not know io.sshuttle.tunnel ($out); installed:" \
            "$(cd "$run/dest" && find . -name '*.policy')"
        bad=1
    fi
    return "$bad"
}

# The units as installed (real paths, real man pages) pass systemd-analyze verify.
stage_verify_inside() {
    local out
    out=$(ct systemd-analyze verify sshuttle@lab.service sshuttle-helper.service 2>&1)
    if [ -n "$out" ]; then
        printf '%s\n' "$out"
        return 1
    fi
    echo "ok: systemd-analyze verify sshuttle@lab.service sshuttle-helper.service printed nothing"
}

# At boot, systemd-sysusers made the user and systemd-tmpfiles the directories.
stage_sysusers_tmpfiles() {
    local bad=0 pw st
    pw=$(ct getent passwd sshuttle)
    if [[ $pw == sshuttle:x:*:*:*:/var/lib/sshuttle:/usr/sbin/nologin ]]; then
        echo "ok: boot created the user: $pw"
    else
        echo "no sshuttle user after boot: '$pw'"; bad=1
    fi
    st=$(ct stat -c '%U:%G %a' /run/sshuttle 2>&1)
    if [ "$st" = "sshuttle:sshuttle 755" ]; then
        echo "ok: /run/sshuttle is $st"
    else
        echo "/run/sshuttle: '$st', expected 'sshuttle:sshuttle 755'"; bad=1
    fi
    return "$bad"
}

# D-Bus activation starts sshuttle-helper.service, with CAP_NET_ADMIN (+NET_RAW) and nothing else.
stage_helper_activation() {
    helper_installed || { echo "SKIP: the helper binary is not installed"; return 77; }
    local out pid caps
    if ! out=$(ct timeout 30 busctl --system call org.freedesktop.DBus / org.freedesktop.DBus \
        StartServiceByName su io.sshuttle.Helper1 0 2>&1); then
        echo "StartServiceByName io.sshuttle.Helper1: $out"
        ct journalctl -u sshuttle-helper.service --no-pager -n 30
        return 1
    fi
    if [ "$(ct systemctl is-active sshuttle-helper.service)" != active ]; then
        echo "the bus answered '$out' but sshuttle-helper.service is not active"
        ct journalctl -u sshuttle-helper.service --no-pager -n 30
        return 1
    fi
    pid=$(ct systemctl show -P MainPID sshuttle-helper.service)
    caps=$(ct sh -c "capsh --decode=\$(awk '/^CapEff/ {print \$2}' /proc/$pid/status)")
    echo "ok: activated through systemd as sshuttle-helper.service, PID $pid, $caps"
    case $caps in
    *=cap_net_admin,cap_net_raw | *=cap_net_admin) return 0 ;;
    *) echo "the helper's effective capabilities are not CAP_NET_ADMIN(+CAP_NET_RAW) only"; return 1 ;;
    esac
}

helper_installed() {
    local path
    path=$(ct systemctl show -P ExecStart sshuttle-helper.service | sed -n 's/.*path=\([^ ;]*\).*/\1/p')
    [ -n "$path" ] && [ -f "$root$path" ] && [ -x "$root$path" ]
}

# A user in an active local session (pam_systemd, seat0) is allowed the helper's action without
# a password; a user whose session has no seat is not.
stage_active_session_polkit() {
    local bad=0 out
    ct useradd -m -s /bin/bash alice 2>/dev/null
    ct useradd -m -s /bin/bash bob 2>/dev/null
    # pam_systemd takes the seat from XDG_SEAT, as from a display manager; `script` gives su
    # a terminal, so the session is a tty session on seat0.
    out=$(ct env XDG_SEAT=seat0 XDG_SESSION_CLASS=user XDG_SESSION_TYPE=tty timeout 30 \
        script -qec "su - alice -c 'loginctl show-session \$XDG_SESSION_ID -p Seat -p Remote -p Active -p Class | tr \"\\n\" \" \"; pkcheck --action-id io.sshuttle.tunnel --process \$\$ </dev/null && echo PKCHECK=yes || echo PKCHECK=no'" /dev/null 2>&1 | tr -d '\r')
    echo "alice, active session on seat0: $out"
    [[ $out == *Seat=seat0*Remote=no*Active=yes* ]] || { echo "alice's session is not local and active"; bad=1; }
    [[ $out == *PKCHECK=yes* ]] || { echo "polkit did not allow alice io.sshuttle.tunnel without a password"; bad=1; }
    out=$(ct timeout 30 script -qec "su - bob -c 'loginctl show-session \$XDG_SESSION_ID -p Seat | tr \"\\n\" \" \"; pkcheck --action-id io.sshuttle.tunnel --process \$\$ </dev/null && echo PKCHECK=yes || echo PKCHECK=no'" /dev/null 2>&1 | tr -d '\r')
    echo "bob, session without a seat: $out"
    [[ $out == *PKCHECK=no* ]] || { echo "polkit allowed bob, who is not in an active local session"; bad=1; }
    return "$bad"
}

# lab files for ssh inside the container: key, known_hosts and a config, for USER in DIR.
write_lab_ssh() {
    local user=$1 dir=$2
    mkdir -p "$root$dir"
    cp "$LAB_SSH_KEY" "$root$dir/id_ed25519"
    cp "$LAB_SSH_KNOWN_HOSTS" "$root$dir/known_hosts"
    sed -e "s#$LAB_SSH_KEY#$dir/id_ed25519#" -e "s#$LAB_SSH_KNOWN_HOSTS#$dir/known_hosts#" \
        "$LAB_SSH_CONFIG" >"$root$dir/config"
    ct chown -R "$user:" "$dir"
    ct chmod -R go-rwx "$dir"
}

# The rules of every sshuttle tunnel in the lab client namespace (nft tables, iptables chains).
sshuttle_rules() {
    ct nft list tables 2>/dev/null | grep -i sshuttle
    ct iptables-save 2>/dev/null | grep -i sshuttle
    ct ip6tables-save 2>/dev/null | grep -i sshuttle
}

# check_watchdog UNIT SECONDS: the unit's daemon sent WATCHDOG=1 within SECONDS (polled).
check_watchdog() {
    local unit=$1 seconds=$2 i ping=0
    for ((i = 0; i < seconds * 2; i++)); do
        ping=$(ct systemctl show -P WatchdogTimestampMonotonic "$unit")
        [ "${ping:-0}" != 0 ] && break
        sleep 0.5
    done
    if [ "${ping:-0}" != 0 ]; then
        echo "ok: the daemon pings the watchdog"
    else
        echo "no WATCHDOG=1 within $seconds s (WatchdogSec=30s)"
        return 1
    fi
}

daemon_ready_for_profiles() {
    local usage
    usage=$(ct sshuttled --help 2>&1)
    grep -q -- '--name' <<<"$usage"
}

# The daemon under the hardened system unit, with --no-firewall (no helper involved): Type=notify
# readiness after the remote agent answered, STATUS=, the watchdog, the control socket in
# /run/sshuttle, `sshuttle status` from root, and a clean stop.
stage_system_unit_core() {
    [ "$lab_started" = 1 ] || { echo "SKIP: no lab (lab.sh up failed)"; return 77; }
    daemon_ready_for_profiles || { echo "SKIP: sshuttled has no --name option yet (profiles)"; return 77; }
    local bad=0 out
    write_lab_ssh sshuttle /var/lib/sshuttle/.ssh
    printf '%s\n' "--remote=$LAB_SSH_USER@$LAB_SERVER_IP4" \
        "--ssh-cmd=ssh -F /var/lib/sshuttle/.ssh/config" --no-firewall >"$root/etc/sshuttle/core.conf"
    if ! out=$(ct timeout 100 systemctl start sshuttle@core.service 2>&1); then
        echo "systemctl start sshuttle@core: $out"
        ct journalctl -u sshuttle@core.service --no-pager -n 40
        return 1
    fi
    echo "ok: active after READY=1; status: $(ct systemctl show -P StatusText sshuttle@core.service)"
    out=$(ct ps -o user=,args= -p "$(ct systemctl show -P MainPID sshuttle@core.service)")
    [[ $out == "sshuttle "* ]] && echo "ok: runs as: $out" || { echo "not the sshuttle user: $out"; bad=1; }
    if ct test -S /run/sshuttle/core.sock; then
        echo "ok: control socket /run/sshuttle/core.sock"
    else
        echo "no control socket /run/sshuttle/core.sock"; bad=1
    fi
    if [ -x "$root/usr/bin/sshuttle" ] || [ -x "$root/usr/local/bin/sshuttle" ]; then
        out=$(ct timeout 10 sshuttle status core 2>&1) && echo "ok: sshuttle status core:" &&
            printf '%s\n' "$out" | sed 's/^/      /' || { echo "sshuttle status core failed: $out"; bad=1; }
    fi
    # WatchdogSec=30s: the daemon must ping within one interval, or systemd kills it.
    check_watchdog sshuttle@core.service 35 || bad=1
    [ "$(ct systemctl is-active sshuttle@core.service)" = active ] ||
        { echo "sshuttle@core is no longer active"; bad=1; }
    ct timeout 60 systemctl stop sshuttle@core.service
    out=$(ct systemctl show -P Result sshuttle@core.service)
    [ "$out" = success ] && echo "ok: stopped cleanly (Result=success)" ||
        { echo "stop: Result=$out"; bad=1; }
    [ "$bad" = 0 ] || ct journalctl -u sshuttle@core.service --no-pager -n 40
    return "$bad"
}

# systemctl start sshuttle@lab: active only once the rules exist; traffic flows; a killed helper
# is replaced and the rules re-applied; stop leaves no rule.
stage_system_tunnel() {
    [ "$lab_started" = 1 ] || { echo "SKIP: no lab (lab.sh up failed)"; return 77; }
    helper_installed || { echo "SKIP: the helper binary is not installed"; return 77; }
    daemon_ready_for_profiles || { echo "SKIP: sshuttled has no --name option yet (profiles)"; return 77; }
    local bad=0 url="http://$LAB_TARGET_IP4:$LAB_HTTP_PORT/" out
    if ct curl -s --max-time 3 "$url" >/dev/null; then
        echo "the target answers without a tunnel: the lab is not isolating"; return 1
    fi
    echo "ok: without the tunnel the target is unreachable"
    write_lab_ssh sshuttle /var/lib/sshuttle/.ssh
    printf '%s\n' "--remote=$LAB_SSH_USER@$LAB_SERVER_IP4" \
        "--ssh-cmd=ssh -F /var/lib/sshuttle/.ssh/config" "$LAB_TARGET_NET4" \
        >"$root/etc/sshuttle/lab.conf"
    if ! out=$(ct timeout 100 systemctl start sshuttle@lab.service 2>&1); then
        echo "systemctl start sshuttle@lab: $out"
        ct journalctl -u sshuttle@lab.service --no-pager -n 40
        return 1
    fi
    # Type=notify: start returned, so READY=1 was sent; the rules must already be there.
    out=$(sshuttle_rules)
    if [ -n "$out" ]; then
        echo "ok: active, and the rules exist: $(printf '%s' "$out" | tr '\n' ' ')"
    else
        echo "sshuttle@lab is active but no sshuttle rule exists (READY=1 before the rules)"; bad=1
    fi
    echo "status: $(ct systemctl show -P StatusText sshuttle@lab.service)"
    out=$(ct curl -s --max-time 10 "$url")
    if [[ $out == *"$LAB_HTTP_MARKER"* ]]; then
        echo "ok: the target answers through the tunnel"
    else
        echo "no answer from the target through the tunnel: '$out'"; bad=1
    fi
    # The helper dies (SIGKILL): the daemon notices its bus name go, bus activation starts a
    # fresh helper (which sweeps what the dead one left) and the daemon applies its rules again.
    local i hpid
    hpid=$(ct systemctl show -P MainPID sshuttle-helper.service)
    if [ "${hpid:-0}" -gt 0 ] && ct kill -KILL "$hpid"; then
        for ((i = 0; i < 50; i++)); do
            ct journalctl -u sshuttle@lab.service --no-pager -o cat | grep -q 'firewall rules re-applied' && break
            sleep 0.2
        done
        out=$(ct curl -s --max-time 10 "$url")
        if ct journalctl -u sshuttle@lab.service --no-pager -o cat | grep -q 'firewall rules re-applied' &&
            [ -n "$(sshuttle_rules)" ] && [[ $out == *"$LAB_HTTP_MARKER"* ]] &&
            [ "$(ct systemctl is-active sshuttle@lab.service)" = active ]; then
            echo "ok: helper killed (pid $hpid): a new one re-applied the rules, traffic flows"
        else
            echo "after killing the helper: no re-apply, no rules or no traffic ('$out')"; bad=1
        fi
    else
        echo "sshuttle-helper.service has no main process to kill (MainPID=$hpid)"; bad=1
    fi
    # The watchdog: WatchdogSec=30s, so a daemon that never pings is killed.
    check_watchdog sshuttle@lab.service 20 || bad=1
    ct timeout 60 systemctl stop sshuttle@lab.service
    out=$(sshuttle_rules)
    if [ -z "$out" ]; then
        echo "ok: systemctl stop left no sshuttle rule"
    else
        echo "rules left after stop: $out"; bad=1
    fi
    [ "$bad" = 0 ] || ct journalctl -u sshuttle@lab.service --no-pager -n 40
    return "$bad"
}

# An unprivileged user in an active session runs classic sshuttle: no password, traffic flows,
# Ctrl-C removes every rule.
stage_classic_user() {
    [ "$lab_started" = 1 ] || { echo "SKIP: no lab (lab.sh up failed)"; return 77; }
    [ -x "$root/usr/local/bin/sshuttle" ] || [ -x "$root/usr/bin/sshuttle" ] ||
        { echo "SKIP: the sshuttle CLI is not installed (client/ builds no program yet)"; return 77; }
    helper_installed || { echo "SKIP: the helper binary is not installed"; return 77; }
    local url="http://$LAB_TARGET_IP4:$LAB_HTTP_PORT/" out bad=0
    write_lab_ssh alice /home/alice/.ssh
    # Inside alice's seat0 session: start sshuttle with no terminal input (a password prompt
    # would fail), poll the target for at most 30 s, then interrupt it like Ctrl-C.
    cat >"$root/usr/local/bin/sshuttle-classic-probe" <<EOF
#!/bin/bash
sshuttle -r $LAB_SSH_USER@$LAB_SERVER_IP4 -e 'ssh -F /home/alice/.ssh/config' $LAB_TARGET_NET4 \\
    </dev/null >/tmp/sshuttle.log 2>&1 &
pid=\$!
for i in \$(seq 60); do
    body=\$(curl -s --max-time 2 $url) && break
    kill -0 \$pid 2>/dev/null || break
    sleep 0.5
done
echo "BODY=\$body"
kill -INT \$pid 2>/dev/null
for i in \$(seq 100); do kill -0 \$pid 2>/dev/null || break; sleep 0.1; done
kill -KILL \$pid 2>/dev/null
wait \$pid; echo "EXIT=\$?"
sed 's/^/  sshuttle: /' /tmp/sshuttle.log | tail -n 20
EOF
    chmod 755 "$root/usr/local/bin/sshuttle-classic-probe"
    out=$(ct env XDG_SEAT=seat0 XDG_SESSION_CLASS=user XDG_SESSION_TYPE=tty timeout 90 \
        script -qec "su - alice -c sshuttle-classic-probe" /dev/null 2>&1 | tr -d '\r')
    printf '%s\n' "$out"
    [[ $out == *"BODY="*"$LAB_HTTP_MARKER"* ]] || { echo "no traffic through alice's tunnel"; bad=1; }
    [[ $out == *EXIT=1* || $out == *EXIT=0* ]] || { echo "sshuttle did not stop cleanly on SIGINT"; bad=1; }
    out=$(sshuttle_rules)
    [ -z "$out" ] || { echo "rules left after Ctrl-C: $out"; bad=1; }
    [ "$bad" = 1 ] || echo "ok: alice's classic sshuttle carried traffic with no prompt and left no rule"
    return "$bad"
}

# ---------------------------------------------------------------------------------------------

setup_lab
install_into_root
boot

declare -A result
order=()
run_stage() {
    local name=$1 rc out
    echo
    echo "=== $name"
    out=$("stage_$name" 2>&1)
    rc=$?
    printf '%s\n' "$out" | sed 's/^/    /'
    case $rc in
    0) result[$name]=PASS ;;
    77) result[$name]="SKIP (${out##*SKIP: })" ;;
    *) result[$name]=FAIL ;;
    esac
    order+=("$name")
}

run_stage install_layout
run_stage verify_inside
run_stage sysusers_tmpfiles
run_stage helper_activation
run_stage active_session_polkit
run_stage system_unit_core
run_stage system_tunnel
run_stage classic_user

echo
echo "=== summary"
failed=0
for name in "${order[@]}"; do
    printf '  %-24s %s\n' "$name" "${result[$name]}"
    [ "${result[$name]}" = FAIL ] && failed=1
done
exit "$failed"

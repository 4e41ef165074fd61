#!/usr/bin/env bash
# sshuttle-helper for real: a private dbus-daemon with the project's bus policy, a real polkitd
# reading the project's .policy and the example fleet rules, the helper inside a network
# namespace this test creates, and clients nobody here wrote (busctl, gdbus, dbus-python) plus
# the daemon's own HelperClient (helper_client_probe).
#
#   helper_bus_test.sh HELPER PROBE SOURCE_ROOT [SSHUTTLED]
#
# Needs root (network namespaces, useradd, polkit's fixed directories); otherwise exits 77.
# Leaves nothing behind: every process it starts is stopped by PID, and the namespace, the
# throwaway users and group, and the polkit files it installed are removed in the EXIT trap.
set -euo pipefail

HELPER=$(realpath "${1:?helper binary}")
PROBE=$(realpath "${2:?helper_client_probe binary}")
SRC=${3:?source root}
SSHUTTLED=${4:+$(realpath "$4")}

skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root"
POLKITD=/usr/lib/polkit-1/polkitd
for tool in dbus-daemon dbus-send busctl gdbus nft ip useradd runuser setpriv stdbuf unshare; do
    command -v "$tool" >/dev/null || skip "$tool not installed"
done
[ -x "$POLKITD" ] || skip "polkitd not installed"
/usr/bin/python3 -c 'import dbus' 2>/dev/null || skip "python3-dbus not installed"

run_id="$$$RANDOM"
run_id=${run_id:0:9}
NS="shbt-$run_id"
TMP=$(mktemp -d /tmp/sshuttle-helper-bus.XXXXXX)
chmod 755 "$TMP"
ADDR="unix:path=$TMP/system_bus_socket"
GROUP="shbt-g$run_id"
USER_NO="shbt-n$run_id"
USER_YES="shbt-y$run_id"
USER_SUDO="shbt-s$run_id"
SUDOERS=/etc/sudoers.d/sshuttle-test-$run_id
RULES=/etc/polkit-1/rules.d/49-sshuttle-test-$run_id.rules
POLICY=/usr/share/polkit-1/actions/io.sshuttle.policy
installed_policy=0
PIDS=()
failures=0

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    ip netns del "$NS" 2>/dev/null || true
    userdel "$USER_NO" 2>/dev/null || true
    userdel "$USER_YES" 2>/dev/null || true
    userdel "$USER_SUDO" 2>/dev/null || true
    rm -f "$SUDOERS"
    groupdel "$GROUP" 2>/dev/null || true
    rm -f "$RULES"
    [ "$installed_policy" = 1 ] && rm -f "$POLICY"
    rm -rf "$TMP"
}
trap cleanup EXIT

pass() { echo "ok: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
check() { # check DESCRIPTION COMMAND...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}
# wait_for SECONDS COMMAND...: polls every 50 ms, bounded.
wait_for() {
    local tries=$(($1 * 20))
    shift
    local i
    for ((i = 0; i < tries; i++)); do
        "$@" && return 0
        sleep 0.05
    done
    return 1
}

export DBUS_SYSTEM_BUS_ADDRESS=$ADDR
ruleset() { ip netns exec "$NS" nft list ruleset; }
# (grep reads a captured copy: grep -q closing a pipe early would fail nft under pipefail)
has_table() { grep -q "table inet sshuttle_$1 " <<<"$(ruleset)"; }
no_table() { ! has_table "$1"; }
helper_on_bus() { busctl --address="$ADDR" status io.sshuttle.Helper1 >/dev/null 2>&1; }
helper_off_bus() { ! helper_on_bus; }
call() { # gdbus as root; prints "ok" or the D-Bus error name
    local out
    if out=$(gdbus call --system --dest io.sshuttle.Helper1 --object-path /io/sshuttle/Helper1 \
        --method "io.sshuttle.Helper1.$1" "${@:2}" 2>&1); then
        echo ok
    else
        sed -n 's/.*GDBus\.Error:\([A-Za-z0-9_.]*\):.*/\1/p' <<<"$out" | head -1
    fi
}

# ---- the private system bus, polkitd, the namespace, the users ----
cat >"$TMP/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>$ADDR</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
  </policy>
  <include>$SRC/helper/dbus/io.sshuttle.Helper1.conf</include>
  <include>/usr/share/dbus-1/system.d/org.freedesktop.PolicyKit1.conf</include>
</busconfig>
CONF
dbus-daemon --config-file="$TMP/bus.conf" --nofork --nopidfile 2>"$TMP/dbus.log" &
PIDS+=($!)
wait_for 5 test -S "$TMP/system_bus_socket" || { cat "$TMP/dbus.log"; fail "dbus-daemon"; exit 1; }

if [ -e "$POLICY" ]; then
    cmp -s "$POLICY" "$SRC/polkit/io.sshuttle.policy" || skip "a different $POLICY is installed"
else
    install -m 0644 "$SRC/polkit/io.sshuttle.policy" "$POLICY"
    installed_policy=1
fi
groupadd "$GROUP"
useradd -M -N -s /usr/sbin/nologin "$USER_NO"
useradd -M -N -s /usr/sbin/nologin -G "$GROUP" "$USER_YES"
# The shipped example, with the fleet group swapped for this run's throwaway group.
sed "s/\"sshuttle-users\"/\"$GROUP\"/g" "$SRC/polkit/50-sshuttle.rules.example" >"$RULES"
chmod 0644 "$RULES"

# polkitd starts as root and switches to its own user itself (as under bus activation).
env DBUS_SYSTEM_BUS_ADDRESS="$ADDR" "$POLKITD" --no-debug >"$TMP/polkitd.log" 2>&1 &
POLKIT_PID=$!
PIDS+=("$POLKIT_PID")
polkit_on_bus() { busctl --address="$ADDR" status org.freedesktop.PolicyKit1 >/dev/null 2>&1; }
wait_for 10 polkit_on_bus || { cat "$TMP/polkitd.log"; fail "polkitd did not start"; exit 1; }

ip netns add "$NS"
ip -n "$NS" link set lo up
printf '127.0.0.1 localhost\n' >"$TMP/hosts"

# The hosts file is a bind mount, as in the hardened unit (read-only /etc, /etc/hosts bound
# writable): rename cannot replace it, so the helper's in-place fallback is what runs here.
# Every exec keeps the PID, so $HELPER_PID is the helper itself.
IDLE_ARGS=(--idle-timeout=0)
start_helper() {
    ip netns exec "$NS" unshare -m --propagation private sh -c 'mount --bind "$1" "$1" && shift && exec "$@"' \
        sh "$TMP/hosts" env DBUS_SYSTEM_BUS_ADDRESS="$ADDR" SSHUTTLE_HELPER_HOSTS_FILE="$TMP/hosts" \
        "$HELPER" "${IDLE_ARGS[@]}" -v >>"$TMP/helper.log" 2>&1 &
    HELPER_PID=$!
    PIDS+=("$HELPER_PID")
    wait_for 10 helper_on_bus || { cat "$TMP/helper.log"; fail "helper did not take its name"; exit 1; }
}
start_helper

SPEC_CORP='{"name":"corp","method":"nft","includes":["10.201.9.0/24"],"tcp_port_v4":12300}'
# start_probe NAME [runuser -u USER --] ...: a long-lived caller; stdin is a fifo we hold open.
start_probe() {
    local name=$1 spec=$2
    shift 2
    mkfifo "$TMP/$name.in"
    "$@" "$PROBE" "${PROBE_ARGS[@]}" "$spec" <"$TMP/$name.in" >"$TMP/$name.out" 2>>"$TMP/$name.err" &
    eval "${name}_PID=$!"
    PIDS+=($!)
    exec {fd}>"$TMP/$name.in"
    eval "${name}_FD=$fd"
}
probe_said() { grep -q "$2" "$TMP/$1.out" 2>/dev/null; }

# ---- 1. busctl drives the interface ----
caps=$(busctl --address="$ADDR" call io.sshuttle.Helper1 /io/sshuttle/Helper1 io.sshuttle.Helper1 Capabilities)
check "busctl Capabilities reports nft available" grep -q '"nft" true' <<<"$caps"
check "busctl Capabilities reports pf unavailable with a reason" grep -Eq '"pf" false "[^"]+"' <<<"$caps"

ip netns exec "$NS" stdbuf -oL nft monitor tables >"$TMP/monitor.log" 2>&1 &
MONITOR_PID=$!
PIDS+=("$MONITOR_PID")
monitor_ready() {
    ip netns exec "$NS" nft add table inet monitor_probe && ip netns exec "$NS" nft delete table inet monitor_probe
    grep -q 'add table inet monitor_probe' "$TMP/monitor.log"
}
wait_for 5 monitor_ready || fail "nft monitor did not start"
check "busctl Apply returns success" busctl --address="$ADDR" call io.sshuttle.Helper1 \
    /io/sshuttle/Helper1 io.sshuttle.Helper1 Apply 'a{sv}' 4 name s bt method s nft \
    includes as 1 10.201.8.0/24 tcp_port_v4 q 12301
monitor_saw_add_and_delete() {
    grep -Eq '(add|create) table inet sshuttle_bt' "$TMP/monitor.log" &&
        grep -q 'delete table inet sshuttle_bt' "$TMP/monitor.log"
}
check "busctl's apply created the table and its exit removed it" wait_for 2 monitor_saw_add_and_delete
monitor_saw_add_and_delete || sed 's/^/  nft monitor: /' "$TMP/monitor.log"
check "no table is left from busctl" no_table bt

# ---- 2. a live caller: apply, nft shows it, SIGKILL the caller, gone within 1 s ----
PROBE_ARGS=(--system)
start_probe p1 "$SPEC_CORP"
check "probe applied corp over the system bus" wait_for 5 probe_said p1 '^applied corp'
check "nft list ruleset shows table inet sshuttle_corp" has_table corp
check "the table has the owner flag" bash -c "ip netns exec $NS nft list table inet sshuttle_corp | grep -q 'flags owner'"
kill -9 "$p1_PID"
check "SIGKILLed caller's table is gone within 1 s" wait_for 1 no_table corp

# ---- 3. SIGKILL the helper: its tables go with it, the caller notices ----
start_probe p2 "$SPEC_CORP"
check "probe applied corp again" wait_for 5 probe_said p2 '^applied corp'
kill -9 "$HELPER_PID"
check "SIGKILLed helper's table is gone within 1 s (owner flag)" wait_for 1 no_table corp
check "the caller noticed the helper is gone" wait_for 2 probe_said p2 '^lost:'
start_helper

# ---- 4. polkit: a user without the grant is denied, a user in the granted group is allowed ----
before=$(ruleset)
denied=$(runuser -u "$USER_NO" -- gdbus call --system --dest io.sshuttle.Helper1 \
    --object-path /io/sshuttle/Helper1 --method io.sshuttle.Helper1.Apply \
    "{'name': <'nogrant'>, 'includes': <['10.201.7.0/24']>, 'tcp_port_v4': <uint16 12302>}" 2>&1 || true)
check "a user without the grant gets PermissionDenied" grep -q 'io.sshuttle.Helper1.Error.PermissionDenied' <<<"$denied"
check "and nothing changed" test "$before" = "$(ruleset)"

PROBE_ARGS=(--system)
# setpriv execs (runuser would fork, and the SIGKILL below must hit the caller itself).
start_probe p3 '{"name":"granted","method":"nft","includes":["10.201.6.0/24"],"tcp_port_v4":12303}' \
    setpriv --reuid="$USER_YES" --regid="$(id -g "$USER_YES")" --init-groups
check "a user in the granted group may apply" wait_for 5 probe_said p3 '^applied granted'
check "the granted user's table exists" has_table granted
granted_list=$(runuser -u "$USER_YES" -- busctl --address="$ADDR" call io.sshuttle.Helper1 /io/sshuttle/Helper1 io.sshuttle.Helper1 List)
root_list=$(busctl --address="$ADDR" call io.sshuttle.Helper1 /io/sshuttle/Helper1 io.sshuttle.Helper1 List)
check "List shows a caller only its own tunnels (a new connection owns none)" \
    test "$granted_list" = 'as 0' -a "$root_list" = 'as 0'
remove_other=$(call Remove granted)
check "root cannot remove another caller's tunnel by name: NotFound" test "$remove_other" = io.sshuttle.Helper1.Error.NotFound
check "the granted user's table is still there" has_table granted

# ---- 5. malformed requests: each a named error, the ruleset byte-identical ----
before=$(ruleset)
S="'tcp_port_v4': <uint16 12304>"
declare -a BAD=(
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/x']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/33']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['300.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['fd00::/129']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8:70000']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8:90-80']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8']>, 'dns_servers': <['10.0.0.300']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8']>, 'server_addresses': <['host.example']>, $S}|InvalidArgument"
    "Apply|{'name': <'x; rm -rf /'>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'x\$(reboot)'>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'x } ; flush ruleset ; table ip y {'>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'x\" comment \"'>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'../../etc/passwd'>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'UPPER'>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <''>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'method': <'bogus'>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'method': <'nft'>, 'includes': <['10.0.0.0/8']>, 'udp': <true>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8']>, 'rules': <'flush ruleset'>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8']>, 'path': <'/etc/shadow'>, $S}|InvalidArgument"
    "Apply|{'name': <uint32 5>, 'includes': <['10.0.0.0/8']>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <'10.0.0.0/8'>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8']>, 'tcp_port_v4': <uint32 70000>}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8']>, 'tcp_port_v4': <'12300'>}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8']>, 'udp': <'yes'>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['10.0.0.0/8']>, 'uid': <int32 -1>, $S}|InvalidArgument"
    "Apply|{'name': <'m1'>}|InvalidArgument"
    "Apply|@a{sv} {}|InvalidArgument"
    "Apply|{'name': <'m1'>, 'includes': <['$(printf '1%.0s' $(seq 300))']>, $S}|TooLarge"
    "Remove|'x;reboot'|InvalidArgument"
    "Remove|'../corp'|InvalidArgument"
    "GetTransparentSockets|'a b'|InvalidArgument"
    "SetHosts|[('db corp', '10.1.2.3')]|InvalidArgument"
    "SetHosts|[('evil\n0.0.0.0 bank', '10.1.2.3')]|InvalidArgument"
    "SetHosts|[('db', '10.1.2.999')]|InvalidArgument"
    "SetHosts|[('db', '/etc/passwd')]|InvalidArgument"
    "FlushRuleset||org.freedesktop.DBus.Error.AccessDenied"
)
n=0
for row in "${BAD[@]}"; do
    IFS='|' read -r method arg want <<<"$row"
    [[ $want == *.* ]] || want="io.sshuttle.Helper1.Error.$want"
    if [ -n "$arg" ]; then got=$(call "$method" "$arg"); else got=$(call "$method"); fi
    n=$((n + 1))
    if [ "$got" = "$want" ]; then pass "malformed #$n $method: $want"; else fail "malformed #$n $method $arg: want $want, got '$got'"; fi
done
# Wrong argument types for the whole call, through dbus-send (gdbus checks them client-side).
send_raw() { # send_raw METHOD ARG...: prints the D-Bus error name or "ok"
    local out
    if out=$(dbus-send --system --print-reply --dest=io.sshuttle.Helper1 /io/sshuttle/Helper1 \
        "io.sshuttle.Helper1.$1" "${@:2}" 2>&1); then echo ok; else
        sed -n 's/^Error \([A-Za-z0-9_.]*\):.*/\1/p' <<<"$out" | head -1
    fi
}
for row in "Apply string:corp" "Apply uint32:7" "Remove uint32:7" "Remove" "SetHosts string:db" \
    "GetTransparentSockets int32:1"; do
    read -r -a words <<<"$row"
    n=$((n + 1))
    got=$(send_raw "${words[@]}")
    if [ "$got" = org.freedesktop.DBus.Error.InvalidArgs ]; then pass "malformed #$n $row: InvalidArgs"
    else fail "malformed #$n $row: want org.freedesktop.DBus.Error.InvalidArgs, got '$got'"; fi
done
# A 100,000-entry list, through dbus-python (too big for a command line).
big=$(/usr/bin/python3 - <<'PY'
import dbus
bus = dbus.SystemBus()
h = dbus.Interface(bus.get_object("io.sshuttle.Helper1", "/io/sshuttle/Helper1"), "io.sshuttle.Helper1")
spec = {"name": dbus.String("big"), "tcp_port_v4": dbus.UInt16(12305),
        "includes": dbus.Array(["10.%d.%d.0/24" % (i // 256 % 256, i % 256) for i in range(100000)], signature="s")}
try:
    h.Apply(dbus.Dictionary(spec, signature="sv"))
    print("ok")
except dbus.exceptions.DBusException as e:
    print(e.get_dbus_name())
PY
)
n=$((n + 1))
check "malformed #$n: a 100,000-entry list is TooLarge" test "$big" = io.sshuttle.Helper1.Error.TooLarge
check "$n malformed requests left the ruleset byte-identical" test "$before" = "$(ruleset)"
check "and the hosts file untouched" test "$(cat "$TMP/hosts")" = "127.0.0.1 localhost"

# ---- 6. hosts lines belong to a live caller and go with it ----
/usr/bin/python3 - "$TMP/hosts.ready" <<'PY' >"$TMP/hosts_client.out" 2>&1 &
import dbus, sys, time
bus = dbus.SystemBus()
h = dbus.Interface(bus.get_object("io.sshuttle.Helper1", "/io/sshuttle/Helper1"), "io.sshuttle.Helper1")
h.SetHosts(dbus.Array([("db.corp", "10.201.9.5")], signature="(ss)"))
open(sys.argv[1], "w").close()
time.sleep(60)
PY
HOSTS_PID=$!
PIDS+=("$HOSTS_PID")
check "SetHosts wrote the caller's line" wait_for 5 grep -q '^10.201.9.5 db.corp$' "$TMP/hosts"
kill -9 "$HOSTS_PID"
hosts_clean() { test "$(cat "$TMP/hosts")" = "127.0.0.1 localhost"; }
check "the SIGKILLed caller's hosts lines are gone within 1 s" wait_for 1 hosts_clean

# ---- 7. tproxy: the helper mints IP_TRANSPARENT listeners and passes them as fds ----
tp=$(/usr/bin/python3 - <<'PY' 2>&1
import dbus, socket
bus = dbus.SystemBus()
h = dbus.Interface(bus.get_object("io.sshuttle.Helper1", "/io/sshuttle/Helper1"), "io.sshuttle.Helper1")
spec = {"name": dbus.String("tp"), "method": dbus.String("tproxy"), "udp": dbus.Boolean(True),
        "includes": dbus.Array(["10.201.3.0/24"], signature="s"), "tcp_port_v4": dbus.UInt16(12310)}
h.Apply(dbus.Dictionary(spec, signature="sv"))
out = []
for family, proto, fd in h.GetTransparentSockets("tp"):
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM
    s = socket.socket(socket.AF_INET, kind, fileno=fd.take())
    transparent = s.getsockopt(socket.SOL_IP, 19)  # IP_TRANSPARENT
    out.append("%s/%s port=%d transparent=%d" % (family, proto, s.getsockname()[1], transparent))
print(" ".join(sorted(out)))
PY
)
check "GetTransparentSockets passed a transparent TCP listener on the tunnel's port" \
    grep -q 'ipv4/tcp port=12310 transparent=1' <<<"$tp"
check "and a transparent UDP socket (udp=true)" grep -q 'ipv4/udp port=12310 transparent=1' <<<"$tp" ||
    echo "  got: $tp"
check "the tproxy tunnel went with its caller" wait_for 1 no_table tp

# ---- 8. --stdio: the daemon's client starts the helper on a socketpair ----
kill -9 "$p3_PID"
check "the granted user's table went with it" wait_for 1 no_table granted
PROBE_ARGS=(--spawn "$HELPER")
start_probe p4 '{"name":"stdio","method":"nft","includes":["10.201.5.0/24"],"tcp_port_v4":12306}' \
    ip netns exec "$NS" env -u DBUS_SYSTEM_BUS_ADDRESS
check "the stdio helper applied the rules" wait_for 5 probe_said p4 '^applied stdio'
check "nft shows the stdio tunnel's table" has_table stdio
eval "exec ${p4_FD}>&-"  # the daemon closes its end
check "closing the socketpair removed the rules" wait_for 2 no_table stdio
check "and the client saw the helper exit" wait_for 2 probe_said p4 '^closed'

start_probe p5 '{"name":"stdio2","method":"nft","includes":["10.201.4.0/24"],"tcp_port_v4":12307}' \
    ip netns exec "$NS" env -u DBUS_SYSTEM_BUS_ADDRESS
check "a second stdio helper applied" wait_for 5 probe_said p5 '^applied stdio2'
kill -9 "$p5_PID"
check "SIGKILLing the daemon side removes the stdio helper's rules within 1 s" wait_for 1 no_table stdio2

# ---- 9. --stdio through sudo: an unprivileged daemon's client starts the helper as root ----
if command -v sudo >/dev/null; then
    useradd -M -N -s /usr/sbin/nologin "$USER_SUDO"
    # Exactly the helper in --stdio mode, nothing else, for this run's throwaway user.
    printf '%s ALL=(root) NOPASSWD: %s --stdio\n' "$USER_SUDO" "$HELPER" >"$SUDOERS"
    chmod 0440 "$SUDOERS"
    start_probe p6 '{"name":"sudo","method":"nft","includes":["10.201.2.0/24"],"tcp_port_v4":12308}' \
        ip netns exec "$NS" env -u DBUS_SYSTEM_BUS_ADDRESS \
        setpriv --reuid="$USER_SUDO" --regid="$(id -g "$USER_SUDO")" --init-groups
    check "an unprivileged client started the helper through sudo and applied" \
        wait_for 10 probe_said p6 '^applied sudo'
    check "nft shows the sudo-started helper's table" has_table sudo
    eval "exec ${p6_FD}>&-"
    check "closing the connection removed it" wait_for 3 no_table sudo
else
    echo "note: sudo not installed; the sudo path of --stdio was not exercised"
fi

# ---- 10. polkit gone: root still passes (uid shortcut), anyone else is denied ----
kill -9 "$POLKIT_PID"
wait_for 2 bash -c "! busctl --address='$ADDR' status org.freedesktop.PolicyKit1 >/dev/null 2>&1" ||
    fail "polkitd did not go away"
check "root applies without polkit" busctl --address="$ADDR" call io.sshuttle.Helper1 \
    /io/sshuttle/Helper1 io.sshuttle.Helper1 Apply 'a{sv}' 3 name s nopk includes as 1 \
    10.201.1.0/24 tcp_port_v4 q 12309
denied=$(runuser -u "$USER_YES" -- gdbus call --system --dest io.sshuttle.Helper1 \
    --object-path /io/sshuttle/Helper1 --method io.sshuttle.Helper1.Apply \
    "{'name': <'nopk2'>, 'includes': <['10.201.1.0/24']>, 'tcp_port_v4': <uint16 12309>}" 2>&1 || true)
check "with polkit unreachable the granted user is denied" \
    grep -q 'io.sshuttle.Helper1.Error.PermissionDenied' <<<"$denied"

# ---- 10b. sshuttled uses the service only from the helper's network namespace ----
# The bus socket is a file: a daemon in another namespace reaches it too, but rules the helper
# installs in its own namespace would never see that daemon's traffic. `-e false` stands in for
# ssh: nothing leaves the machine, and no rule is applied before the remote side answers.
if [ -n "$SSHUTTLED" ]; then
    rc=0
    out=$(SSHUTTLE_HELPER=system timeout 20 "$SSHUTTLED" -r 127.0.0.1 -e false --name shbt-other \
        10.99.0.0/16 2>&1) || rc=$?
    check "sshuttled outside the helper's namespace refuses the service (exit 99)" \
        bash -c "[ $rc = 99 ] && grep -q 'another network namespace' <<<\"\$1\"" _ "$out"
    check "and installed nothing in either namespace" \
        bash -c "! nft list tables | grep -q sshuttle_shbt-other && ! ip netns exec $NS nft list tables | grep -q shbt-other"
    out=$(ip netns exec "$NS" env SSHUTTLE_HELPER=system timeout 20 "$SSHUTTLED" -r 127.0.0.1 -e false \
        --name shbt-same 10.99.0.0/16 2>&1 || true)
    check "sshuttled in the helper's namespace uses the service" \
        grep -q 'firewall rules through the sshuttle-helper service' <<<"$out"
else
    echo "skip: sshuttled not given: the daemon's namespace check is not run"
fi

# ---- 11. idle exit: only when owning nothing ----
kill -9 "$HELPER_PID"
wait_for 2 helper_off_bus || fail "helper did not leave the bus"
IDLE_ARGS=(--idle-timeout=1)
start_helper
PROBE_ARGS=(--system)
start_probe p7 "$SPEC_CORP"
check "a caller owns a tunnel on the idle-timeout helper" wait_for 5 probe_said p7 '^applied corp'
sleep 2.5  # more than the idle timeout: the helper must still be there, it owns something
check "the helper does not exit while it owns something" helper_on_bus
kill -9 "$p7_PID"
check "the caller's table went" wait_for 1 no_table corp
check "then the idle helper gives up its name and exits" wait_for 5 helper_off_bus
check "the helper process is gone" wait_for 2 bash -c "! kill -0 $HELPER_PID 2>/dev/null"

echo
if [ "$failures" -ne 0 ]; then
    echo "helper_bus_test: $failures check(s) failed; logs:"
    tail -n 30 "$TMP/helper.log"
    exit 1
fi
echo "helper_bus_test: all checks passed"

#!/usr/bin/env bash
# The helper's real firewall backends against the kernel, inside a network namespace this script
# creates (and deletes on exit). Nothing in the calling namespace's firewall is touched; the
# script checks that at the end.
#
#   helper_rules_test.sh PATH/TO/rules_tool
#
# Proves: apply gives exactly the golden ruleset (nft list ruleset; iptables-save for nat; ip rule
# and the route table for tproxy); remove returns to a byte-identical state; a SIGKILLed owner's
# table is gone within 1 s; a failing apply changes nothing; sweep removes what a dead owner left.
# UPDATE_GOLDEN=1 rewrites helper/testdata/integration/*.golden instead of comparing.
# Exit 77 (skipped) when not root or a tool is missing.
set -uo pipefail

if [[ $(id -u) != 0 ]]; then
    echo "SKIP: needs root (network namespaces, nftables)"
    exit 77
fi
for tool in ip nft iptables iptables-save ip6tables ip6tables-save sha256sum; do
    if ! command -v "$tool" >/dev/null; then
        echo "SKIP: $tool not found"
        exit 77
    fi
done
TOOL=${1:?usage: helper_rules_test.sh PATH/TO/rules_tool}
[[ -x $TOOL ]] || { echo "FAIL: $TOOL is not executable"; exit 1; }
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
GOLDEN=$ROOT/helper/testdata/integration

NS=sshuttle-rules-$$-$RANDOM
TMP=$(mktemp -d)
TOOL_PID=
FAILURES=0

root_state() { { nft list ruleset; ip rule; ip -6 rule 2>/dev/null; } | sha256sum; }
ROOT_BEFORE=$(root_state)

stop_tool() {
    if [[ -n $TOOL_PID ]]; then
        exec 3>&- 4<&-
        kill -KILL "$TOOL_PID" 2>/dev/null
        { wait "$TOOL_PID"; } 2>/dev/null
        TOOL_PID=
    fi
}
cleanup() {
    stop_tool
    ip netns del "$NS" 2>/dev/null
    rm -rf "$TMP"
}
trap cleanup EXIT

fail() { echo "FAIL: $*"; FAILURES=$((FAILURES + 1)); }
pass() { echo "ok: $*"; }
in_ns() { ip netns exec "$NS" "$@"; }

# Everything the backends can change in the namespace, in one text.
ns_state() {
    echo "## nft"; in_ns nft list ruleset
    echo "## iptables"; in_ns iptables-save -t nat | grep -v '^#'
    echo "## ip6tables"; in_ns ip6tables-save -t nat | grep -v '^#'
    echo "## rules"; in_ns ip rule; in_ns ip -6 rule
    echo "## table 21320"
    in_ns ip route show table 21320 2>/dev/null; in_ns ip -6 route show table 21320 2>/dev/null
}

# start_tool: a rules_tool session in the namespace on fds 3 (commands) and 4 (answers).
start_tool() {
    mkfifo "$TMP/in" "$TMP/out"
    ip netns exec "$NS" "$TOOL" session <"$TMP/in" >"$TMP/out" 2>"$TMP/tool.err" &
    TOOL_PID=$!
    exec 3>"$TMP/in" 4<"$TMP/out"
    rm -f "$TMP/in" "$TMP/out"
}
# ask CMD: sends one command, sets REPLY to the one-line answer.
ask() {
    echo "$1" >&3
    if ! read -r -t 20 REPLY <&4; then
        REPLY="(no answer)"
    fi
}
expect_ok() {
    ask "$1"
    [[ $REPLY == ok ]] || fail "$2: expected ok, got: $REPLY"
}

compare_golden() {  # name, actual-file
    local golden=$GOLDEN/$1.golden
    if [[ ${UPDATE_GOLDEN:-} == 1 ]]; then
        mkdir -p "$GOLDEN"
        cp "$2" "$golden"
        echo "rewrote $golden"
    fi
    if diff -u "$golden" "$2"; then pass "$1 matches its golden file"; else fail "$1 differs from $golden"; fi
}

SPEC_NFT='{"name":"corp","method":"nft","includes":["10.0.0.0/8","192.168.50.0/24:80-90","fd00::/8"],"excludes":["10.1.0.0/16","127.0.0.1/32","::1/128"],"dns_servers":["192.168.1.1","2001:db8::53"],"server_addresses":["192.0.2.7","2001:db8::7"],"tcp_port_v4":12300,"tcp_port_v6":12300,"dns_port_v4":12299,"dns_port_v6":12299}'
SPEC_NAT=${SPEC_NFT/\"corp\",\"method\":\"nft\"/\"corp\",\"method\":\"nat\"}
SPEC_TPROXY='{"name":"tp","method":"tproxy","udp":true,"includes":["10.0.0.0/8","192.168.50.0/24:80-90","fd00::/8"],"excludes":["10.1.0.0/16"],"dns_servers":["192.168.1.1"],"server_addresses":["192.0.2.7"],"tcp_port_v4":12300,"tcp_port_v6":12300,"dns_port_v4":12299}'
SPEC_LONG='{"name":"a-rather-long-tunnel-name-012345","method":"nat","includes":["10.0.0.0/8"],"tcp_port_v4":12300}'

ip netns add "$NS" || { echo "FAIL: cannot create namespace $NS"; exit 1; }
in_ns ip link set lo up
# iptables-nft creates nat's base chains on first use and leaves them (they are iptables', not
# ours): create OUTPUT and PREROUTING up front so "before" and "after" compare byte for byte.
for ipt in iptables ip6tables; do
    for chain in OUTPUT PREROUTING; do
        in_ns "$ipt" -w -t nat -I "$chain" -j RETURN && in_ns "$ipt" -w -t nat -D "$chain" -j RETURN
    done
done
ns_state >"$TMP/initial"

start_tool

# ---- nft ------------------------------------------------------------------------------------
expect_ok "apply $SPEC_NFT" "nft apply"
in_ns nft list ruleset >"$TMP/nft_typical"
compare_golden nft_typical_ruleset "$TMP/nft_typical"
ask "installed"
[[ $REPLY == "names corp" ]] && pass "installed lists corp" || fail "installed: $REPLY"
ask "apply $SPEC_NFT"
[[ $REPLY == error\ Backend:*already\ installed* ]] && pass "a second apply of the same name is refused" || fail "duplicate apply: $REPLY"
expect_ok "remove corp" "nft remove"
ns_state >"$TMP/after_nft"
cmp -s "$TMP/initial" "$TMP/after_nft" && pass "nft remove restores the initial state byte for byte" || { fail "state after nft remove differs"; diff -u "$TMP/initial" "$TMP/after_nft"; }
expect_ok "remove corp" "removing an absent tunnel"

# ---- nat ------------------------------------------------------------------------------------
expect_ok "apply $SPEC_NAT" "nat apply"
{ in_ns iptables-save -t nat | grep -v '^#'; in_ns ip6tables-save -t nat | grep -v '^#'; } >"$TMP/nat_typical"
compare_golden nat_typical_save "$TMP/nat_typical"
expect_ok "apply $SPEC_LONG" "nat apply with a 32-character name"
grep -q '^:sshuttle_a-rather-l-[0-9a-f]\{8\} ' <<<"$(in_ns iptables-save -t nat)" && pass "a long name maps to a 28-character chain" || fail "no hashed chain for the long name"
expect_ok "remove corp" "nat remove"
expect_ok "remove a-rather-long-tunnel-name-012345" "nat remove (long name)"
ns_state >"$TMP/after_nat"
cmp -s "$TMP/initial" "$TMP/after_nat" && pass "nat remove restores the initial state byte for byte" || { fail "state after nat remove differs"; diff -u "$TMP/initial" "$TMP/after_nat"; }

# ---- tproxy ---------------------------------------------------------------------------------
expect_ok "apply $SPEC_TPROXY" "tproxy apply"
in_ns nft list ruleset >"$TMP/tproxy_typical"
compare_golden tproxy_typical_ruleset "$TMP/tproxy_typical"
{ in_ns ip rule; in_ns ip -6 rule; in_ns ip route show table 21320; in_ns ip -6 route show table 21320; } >"$TMP/tproxy_routes"
compare_golden tproxy_routes "$TMP/tproxy_routes"
# End to end through the kernel: a local client connects to 10.2.3.4:80 and sends a datagram to
# 10.2.3.4:7 (the route points into lo; nothing leaves the namespace); the transparent listeners
# from tproxy_socket receive both with their original destinations, and their answers come back.
in_ns ip addr add 192.0.2.1/32 dev lo
in_ns ip route add 10.0.0.0/8 dev lo src 192.0.2.1
in_ns "$TOOL" tproxy-serve 0.0.0.0 12300 >"$TMP/serve" 2>&1 &
SERVE_PID=$!
for _ in $(seq 1 50); do [[ -s $TMP/serve ]] && break; sleep 0.1; done
tcp_reply=$(in_ns timeout 5 bash -c 'exec 5<>/dev/tcp/10.2.3.4/80 && read -r -t 3 line <&5 && echo "$line"' 2>&1)
udp_reply=$(in_ns timeout 5 bash -c 'exec 6<>/dev/udp/10.2.3.4/7 && echo ping >&6 && read -r -N 1 -t 3 line <&6 && echo "$line"' 2>&1)
wait "$SERVE_PID"; serve_rc=$?
[[ $tcp_reply == hello ]] && pass "TCP to 10.2.3.4:80 reached the transparent listener and got its answer" || fail "TCP through tproxy: '$tcp_reply'"
# bash reads a datagram socket one byte per recv, so only the first byte of "pong" arrives.
[[ $udp_reply == p ]] && pass "UDP to 10.2.3.4:7 was answered from 10.2.3.4:7 by the reply socket" || fail "UDP through tproxy: '$udp_reply'"
grep -qx 'tcp 10.2.3.4:80' "$TMP/serve" && grep -qx 'udp 10.2.3.4:7' "$TMP/serve" && [[ $serve_rc == 0 ]] \
    && pass "the listeners saw the original destinations" || { fail "tproxy-serve output:"; cat "$TMP/serve"; }
in_ns ip route del 10.0.0.0/8 dev lo
in_ns ip addr del 192.0.2.1/32 dev lo
expect_ok "remove tp" "tproxy remove"
ns_state >"$TMP/after_tproxy"
cmp -s "$TMP/initial" "$TMP/after_tproxy" && pass "tproxy remove restores rules, routes and ruleset byte for byte" || { fail "state after tproxy remove differs"; diff -u "$TMP/initial" "$TMP/after_tproxy"; }

# ---- a failing apply changes nothing --------------------------------------------------------
in_ns nft add table inet sshuttle_corp   # someone else's table with our name
ns_state >"$TMP/conflict_before"
ask "apply $SPEC_NFT"
[[ $REPLY == error\ Backend:*File\ exists* ]] && pass "apply over an existing table fails: ${REPLY:0:80}" || fail "conflicting nft apply: $REPLY"
ask "apply ${SPEC_TPROXY/\"tp\"/\"corp\"}"
[[ $REPLY == error\ Backend:* ]] && pass "tproxy apply over an existing table fails" || fail "conflicting tproxy apply: $REPLY"
ask 'apply {"name":"x} flush ruleset","includes":["10.0.0.0/8"],"tcp_port_v4":1}'
[[ $REPLY == error\ InvalidArgument:\ name:* ]] && pass "an injection in the name is refused: $REPLY" || fail "injection: $REPLY"
ask 'apply {"name":"ok","includes":["10.0.0.0/33"],"tcp_port_v4":1}'
[[ $REPLY == "error InvalidArgument: includes[0]: prefix /33 is longer than 32" ]] && pass "/33 is refused" || fail "/33: $REPLY"
ns_state >"$TMP/conflict_after"
cmp -s "$TMP/conflict_before" "$TMP/conflict_after" && pass "failed applies left everything byte-identical (incl. tproxy routes)" || { fail "a failed apply changed the state"; diff -u "$TMP/conflict_before" "$TMP/conflict_after"; }
in_ns iptables -w -t nat -N sshuttle_corp
ask "apply $SPEC_NAT"
[[ $REPLY == error\ Backend:*already\ exists* ]] && pass "nat apply over an existing chain fails" || fail "conflicting nat apply: $REPLY"
in_ns iptables -w -t nat -X sshuttle_corp
ns_state >"$TMP/conflict_after2"
cmp -s "$TMP/conflict_before" "$TMP/conflict_after2" && pass "failed nat apply changed nothing" || { fail "failed nat apply changed the state"; diff -u "$TMP/conflict_before" "$TMP/conflict_after2"; }
# The foreign table is a leftover as far as sweep is concerned (no owner): sweep removes it.
ask "sweep"
[[ $REPLY == "names corp" ]] && pass "sweep removes an unowned sshuttle_ table" || fail "sweep: $REPLY"
stop_tool

# ---- SIGKILL: owned tables vanish with their owner; sweep cleans what has no owner ------------
start_tool
expect_ok "apply $SPEC_NFT" "apply before SIGKILL"
expect_ok "apply $SPEC_TPROXY" "tproxy apply before SIGKILL"
expect_ok "apply ${SPEC_NAT/\"corp\"/\"natty\"}" "nat apply before SIGKILL"
grep -q 'sshuttle_corp' <<<"$(in_ns nft list tables)" || fail "table missing before SIGKILL"
kill -KILL "$TOOL_PID"
killed_at=$(date +%s%N)
gone=no
for _ in $(seq 1 20); do
    tables=$(in_ns nft list tables) || { fail "nft list tables failed"; break; }
    if ! grep -q 'inet sshuttle_' <<<"$tables"; then gone=yes; break; fi
    sleep 0.05
done
elapsed_ms=$(( ($(date +%s%N) - killed_at) / 1000000 ))
[[ $gone == yes && $elapsed_ms -le 1000 ]] && pass "owned tables gone ${elapsed_ms} ms after SIGKILL" || fail "owned tables still there after ${elapsed_ms} ms"
{ wait "$TOOL_PID"; } 2>/dev/null
TOOL_PID=
exec 3>&- 4<&-
grep -q 'fwmark 0x5348' <<<"$(in_ns ip rule)" && pass "policy rule outlives SIGKILL (no owner flag), as expected" || fail "policy rule vanished unexpectedly"
start_tool
ask "sweep"
[[ $REPLY == "names natty" ]] && pass "a fresh backend's sweep removes the dead one's nat chain: $REPLY" || fail "sweep after SIGKILL: $REPLY"
ns_state >"$TMP/after_sweep"
cmp -s "$TMP/initial" "$TMP/after_sweep" && pass "after sweep the state is the initial one byte for byte" || { fail "state after sweep differs"; diff -u "$TMP/initial" "$TMP/after_sweep"; }

# ---- a clean exit removes what has no owner flag --------------------------------------------
expect_ok "apply $SPEC_TPROXY" "tproxy apply before quit"
expect_ok "apply $SPEC_NAT" "nat apply before quit"
echo quit >&3
{ wait "$TOOL_PID"; } 2>/dev/null
TOOL_PID=
exec 3>&- 4<&-
ns_state >"$TMP/after_quit"
cmp -s "$TMP/initial" "$TMP/after_quit" && pass "a clean exit leaves the initial state" || { fail "state after quit differs"; diff -u "$TMP/initial" "$TMP/after_quit"; }

[[ $(root_state) == "$ROOT_BEFORE" ]] && pass "the calling namespace's firewall and rules are unchanged" || fail "the calling namespace changed"

if [[ $FAILURES -gt 0 ]]; then
    echo "$FAILURES check(s) failed"
    [[ -s $TMP/tool.err ]] && { echo "rules_tool stderr:"; cat "$TMP/tool.err"; }
    exit 1
fi
echo "all checks passed"

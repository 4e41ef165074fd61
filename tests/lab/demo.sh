#!/usr/bin/env bash
# tests/lab/demo.sh: the demo behind `./dev.sh demo`.
#
# Brings up the lab, shows what runs where, proves the laptop (client namespace) cannot reach
# the private target directly, then starts sshuttled in the laptop against the lab's sshd and
# shows an HTTP request and a DNS lookup crossing the tunnel. sshuttled starts its private
# sshuttle-helper (it is root in the laptop's namespace), which installs the firewall rules; the
# demo shows them, and shows them gone after the tunnel stops. Everything is torn down on exit
# unless --keep is given.
set -euo pipefail

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
keep=0
[ "${1:-}" = "--keep" ] && keep=1
SSHUTTLED=${SSHUTTLED:-$top/build/daemon/sshuttled}

# shellcheck source=lab.sh
source "$top/tests/lab/lab.sh"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }

daemon_pid=""
cleanup() {
    local status=$?
    if [ -n "$daemon_pid" ] && kill -0 "$daemon_pid" 2>/dev/null; then
        kill -TERM "$daemon_pid" 2>/dev/null || true
        for _ in $(seq 30); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    if [ "$keep" = 1 ] && [ "$status" = 0 ]; then
        say "The lab stays up (--keep). Use it with:"
        echo "  export LAB_DIR=$LAB_DIR"
        echo "  ./dev.sh lab exec client curl http://10.201.2.2/"
        echo "  ./dev.sh lab down     # removes everything"
    else
        lab_down >/dev/null 2>&1 || true
    fi
    exit "$status"
}

say "Building the lab: three hosts in network namespaces"
lab_up
trap cleanup EXIT INT TERM

cat <<EOF
  laptop  (client ns ${LAB_NS_CLIENT})  ${LAB_CLIENT_IP4}, default route via the jump host
  jump    (server ns ${LAB_NS_SERVER})  ${LAB_SERVER_IP4} / ${LAB_SERVER_TARGET_IP4}, sshd, IP forwarding OFF
  target  (target ns ${LAB_NS_TARGET})  ${LAB_TARGET_IP4}, private: HTTP :80, echo :7, iperf3 :5201, DNS :53
EOF

say "Services listening in the target namespace"
lab_exec target ss -Hltnu | awk '{printf "  %-5s %s\n", $1, $5}'

say "Without a tunnel the laptop cannot reach the target"
if lab_exec client curl -sS --max-time 2 "http://${LAB_TARGET_IP4}/" >/dev/null 2>&1; then
    echo "  unexpected: the target answered directly" >&2
    exit 1
fi
echo "  curl http://${LAB_TARGET_IP4}/ from the laptop: fails, as it must (no forwarding)"

if [ ! -x "$SSHUTTLED" ]; then
    say "sshuttled is not built yet: the tunnel part of the demo is skipped"
    exit 0
fi

say "Starting the tunnel: sshuttled -r lab-server --ns-hosts ${LAB_TARGET_IP4} ${LAB_TARGET_NET4}"
log="$LAB_DIR/logs/sshuttled-demo.log"
ip netns exec "$LAB_NS_CLIENT" "$SSHUTTLED" --name demo -r lab-server -e "ssh -F $LAB_SSH_CONFIG" \
    --ns-hosts "$LAB_TARGET_IP4" --to-ns "$LAB_TARGET_IP4" "$LAB_TARGET_NET4" >"$log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
    grep -q "Connected to server" "$log" && break
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
done
sed 's/^/  sshuttled: /' "$log"
grep -q "Connected to server" "$log" || { echo "  the tunnel did not come up" >&2; exit 1; }
echo "  the rules sshuttle-helper installed in the laptop's namespace:"
lab_exec client nft list table inet sshuttle_demo | sed 's/^/    /'

say "Through the tunnel: HTTP from the laptop to the private target"
lab_exec client curl -sS --max-time 5 "http://${LAB_TARGET_IP4}/" | sed 's/^/  /'

say "Through the tunnel: DNS from the laptop, answered by the target's dnsmasq"
lab_exec client dig +short +time=3 +tries=1 "@${LAB_TARGET_IP4}" target.lab.test | sed 's/^/  /'

say "Stopping the tunnel (SIGTERM): the helper removes the rules"
kill -TERM "$daemon_pid"
for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
if lab_exec client nft list tables | grep -q sshuttle; then
    echo "  unexpected: rules left behind:" >&2
    lab_exec client nft list tables >&2
    exit 1
fi
echo "  no sshuttle table is left in the laptop's namespace"
daemon_pid=""

say "Done: the laptop reached a host it has no route to, through one ssh session."

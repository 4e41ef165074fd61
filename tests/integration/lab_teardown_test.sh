#!/usr/bin/env bash
# tests/integration/lab_teardown_test.sh: the lab (tests/lab/lab.sh) leaves nothing behind.
#
# Brings labs up and down and proves, from outside the lab's own bookkeeping, that no
# namespace, root-namespace link, process, firewall rule or run directory with the run's id
# survives: after a normal `down`, after a second `down`, after an `up` whose service fails to
# start, after an `up` that fails at its last step, after an `up` killed by SIGTERM, and for
# two labs running at the same time.
#
# Exit 0 pass, 1 fail, 77 skip (not root, or the lab's tools are missing). Each `lab.sh`
# call is bounded by `timeout`; the whole test takes about 30 s.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_SH=$(readlink -f "$HERE/../lab/lab.sh")
# shellcheck source-path=SCRIPTDIR source=../lab/lab.sh
source "$LAB_SH"  # lab_load and the lab_assert_* checks
PATH=/usr/sbin:/usr/bin:/sbin:/bin

UP_TIMEOUT=60    # seconds for one `lab.sh up` (normally about 4 s)
DOWN_TIMEOUT=30  # seconds for one `lab.sh down` (normally under 1 s)

PASSES=0
FAILS=0
pass() { echo "PASS: $*"; PASSES=$((PASSES + 1)); }
fail() { echo "FAIL: $*"; FAILS=$((FAILS + 1)); }
# expect LABEL CMD...: PASS when CMD succeeds.
expect() {
  local label=$1
  shift
  if "$@"; then pass "$label"; else fail "$label"; fi
}

# shellcheck disable=SC2317  # called through expect
quiet() { "$@" >/dev/null; }

if ((EUID != 0)); then
  echo "SKIP: needs root (network namespaces)"
  exit 77
fi

WORK=$(mktemp -d /tmp/sshuttle-lab-test.XXXXXX)
BG_PIDS=()  # background processes this test started

# Whatever happens, no lab of this test survives it.
# shellcheck disable=SC2317  # invoked by the trap
cleanup() {
  local dir pid
  for pid in "${BG_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for dir in "$WORK"/lab-*; do
    [[ -d "$dir" ]] || continue
    echo "cleanup: tearing down leftover lab $dir"
    timeout "$DOWN_TIMEOUT" bash "$LAB_SH" down "$dir" >/dev/null 2>&1 || true
  done
  rm -rf -- "$WORK"
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT

new_id() { printf 't%s' "$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"; }

# lab_up_as NAME ID [VAR=VALUE...]: `lab.sh up` into $WORK/lab-NAME with run id ID and extra
# environment; its stderr goes to $WORK/NAME.err. Returns up's exit code.
lab_up_as() {
  local name=$1 id=$2
  shift 2
  env "$@" LAB_DIR="$WORK/lab-$name" LAB_ID="$id" \
    timeout "$UP_TIMEOUT" bash "$LAB_SH" up >"$WORK/$name.out" 2>"$WORK/$name.err"
}

lab_down_dir() { timeout "$DOWN_TIMEOUT" bash "$LAB_SH" down "$1" 2>>"$WORK/down.err"; }

# True when PID runs (a zombie has already released everything, so it counts as gone).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ "${stat%% *}" != [ZX] ]]
}

# PIDs of live processes whose command line mentions TEXT.
pids_mentioning() {
  local f pid args
  for f in /proc/[0-9]*/cmdline; do
    pid=${f#/proc/}
    pid=${pid%/cmdline}
    [[ "$pid" != "$$" ]] || continue
    mapfile -d '' args 2>/dev/null <"$f" || continue
    [[ "${args[*]:-}" == *"$1"* ]] && alive "$pid" && echo "$pid"
  done
  return 0
}

# PIDs of live processes in namespace NS whose command line mentions TEXT.
ns_pids_mentioning() {
  local pid args
  for pid in $(ip netns pids "$1" 2>/dev/null); do
    mapfile -d '' args 2>/dev/null <"/proc/$pid/cmdline" || continue
    [[ "${args[*]:-}" == *"$2"* ]] && alive "$pid" && echo "$pid"
  done
  return 0
}

# The firewall of the root namespace, as nft and iptables print it.
root_firewall() {
  if command -v nft >/dev/null; then nft list ruleset 2>/dev/null || true; fi
  if command -v iptables-save >/dev/null; then iptables-save 2>/dev/null || true; fi
  if command -v ip6tables-save >/dev/null; then ip6tables-save 2>/dev/null || true; fi
}

# assert_gone LABEL ID DIR [PID...]: nothing of run ID is left.
assert_gone() {
  local label=$1 id=$2 dir=$3 pid left
  shift 3
  left=$(ip netns list | grep -F "$id" || true)
  expect "$label: no namespace with id $id" test -z "$left"
  [[ -z "$left" ]] || echo "  left: $left"
  left=$(ip -o link | grep -F "$id" || true)
  expect "$label: no root-namespace link with id $id" test -z "$left"
  left=""
  for pid in "$@"; do
    alive "$pid" && left+=" $pid"
  done
  expect "$label: none of the $# recorded PIDs alive" test -z "$left"
  [[ -z "$left" ]] || ps -o pid,args -p "${left# }" || true
  left=$(pids_mentioning "$dir/" | tr '\n' ' ')
  expect "$label: no process names the run dir" test -z "$left"
  left=$(root_firewall | grep -F "$id" || true)
  expect "$label: no nft/iptables rule mentions $id" test -z "$left"
  expect "$label: run dir removed" test ! -e "$dir"
}

# Every PID of a lab that is up: the recorded services and anything in its namespaces.
lab_pids() {
  local dir=$1 f ns
  for f in "$dir"/pids/*.pid; do cat "$f"; done
  # shellcheck disable=SC1091  # a run's env file
  for ns in $(cd "$dir" && source ./env && echo "$LAB_NAMESPACES"); do
    ip netns pids "$ns"
  done
}

# ---------------------------------------------------------------------------------------------
echo "== up, inspect, down"
ID=$(new_id)
DIR="$WORK/lab-basic"
rc=0
lab_up_as basic "$ID" || rc=$?
if ((rc == 77)); then
  sed 's/^/  /' "$WORK/basic.err"
  echo "SKIP: lab.sh up skipped"
  exit 77
fi
expect "up exits 0" test "$rc" -eq 0
[[ "$rc" -eq 0 ]] || sed 's/^/  up: /' "$WORK/basic.err"
expect "up prints export LAB_DIR" grep -qx "export LAB_DIR=$DIR" "$WORK/basic.out"
if lab_load "$DIR"; then
  expect "run id recorded in env" test "$LAB_ID" = "$ID"
  for ns in $LAB_NAMESPACES; do
    expect "namespace $ns exists" test -e "/run/netns/$ns"
  done
  for pair in "$LAB_NS_CLIENT:$LAB_IF_CLIENT" "$LAB_NS_SERVER:$LAB_IF_SERVER_CLIENT" \
    "$LAB_NS_SERVER:$LAB_IF_SERVER_TARGET" "$LAB_NS_TARGET:$LAB_IF_TARGET"; do
    expect "veth ${pair#*:} in ${pair%%:*}" \
      quiet ip -n "${pair%%:*}" link show dev "${pair#*:}"
  done
  expect "no lab link in the root namespace" bash -c "! ip -o link | grep -qF '$ID'"
  for svc in $LAB_SERVICES; do
    expect "service $svc runs" alive "$(cat "$LAB_PID_DIR/$svc.pid")"
  done
  expect "server does not forward IPv4" test \
    "$(ip netns exec "$LAB_NS_SERVER" cat /proc/sys/net/ipv4/ip_forward)" = 0
  expect "server does not forward IPv6" test \
    "$(ip netns exec "$LAB_NS_SERVER" cat /proc/sys/net/ipv6/conf/all/forwarding)" = 0
  expect "client cannot reach the target directly" lab_assert_no_direct_route
  expect "ssh from client to server" lab_assert_ssh_from_client
else
  fail "lab env missing: cannot inspect the lab"
fi

# Processes started inside the lab by its users (not recorded by lab.sh): down must stop them.
if [[ -f "$DIR/env" ]]; then
  bash "$LAB_SH" exec client sleep 300 </dev/null >/dev/null 2>&1 &
  BG_PIDS+=("$!")
  ip netns exec "$LAB_NS_CLIENT" ssh -F "$LAB_SSH_CONFIG" "$LAB_SSH_HOST" sleep 301 \
    </dev/null >/dev/null 2>&1 &
  BG_PIDS+=("$!")
  for ((i = 0; i < 50; i++)); do  # wait (at most 5 s) for the remote sleep
    [[ -n "$(ns_pids_mentioning "$LAB_NS_SERVER" "sleep 301")" ]] && break
    sleep 0.1
  done
  expect "a user process runs in the client ns" alive "${BG_PIDS[0]}"
  expect "an ssh session runs a process on the server" \
    test -n "$(ns_pids_mentioning "$LAB_NS_SERVER" "sleep 301")"
fi
mapfile -t PIDS < <(lab_pids "$DIR" 2>/dev/null | sort -u)
echo "  recorded ${#PIDS[@]} PIDs: ${PIDS[*]}"
t0=$EPOCHREALTIME
expect "down exits 0" lab_down_dir "$DIR"
echo "  down took $(((${EPOCHREALTIME/./} - ${t0/./}) / 1000)) ms"
assert_gone "down" "$ID" "$DIR" "${PIDS[@]}" "${BG_PIDS[@]}"
for pid in "${BG_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
BG_PIDS=()

echo "== down is idempotent"
expect "second down exits 0" lab_down_dir "$DIR"
expect "down of a dir that never existed exits 0" lab_down_dir "$WORK/lab-never"
assert_gone "second down" "$ID" "$DIR" "${PIDS[@]}"

echo "== up with a service that fails to start"
ID=$(new_id)
DIR="$WORK/lab-broken"
rc=0
lab_up_as broken "$ID" LAB_BREAK_SERVICE=dnsmasq || rc=$?
expect "up fails (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 77
expect "up says dnsmasq did not start" grep -q "dnsmasq did not start" "$WORK/broken.err"
assert_gone "broken service" "$ID" "$DIR"

echo "== up failing after everything started"
ID=$(new_id)
DIR="$WORK/lab-late"
rc=0
lab_up_as late "$ID" LAB_FAIL_AT=checks || rc=$?
expect "up fails (exit $rc)" test "$rc" -ne 0 -a "$rc" -ne 77
expect "up reports the simulated failure" grep -q "simulated failure after step 'checks'" \
  "$WORK/late.err"
assert_gone "late failure" "$ID" "$DIR"

echo "== up killed by SIGTERM"
ID=$(new_id)
DIR="$WORK/lab-killed"
# Directly in the background (env execs bash), so that $! is the lab.sh process itself.
env LAB_DIR="$DIR" LAB_ID="$ID" bash "$LAB_SH" up >"$WORK/killed.out" 2>"$WORK/killed.err" &
UP_PID=$!
BG_PIDS+=("$UP_PID")
for ((i = 0; i < 100; i++)); do  # at most 10 s, until the target's services are starting
  [[ -s "$DIR/pids/http.pid" ]] && break
  sleep 0.1
done
expect "up got as far as the target's services" test -s "$DIR/pids/http.pid"
mapfile -t PIDS < <(cat "$DIR"/pids/*.pid 2>/dev/null)
kill -TERM "$UP_PID"
for ((i = 0; i < 300; i++)); do  # its teardown gets at most 30 s, then SIGKILL
  alive "$UP_PID" || break
  sleep 0.1
done
alive "$UP_PID" && kill -KILL "$UP_PID"
rc=0
wait "$UP_PID" || rc=$?
BG_PIDS=()
expect "killed up exits non-zero (exit $rc)" test "$rc" -ne 0
assert_gone "killed up" "$ID" "$DIR" "${PIDS[@]}"

echo "== two labs at the same time"
ID_A=$(new_id)
ID_B=$(new_id)
lab_up_as para-a "$ID_A" &
PA=$!
lab_up_as para-b "$ID_B" &
PB=$!
rc_a=0 rc_b=0
wait "$PA" || rc_a=$?
wait "$PB" || rc_b=$?
expect "lab A up (exit $rc_a)" test "$rc_a" -eq 0
expect "lab B up (exit $rc_b)" test "$rc_b" -eq 0
[[ "$rc_a" -eq 0 ]] || sed 's/^/  up A: /' "$WORK/para-a.err"
[[ "$rc_b" -eq 0 ]] || sed 's/^/  up B: /' "$WORK/para-b.err"
expect "lab A passes its checks while B is up" \
  bash "$LAB_SH" check "$WORK/lab-para-a" 2>>"$WORK/check.err"
expect "lab B passes its checks while A is up" \
  bash "$LAB_SH" check "$WORK/lab-para-b" 2>>"$WORK/check.err"
expect "labs A and B have distinct namespaces" \
  test -z "$(ip netns list | grep -F "$ID_A" | grep -F "$ID_B")"
mapfile -t PIDS_A < <(lab_pids "$WORK/lab-para-a" 2>/dev/null | sort -u)
mapfile -t PIDS_B < <(lab_pids "$WORK/lab-para-b" 2>/dev/null | sort -u)
lab_down_dir "$WORK/lab-para-a" &
PA=$!
lab_down_dir "$WORK/lab-para-b" &
PB=$!
rc_a=0 rc_b=0
wait "$PA" || rc_a=$?
wait "$PB" || rc_b=$?
expect "both downs exit 0" test "$rc_a" -eq 0 -a "$rc_b" -eq 0
assert_gone "parallel A" "$ID_A" "$WORK/lab-para-a" "${PIDS_A[@]}"
assert_gone "parallel B" "$ID_B" "$WORK/lab-para-b" "${PIDS_B[@]}"

echo
if ((FAILS == 0)); then
  echo "PASS: lab teardown ($PASSES checks)"
  exit 0
fi
echo "FAIL: lab teardown ($FAILS of $((PASSES + FAILS)) checks failed)"
for f in down check; do
  [[ -s "$WORK/$f.err" ]] && sed "s/^/  $f: /" "$WORK/$f.err"
done
exit 1

#!/usr/bin/env bash
# tests/integration/load_test.sh: many concurrent connections through one tunnel, then proof
# that the tunnel and its daemon still answer (issue 10, "no wedge under load").
#
# Brings up one lab (tests/lab/lab.sh), starts sshuttled in the client namespace with the
# target subnet (as tunnel_test.sh does: our agent, the private helper, nft), then:
#   load      LOAD_CONNECTIONS (default 15,000) echo connections to the target's port 7, all
#             open at once, each sending its own bytes, half-closing and checking that exactly
#             those come back (tests/integration/echo_load.py);
#   http      a new connection through the tunnel afterwards: curl gets the target's page;
#   status    the daemon's control socket answers `sshuttle status NAME --json` (connected);
#   drained   its open channel count falls back to 0 (no channel left behind by the load);
#   sigterm   SIGTERM stops it within 5 s with status 0, and no rule is left.
# LOAD_EXTRA_ARGS adds words to sshuttled's command line (split on blanks), so the same load
# can run with other data-path options; the label in the PASS lines names them.
#
# Limits: every connection costs a descriptor in sshuttled, in the load generator, in the remote
# agent and in the target's echo server, so the script raises its own RLIMIT_NOFILE before the
# lab starts (the lab's sshd, hence the agent, and the echo server inherit it).
#
# Each check prints `PASS name` or `FAIL name: why`. Exit 0 all passed, 1 any failed, 77 skip
# (not root, a tool missing, the descriptor limit cannot be raised, the lab cannot come up).
# Every wait is bounded; about 1-2 minutes. sshuttled's log stays in $LAB_DIR/logs (kept with
# LAB_KEEP=1, printed when a check fails).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
SSHUTTLED=${SSHUTTLED:-$TOP/build/daemon/sshuttled}
SSHUTTLE=${SSHUTTLE:-$(dirname "$SSHUTTLED")/../client/sshuttle}
PY=/usr/bin/python3
ECHO_LOAD="$TOP/tests/integration/echo_load.py"
PATH=/usr/sbin:/usr/bin:/sbin:/bin

CONNECTIONS=${LOAD_CONNECTIONS:-15000}
LOAD_TIMEOUT=${LOAD_TIMEOUT:-150}  # seconds for the whole echo run
read -r -a EXTRA_ARGS <<<"${LOAD_EXTRA_ARGS:-}"
LISTEN_PORT=12310
NAME="load$$"  # control sockets live in the shared /run/sshuttle: unique per run
# Descriptors: the load, plus room for everything else in the busiest process.
WANT_NOFILE=$((CONNECTIONS + 4096))

# shellcheck source-path=SCRIPTDIR source=../lab/lab.sh
source "$TOP/tests/lab/lab.sh"

if ((EUID != 0)); then
  echo "SKIP: needs root (network namespaces)"
  exit 77
fi
for tool in curl nft timeout "$PY" "$ECHO_LOAD"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool missing"; exit 77; }
done
if [[ ! -x "$SSHUTTLED" || ! -x "$SSHUTTLE" ]]; then
  echo "SKIP: $SSHUTTLED or $SSHUTTLE is not built"
  exit 77
fi
if (($(ulimit -Hn) < WANT_NOFILE)); then
  ulimit -Hn "$WANT_NOFILE" 2>/dev/null || true
fi
if (($(ulimit -Hn) < WANT_NOFILE)); then
  echo "SKIP: RLIMIT_NOFILE hard limit $(ulimit -Hn) < $WANT_NOFILE and cannot be raised"
  exit 77
fi
ulimit -Sn "$(ulimit -Hn)"

CHECK_PREFIX="load${LOAD_EXTRA_ARGS:+[${LOAD_EXTRA_ARGS}]}/"
# shellcheck source-path=SCRIPTDIR source=harness.sh
source "$HERE/harness.sh"

trap harness_cleanup EXIT
trap 'exit 130' INT TERM

# status_field FIELD: one field of `sshuttle status NAME --json` ("" when it does not answer
# within 10 s).
status_field() {
  timeout 10 "$SSHUTTLE" status "$NAME" --json 2>/dev/null |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1" 2>/dev/null || true
}

ms_since() { echo $((($(date +%s%N) - $1) / 1000000)); }

# ---------------------------------------------------------------------------------------------
lab_up_for_test
lab_is_up=1

if lab_assert_no_direct_route 2>/dev/null; then
  pass "no-direct-route"
else
  fail "no-direct-route" "the client reaches the target without a tunnel"
fi

daemon_log="$LAB_DIR/logs/sshuttled-$NAME.log"
ip netns exec "$LAB_NS_CLIENT" "$SSHUTTLED" --name "$NAME" -r "$LAB_SSH_HOST" \
  -e "ssh -F $LAB_SSH_CONFIG" -l "127.0.0.1:$LISTEN_PORT" "${EXTRA_ARGS[@]}" \
  "$LAB_TARGET_NET4" >"$daemon_log" 2>&1 &
daemon_pid=$!  # ip netns exec execs sshuttled: this is its PID
started=0
for _ in $(seq 150); do  # 15 s
  grep -q "Connected to server" "$daemon_log" && { started=1; break; }
  kill -0 "$daemon_pid" 2>/dev/null || break
  sleep 0.1
done
if ((!started)); then
  fail "start" "no 'Connected to server' within 15 s"
  show_log
  exit 1
fi
pass "start"

# The load: all connections open at once, each verified byte for byte.
t0=$(date +%s%N)
out=$(lab_exec client timeout $((LOAD_TIMEOUT + 20)) "$PY" "$ECHO_LOAD" --timeout "$LOAD_TIMEOUT" \
  "$LAB_TARGET_IP4" "$LAB_ECHO_PORT" "$CONNECTIONS" 2>&1) || true
ms=$(ms_since "$t0")
if [[ "$out" == "ok $CONNECTIONS" ]]; then
  pass "concurrent-echo-$CONNECTIONS ($ms ms)"
else
  fail "concurrent-echo-$CONNECTIONS" "after $ms ms: ${out:0:400}"
fi

# The tunnel still takes a new connection.
check_http "http-after-load"

# The control socket still answers, and every channel of the load is gone (bounded wait: the
# last channels close as their final frames cross).
state=$(status_field state)
[[ "$state" == connected ]] && pass "status-after-load" ||
  fail "status-after-load" "sshuttle status said state '$state' (empty: no answer within 10 s)"
open=""
if [[ "$state" == connected ]]; then
  deadline=$((SECONDS + 10))
  while ((SECONDS < deadline)); do
    open=$(status_field channels_open)
    [[ "$open" == 0 ]] && break
    sleep 0.2
  done
fi
[[ "$open" == 0 ]] && pass "channels-drained (connections $(status_field connections))" ||
  fail "channels-drained" "channels_open is '$open' 10 s after the load"

# SIGTERM: exits within 5 s with status 0, and the rules are gone.
if ! kill -0 "$daemon_pid" 2>/dev/null; then
  rc=0
  wait "$daemon_pid" || rc=$?
  daemon_pid=""
  fail "sigterm" "sshuttled had already exited (status $rc) before SIGTERM"
else
  kill -TERM "$daemon_pid"
  t0=$(date +%s%N)
  for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$daemon_pid" 2>/dev/null; then
    fail "sigterm" "still running 5 s after SIGTERM (killed)"
    stop_daemon_hard
  else
    rc=0
    wait "$daemon_pid" || rc=$?
    daemon_pid=""
    ((rc == 0)) && pass "sigterm (exit 0 after $(ms_since "$t0") ms)" ||
      fail "sigterm" "exit status $rc"
  fi
fi
rules=""
for _ in $(seq 20); do
  rules=$(sshuttle_rules)
  [[ -z "$rules" ]] && break
  sleep 0.1
done
[[ -z "$rules" ]] && pass "no-rules-after-stop" || fail "no-rules-after-stop" "left: ${rules:0:300}"

if ((FAILS > 0)); then
  show_log
  echo "$FAILS check(s) failed; logs in $LAB_DIR/logs (LAB_KEEP=1 keeps them)"
  exit 1
fi
echo "all checks passed"

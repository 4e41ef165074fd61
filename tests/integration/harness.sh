# tests/integration/harness.sh: what the integration scripts that run sshuttled in the lab share.
# Sourced after tests/lab/lab.sh. Provides:
#   pass NAME / fail NAME WHY   one line each, "PASS ..." / "FAIL ...: ..."; fail counts FAILS.
#                               CHECK_PREFIX (set before sourcing) goes in front of every name.
#   stop_pid PID [TENTHS]       SIGTERM, up to TENTHS/10 s (3 s), then SIGKILL, and reap: only
#                               PIDs we started
#   stop_daemon_hard [TENTHS]   stop_pid "$daemon_pid" and forget it
#   check_http NAME             curl through the tunnel gets the lab target's page
#   harness_cleanup             the EXIT trap: the daemon, then the lab if lab_is_up=1
#   show_log [LINES]            the end of $daemon_log without the per-connection debug lines
#   sshuttle_rules              the sshuttle rules in the lab's client namespace, one per line
# shellcheck shell=bash

FAILS=0
CHECK_PREFIX=${CHECK_PREFIX:-}
daemon_pid=""
daemon_log=""
lab_is_up=0

pass() { echo "PASS $CHECK_PREFIX$1"; }
fail() { echo "FAIL $CHECK_PREFIX$1: $2"; FAILS=$((FAILS + 1)); }

stop_pid() {
  local pid=${1:-} tenths=${2:-30}
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq "$tenths"); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

stop_daemon_hard() {
  stop_pid "$daemon_pid" "${1:-30}"
  daemon_pid=""
}

check_http() {
  local name=$1 body
  if body=$(lab_exec client curl -sS --max-time 10 "http://$LAB_TARGET_IP4/" 2>&1) &&
    [[ "$body" == *"$LAB_HTTP_MARKER"* ]]; then
    pass "$name"
  else
    fail "$name" "curl gave '${body:0:200}'"
  fi
}

harness_cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_daemon_hard
  if ((lab_is_up)); then
    lab_down "$LAB_DIR" >/dev/null 2>&1 || true
  fi
  exit "$status"
}

show_log() {
  [[ -n "$daemon_log" && -f "$daemon_log" ]] || return 0
  echo "---- last lines of $daemon_log (without the per-connection debug lines)"
  grep -v -e 'debug: channel [0-9]*: connect to' -e 'debug: ssh connection [0-9]*: forward to' \
    "$daemon_log" | tail -n "${1:-40}" | sed 's/^/  | /'
  echo "----"
}

# nft tables, iptables chains (v4 and v6) and the tproxy policy-routing rule; empty when none.
sshuttle_rules() {
  {
    lab_exec client nft list tables 2>/dev/null | grep -i sshuttle
    lab_exec client iptables-save 2>/dev/null | grep -i sshuttle
    lab_exec client ip6tables-save 2>/dev/null | grep -i sshuttle
    lab_exec client ip rule list 2>/dev/null | grep -i 0x5348
    lab_exec client ip -6 rule list 2>/dev/null | grep -i 0x5348
  } || true
}

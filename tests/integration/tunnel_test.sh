#!/usr/bin/env bash
# tests/integration/tunnel_test.sh: end-to-end checks of sshuttled through the lab.
#
# Brings up one lab (tests/lab/lab.sh), proves the client cannot reach the target directly,
# then runs sshuttled in the client namespace with the target subnet: sshuttled starts its own
# private sshuttle-helper (--stdio; it is root, so no sudo), which installs the nft rules. The
# same checks run twice:
#   A  with our agent (the default: uploaded over ssh)
#   B  with Debian's stock sshuttle server (--server-cmd, python3 -c 'import sshuttle.server')
# Checks per run: the rules exist once sshuttled says it is connected, HTTP marker, 200 MiB
# download (sha256), 200 MiB upload to the lab's TCP echo (port 7) with half-close (sha256 of
# the echo), refused port fails promptly (with our agent: reset, the connect-error extension)
# and the tunnel survives, 2,000 concurrent echo connections each getting exactly its own
# bytes (tests/integration/echo_load.py), DNS through the tunnel answered by the lab's
# resolver (--ns-hosts), and SIGTERM stops sshuttled within 5 s with status 0 and no rule left.
# Run A also SIGKILLs the helper: sshuttled must start a new one, re-apply, and keep working.
# Start failures (no python, ssh failing, a remote command that is not sshuttle) end with
# status 99, one line saying why, and no rule. An IPv6 run: HTTP to the target's IPv6 address
# through an IPv6 listener. -H with --seed-hosts: the seed's address appears
# in /etc/hosts (a scratch file mounted over it for sshuttled alone) and is gone after the stop.
# Then, per other firewall method (nat, tproxy), a short run: rules, HTTP, DNS (nat only; tproxy
# refuses DNS, see check_supported), SIGKILL of the helper (re-applied by a new one, no
# duplicate), and SIGKILL of sshuttled itself, after which the helper must have removed every
# rule within 2 s.
#
# The stock server cannot hold 2,000 connections at once: its loop is select.select(), which
# CPython refuses for a descriptor >= 1024 (FD_SETSIZE): "ValueError: filedescriptor out of
# range in select()" kills the server. Its loop also calls every connection's handler whenever
# the mux stream is ready, so each turn costs O(open connections). Run B therefore makes its
# 2,000 connections in waves of 500 open at a time (B/concurrent-2000-waves-500); run A holds
# all 2,000 at once.
#
# Each check prints `PASS name` or `FAIL name: why`. Exit 0 all passed, 1 any failed, 77 skip
# (not root, a tool missing, the lab cannot come up). Every wait is bounded; about 2-3 minutes.
# sshuttled runs with -v; its logs stay in $LAB_DIR/logs (kept with LAB_KEEP=1, and printed
# when a check fails).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
SSHUTTLED=${SSHUTTLED:-$TOP/build/daemon/sshuttled}
PY=/usr/bin/python3
ECHO_LOAD="$TOP/tests/integration/echo_load.py"
PATH=/usr/sbin:/usr/bin:/sbin:/bin

# shellcheck source-path=SCRIPTDIR source=../lab/lab.sh
source "$TOP/tests/lab/lab.sh"
# shellcheck source-path=SCRIPTDIR source=harness.sh
source "$HERE/harness.sh"

if ((EUID != 0)); then
  echo "SKIP: needs root (network namespaces)"
  exit 77
fi
for tool in curl dig nft sha256sum timeout "$PY" "$ECHO_LOAD"; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool missing"; exit 77; }
done
if [[ ! -x "$SSHUTTLED" ]]; then
  echo "SKIP: $SSHUTTLED is not built"
  exit 77
fi

LISTEN_PORT=12300
BIG_KIB=204800           # 200 MiB
CONCURRENT=2000          # echo connections open at once
# The stock server's select() limit and per-turn cost (see above): connections open at once
# in run B.
STOCK_WAVE=500
STOCK_SERVER_OK=1
[[ -f /usr/lib/python3/dist-packages/sshuttle/server.py ]] || STOCK_SERVER_OK=0

# TUNNEL_TEST_ONLY="A multi paths": run only these runs (labels: A A-agent F B errors auto-hosts
# ipv6 multi paths method-nat method-tproxy); all of them when unset.
want() { [[ -z "${TUNNEL_TEST_ONLY:-}" || " $TUNNEL_TEST_ONLY " == *" $1 "* ]]; }
trap harness_cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------------------------------------
# Lab

lab_up_for_test
lab_is_up=1

# Never let DNS leave the lab: the server's resolv.conf must point at the target.
if ! lab_exec server cat /etc/resolv.conf | grep -qx "nameserver $LAB_TARGET_IP4"; then
  echo "FAIL lab-resolv: the server namespace's resolv.conf does not point at the target"
  exit 1
fi

# 1. Without a tunnel the client cannot reach the target.
if lab_assert_no_direct_route 2>/dev/null; then
  pass "no-direct-route"
else
  fail "no-direct-route" "the client reaches the target without a tunnel"
fi

url_path=$(lab_www_file big.bin "$BIG_KIB")
BIG_URL="http://$LAB_TARGET_IP4$url_path"
BIG_SHA=$(lab_exec target sha256sum "$LAB_WWW_DIR/big.bin" | cut -d' ' -f1)
UPLOAD_FILE="$LAB_DIR/upload.bin"
head -c "$((BIG_KIB * 1024))" /dev/urandom >"$UPLOAD_FILE"
UPLOAD_SHA=$(sha256sum "$UPLOAD_FILE" | cut -d' ' -f1)

ECHO_PORT=$LAB_ECHO_PORT  # the lab's own echo (tests/lab/tcp_echo.py)

# Servers of stream shapes on the target (stream_checks.py), and a second sshd that forbids
# forwarding. Their command lines name $LAB_DIR: lab_down stops them with the lab's own.
STREAMS="$TOP/tests/integration/stream_checks.py"
CLOSE_PORT=9101
SHUTWR_PORT=9102
CLOSE_KIB=20480
close_path=$(lab_www_file close.bin "$CLOSE_KIB")
CLOSE_SHA=$(lab_exec target sha256sum "$LAB_WWW_DIR${close_path}" | cut -d' ' -f1)
SHUTWR_LOG="$LAB_LOG_DIR/shutwr-target.log"
_lab_start closeserver "$LAB_NS_TARGET" "$PY" "$STREAMS" serve-close "$LAB_TARGET_IP4" \
  "$CLOSE_PORT" "$LAB_WWW_DIR${close_path}"
_lab_start shutwrserver "$LAB_NS_TARGET" "$PY" "$STREAMS" serve-shutwr "$LAB_TARGET_IP4" \
  "$SHUTWR_PORT" "$SHUTWR_LOG"
_lab_wait_listen closeserver "$LAB_NS_TARGET" tcp "$CLOSE_PORT"
_lab_wait_listen shutwrserver "$LAB_NS_TARGET" tcp "$SHUTWR_PORT"
NOFWD_PORT=2222
sed -e "s/^Port .*/Port $NOFWD_PORT/" -e "s#^PidFile .*#PidFile $LAB_DIR/ssh/sshd-nofwd.pid#" \
  "$LAB_SSHD_CONFIG" >"$LAB_DIR/ssh/sshd_config_nofwd"
echo "AllowTcpForwarding no" >>"$LAB_DIR/ssh/sshd_config_nofwd"
_lab_start sshd-nofwd "$LAB_NS_SERVER" /usr/sbin/sshd -D -f "$LAB_DIR/ssh/sshd_config_nofwd" \
  -E "$LAB_LOG_DIR/sshd-nofwd.log"
_lab_wait_listen sshd-nofwd "$LAB_NS_SERVER" tcp "$NOFWD_PORT" 2

TUNNEL_NAME=tt  # sshuttled --name: the helper's table is inet sshuttle_tt
install -d -m 0700 "$LAB_DIR/ctl"
CTL_SOCK="$LAB_DIR/ctl/$TUNNEL_NAME.sock"

# The PID of sshuttled's helper child (its only child named sshuttle-helper).
helper_child() {
  ps -o pid=,comm= --ppid "$1" 2>/dev/null | awk '$2 == "sshuttle-helper" { print $1; exit }'
}

# start_daemon LABEL [extra sshuttled args...]: starts sshuttled in the client namespace and
# waits (15 s at most) for "Connected to server"; 1 when it did not come up.
start_daemon() {
  local label=$1 started=0
  shift
  daemon_log="$LAB_DIR/logs/sshuttled-$label.log"
  ip netns exec "$LAB_NS_CLIENT" "$SSHUTTLED" -v --name "$TUNNEL_NAME" -r "$LAB_SSH_HOST" \
    -e "ssh -F $LAB_SSH_CONFIG" -l "127.0.0.1:$LISTEN_PORT" --control-socket "$CTL_SOCK" \
    "$@" >"$daemon_log" 2>&1 &
  daemon_pid=$!  # ip netns exec execs sshuttled: this is its PID
  for _ in $(seq 150); do  # 15 s
    grep -q "Connected to server" "$daemon_log" && { started=1; break; }
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  ((started)) && return 0
  fail "$label/start" "no 'Connected to server' within 15 s"
  stop_daemon_hard
  return 1
}

# status_get EXPR: the daemon's Status over its control socket, EXPR a Python expression over
# `s` (the parameters), e.g. 's["tcp_path"]'. Prints "?" when the socket does not answer.
status_get() {
  "$PY" - "$CTL_SOCK" "$1" <<'PY' 2>/dev/null || echo "?"
import json, socket, sys
c = socket.socket(socket.AF_UNIX)
c.settimeout(3)
c.connect(sys.argv[1])
c.sendall(json.dumps({"method": "io.sshuttle.Tunnel.Status"}).encode() + b"\0")
d = b""
while not d.endswith(b"\0"):
    b = c.recv(65536)
    if not b:
        break
    d += b
s = json.loads(d[:-1])["parameters"]
print(eval(sys.argv[2], {"s": s}))
PY
}

# check_path LABEL PREFIX: status says TCP goes the way PREFIX says ("ssh", "agent (...").
check_path() {
  local label=$1 want=$2 got counts
  got=$(status_get 's["tcp_path"]')
  counts=$(status_get '"ssh %d agent %d retried %d" % (s["tcp_connections"]["ssh"], s["tcp_connections"]["agent"], s["tcp_connections"]["retried_on_agent"])')
  if [[ "$got" == "$want"* ]]; then
    pass "$label/tcp-path ($got; $counts)"
  else
    fail "$label/tcp-path" "status says '$got' ($counts), want '$want...'"
  fi
}

# check_stream_shapes LABEL PATH: a close-delimited download (the target sends and closes, the
# client never shuts down its side) arrives whole with EOF. And a target that shuts down only
# its write side while it still reads: the client gets the hello, then EOF at once. On the
# agent path the connection stays half-open (TCP_EOF is carried as such) and the 1 MiB the
# client sends afterwards reaches the target whole. On the ssh path the master treats a
# forward like `ssh -W`: on the remote's EOF it drains and closes the whole socket, so the
# client's later send fails and the target reads EOF (docs/ARCHITECTURE.md, "Data path").
check_stream_shapes() {
  local label=$1 path=$2 out before after want want_log
  out=$(lab_exec client timeout 60 "$PY" "$STREAMS" read-close "$LAB_TARGET_IP4" "$CLOSE_PORT" 2>&1) || true
  if [[ "$out" == "$CLOSE_SHA $((CLOSE_KIB * 1024))" ]]; then
    pass "$label/close-delimited-download"
  else
    fail "$label/close-delimited-download" "got '${out:0:200}', want $CLOSE_SHA $((CLOSE_KIB * 1024))"
  fi
  if [[ "$path" == ssh* ]]; then
    want="hello eof=yes send-failed=*" want_log="got 0"
  else
    want="hello eof=yes sent=1048576 end=eof" want_log="got 1048576"
  fi
  before=$(grep -c . "$SHUTWR_LOG" 2>/dev/null) || before=0
  out=$(lab_exec client timeout 30 "$PY" "$STREAMS" shutwr "$LAB_TARGET_IP4" "$SHUTWR_PORT" 2>&1) || true
  for _ in $(seq 50); do
    after=$(grep -c . "$SHUTWR_LOG" 2>/dev/null) || after=0
    ((after > before)) && break
    sleep 0.1
  done
  # shellcheck disable=SC2053  # $want is a pattern
  if [[ "$out" == $want ]] && [[ "$(tail -n 1 "$SHUTWR_LOG" 2>/dev/null)" == "$want_log" ]]; then
    pass "$label/target-half-close ($out; target: $want_log)"
  else
    fail "$label/target-half-close" "client said '${out:0:200}' (want '$want'), target logged '$(tail -n 1 "$SHUTWR_LOG" 2>/dev/null)' (want '$want_log')"
  fi
}

# check_dns NAME: the lab's name resolves through the tunnel, answered by the target's resolver.
check_dns() {
  local out
  out=$(lab_exec client dig +short +time=3 +tries=2 "@$LAB_TARGET_IP4" "$LAB_DNS_NAME" A 2>&1) || true
  if [[ "$out" == "$LAB_TARGET_IP4" ]]; then
    pass "$1"
  else
    fail "$1" "dig gave '${out:0:200}', want $LAB_TARGET_IP4"
  fi
}

# check_helper_restart LABEL PATTERN: SIGKILL sshuttled's helper; within 5 s a new helper
# child must have applied the rules again (matching PATTERN, the same listing as before: no
# duplicate of a leftover), and HTTP must go through.
check_helper_restart() {
  local label=$1 pattern=$2 helper_pid rules_before rules_after new_pid
  helper_pid=$(helper_child "$daemon_pid")
  if [[ -z "$helper_pid" ]]; then
    fail "$label/helper-killed" "no sshuttle-helper child of sshuttled $daemon_pid"
    return 0
  fi
  rules_before=$(sshuttle_rules | sort)
  kill -KILL "$helper_pid"
  for _ in $(seq 50); do
    grep -q "firewall rules re-applied" "$daemon_log" && break
    sleep 0.1
  done
  new_pid=$(helper_child "$daemon_pid")
  if grep -q "firewall rules re-applied" "$daemon_log" && kill -0 "$daemon_pid" 2>/dev/null &&
    [[ -n "$new_pid" && "$new_pid" != "$helper_pid" ]]; then
    pass "$label/helper-killed-reapplied"
  else
    fail "$label/helper-killed-reapplied" "no re-apply by a new helper within 5 s"
  fi
  check_rules "$label/rules-after-helper-restart" "$pattern"
  rules_after=$(sshuttle_rules | sort)
  [[ "$rules_after" == "$rules_before" ]] && pass "$label/no-duplicate-rules" ||
    fail "$label/no-duplicate-rules" "before: ${rules_before:0:300} / after: ${rules_after:0:300}"
  check_http "$label/http-after-helper-restart"
}

# check_rules NAME PATTERN: the rules exist, and the listing matches PATTERN (grep -E).
check_rules() {
  local name=$1 pattern=$2 rules
  rules=$(sshuttle_rules)
  if [[ -n "$rules" ]] && grep -Eq -- "$pattern" <<<"$rules"; then
    pass "$name ($(tr '\n' ' ' <<<"$rules" | head -c 160))"
  else
    fail "$name" "want rules matching '$pattern', have '${rules:0:300}'"
  fi
}

# check_no_rules NAME: no sshuttle rule is left within 2 s.
check_no_rules() {
  local name=$1 rules
  for _ in $(seq 20); do
    rules=$(sshuttle_rules)
    [[ -z "$rules" ]] && break
    sleep 0.1
  done
  if [[ -z "$rules" ]]; then pass "$name"; else fail "$name" "left: ${rules:0:300}"; fi
}

# ---------------------------------------------------------------------------------------------
# One run: start sshuttled, run the checks, stop it.

# run_checks LABEL WAVE PATH [extra sshuttled args...]: WAVE is the number of echo connections
# open at once (CONCURRENT for all at once); PATH the tcp_path status must show (a prefix);
# refused connections must be reset when LABEL starts with A (our agent).
run_checks() {
  local label=$1 wave=$2 path=$3
  shift 3
  want "$label" || return 0
  local t0 t1 out rc got
  echo "== run $label"
  start_daemon "$label" --ns-hosts "$LAB_TARGET_IP4" --to-ns "$LAB_TARGET_IP4" \
    "$LAB_TARGET_NET4" "$@" || return 0
  pass "$label/start"
  # sshuttled said it is connected only after the helper applied the rules.
  check_rules "$label/rules-applied" "inet sshuttle_$TUNNEL_NAME"

  # 2. HTTP marker through the tunnel.
  check_http "$label/http"

  # 3. 200 MiB download, sha256 against the target's file.
  t0=$(date +%s%N)
  # shellcheck disable=SC2016  # $1 belongs to the inner bash
  out=$(lab_exec client bash -c 'set -o pipefail; curl -sS --max-time 120 "$1" | sha256sum' \
    sh "$BIG_URL" 2>&1) || true
  t1=$(date +%s%N)
  got=${out%% *}
  if [[ "$got" == "$BIG_SHA" ]]; then
    pass "$label/download-200M ($(((t1 - t0) / 1000000)) ms)"
  else
    fail "$label/download-200M" "sha256 '${out:0:200}', want $BIG_SHA"
  fi

  # 4. 200 MiB upload to the echo port with half-close; the echo must hash the same.
  t0=$(date +%s%N)
  out=$(lab_exec client timeout 150 "$PY" "$STREAMS" upload-echo \
    "$LAB_TARGET_IP4" "$ECHO_PORT" "$UPLOAD_FILE" 2>&1) || true
  t1=$(date +%s%N)
  if [[ "$out" == "$UPLOAD_SHA $((BIG_KIB * 1024))" ]]; then
    pass "$label/upload-echo-200M ($(((t1 - t0) / 1000000)) ms)"
  else
    fail "$label/upload-echo-200M" "got '${out:0:300}', want $UPLOAD_SHA $((BIG_KIB * 1024))"
  fi

  # 5. A closed port fails promptly; the tunnel still works afterwards. With our agent the
  # connect-error extension resets the local connection: curl says 56 (receive failure) or 7
  # (the reset came while it was still connecting), never 52 (empty reply), which is all a
  # stock server can give.
  t0=$(date +%s%N)
  rc=0
  lab_exec client curl -sS --max-time 10 -o /dev/null "http://$LAB_TARGET_IP4:9/" \
    >/dev/null 2>&1 || rc=$?
  t1=$(date +%s%N)
  local ms=$(((t1 - t0) / 1000000))
  if ((rc != 0 && ms < 5000)) && [[ "$label" != A* || "$rc" == 56 || "$rc" == 7 ]]; then
    pass "$label/refused-port (curl exit $rc after ${ms} ms)"
  else
    fail "$label/refused-port" "curl exit $rc after ${ms} ms (want $([[ "$label" == A* ]] &&
      echo '56 or 7' || echo non-zero) within 5000 ms)"
  fi
  check_http "$label/http-after-refused"

  # 6. CONCURRENT echo connections (WAVE open at once), each gets exactly its own bytes back.
  local name="$label/concurrent-$CONCURRENT"
  ((wave >= CONCURRENT)) || name+="-waves-$wave"
  t0=$(date +%s%N)
  out=$(lab_exec client timeout 150 "$PY" "$ECHO_LOAD" --timeout 140 --wave "$wave" \
    "$LAB_TARGET_IP4" "$ECHO_PORT" "$CONCURRENT" 2>&1) || true
  t1=$(date +%s%N)
  if [[ "$out" == "ok $CONCURRENT" ]]; then
    pass "$name ($(((t1 - t0) / 1000000)) ms)"
  else
    fail "$name" "${out:0:400}"
  fi

  # 7. DNS through the tunnel, answered by the lab's resolver on the target.
  check_dns "$label/dns"

  # 7b. Streams that end in the ways a tunnel can get wrong; then the path TCP took.
  check_stream_shapes "$label" "$path"
  check_path "$label" "$path"

  # 8. Run A: the helper dies (SIGKILL). Its nft table dies with it; sshuttled must notice,
  # start a fresh helper and apply the same rules again, and the tunnel must carry traffic.
  if [[ "$label" == A ]]; then check_helper_restart "$label" "inet sshuttle_$TUNNEL_NAME"; fi

  # 9. SIGTERM: exits within 5 s with status 0, and the rules are gone.
  if ! kill -0 "$daemon_pid" 2>/dev/null; then
    rc=0
    wait "$daemon_pid" || rc=$?
    fail "$label/sigterm" "sshuttled had already exited (status $rc) before SIGTERM"
  else
    kill -TERM "$daemon_pid"
    t0=$(date +%s%N)
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$daemon_pid" 2>/dev/null; then
      fail "$label/sigterm" "still running 5 s after SIGTERM (killed)"
      kill -KILL "$daemon_pid" 2>/dev/null || true
      wait "$daemon_pid" 2>/dev/null || true
    else
      rc=0
      wait "$daemon_pid" || rc=$?
      t1=$(date +%s%N)
      if ((rc == 0)); then
        pass "$label/sigterm (exit 0 after $(((t1 - t0) / 1000000)) ms)"
      else
        fail "$label/sigterm" "exit status $rc"
      fi
    fi
  fi
  daemon_pid=""
  check_no_rules "$label/no-rules-after-stop"
}

# run_method METHOD PATTERN DNS: a short run with --method METHOD: the rules (matching
# PATTERN), HTTP through them (and DNS when DNS is 1), the helper killed and replaced, then
# SIGKILL of sshuttled: the helper removes everything by itself.
run_method() {
  local method=$1 pattern=$2 dns=$3 label="method-$1" helper_pid
  want "$label" || return 0
  local dns_args=()
  ((dns)) && dns_args=(--ns-hosts "$LAB_TARGET_IP4" --to-ns "$LAB_TARGET_IP4")
  echo "== run $label"
  start_daemon "$label" --method "$method" "${dns_args[@]}" "$LAB_TARGET_NET4" || return 0
  pass "$label/start"
  check_rules "$label/rules-applied" "$pattern"
  check_http "$label/http"
  ((dns)) && check_dns "$label/dns"
  # The helper dies: what its death does not remove by itself (an iptables chain, the tproxy
  # policy route) the next helper sweeps before it applies the same rules again.
  check_helper_restart "$label" "$pattern"
  helper_pid=$(helper_child "$daemon_pid")
  kill -KILL "$daemon_pid" 2>/dev/null || true
  wait "$daemon_pid" 2>/dev/null || true
  daemon_pid=""
  check_no_rules "$label/daemon-killed-no-rules"
  if [[ -n "$helper_pid" ]]; then
    for _ in $(seq 50); do kill -0 "$helper_pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$helper_pid" 2>/dev/null; then
      fail "$label/helper-exits" "sshuttle-helper $helper_pid still runs 5 s after sshuttled died"
      kill -KILL "$helper_pid" 2>/dev/null || true
    else
      pass "$label/helper-exits"
    fi
  else
    fail "$label/helper-exits" "no sshuttle-helper child found"
  fi
}

# A: our agent, TCP in ssh's channels (the default path). A-agent: the same through the agent.
failed_before=$FAILS
run_checks A "$CONCURRENT" ssh
((FAILS == failed_before)) || show_log
failed_before=$FAILS
run_checks A-agent "$CONCURRENT" "agent (--tcp-path agent)" --tcp-path agent
((FAILS == failed_before)) || show_log

# F: a server that forbids forwarding (a second sshd, AllowTcpForwarding no): the first
# connection fails on ssh, goes through the agent, and the tunnel says why and stays there.
# The user sees no failed connection: every check of a run passes.
failed_before=$FAILS
run_checks F "$CONCURRENT" "agent (server forbids forwarding)" -r "$LAB_SSH_HOST:$NOFWD_PORT" \
  -e "ssh -F $LAB_SSH_CONFIG -o HostKeyAlias=$LAB_SERVER_IP4"
if ! want F; then
  :
elif grep -q "the server refuses TCP forwarding through ssh" "$daemon_log" &&
  (($(grep -c "refuses TCP forwarding" "$daemon_log") == 1)); then
  pass "F/said-once-why"
else
  fail "F/said-once-why" "want one 'the server refuses TCP forwarding' line in $daemon_log"
fi
((FAILS == failed_before)) || show_log

if ((STOCK_SERVER_OK)); then
  # The stock server's DNS goes to the lab's resolver explicitly (to_nameserver), never
  # to a resolver outside the lab.
  failed_before=$FAILS
  run_checks B "$STOCK_WAVE" ssh --server-cmd "$PY -c 'import sshuttle.server as s; s.main(True, 32768, False, \"$LAB_TARGET_IP4@53\", False)'"
  ((FAILS == failed_before)) || show_log
else
  echo "SKIP B: Debian's sshuttle package (python3-sshuttle server) is not installed"
fi

# run_error NAME EXPECTED [sshuttled args...]: sshuttled must fail with status 99 within 20 s,
# saying EXPECTED (a fixed string) in its one-line explanation, and leave no rule.
run_error() {
  local name=$1 expected=$2 rc=0 out
  shift 2
  want errors || return 0
  out=$(timeout 20 ip netns exec "$LAB_NS_CLIENT" "$SSHUTTLED" --name "$TUNNEL_NAME" \
    -r "$LAB_SSH_HOST" -l "127.0.0.1:$LISTEN_PORT" "$@" "$LAB_TARGET_NET4" 2>&1) || rc=$?
  if [[ $rc == 99 && "$out" == *"$expected"* && -z "$(sshuttle_rules)" ]]; then
    pass "$name ($(grep -m1 fatal <<<"$out" | cut -c1-140))"
  else
    fail "$name" "exit $rc, rules '$(sshuttle_rules)', said: $(tail -c 400 <<<"$out")"
  fi
}

! want errors || echo "== start failures, each explained in one line"
run_error "error/no-python" "check --python" -e "ssh -F $LAB_SSH_CONFIG" --python /nonexistent/python3
run_error "error/ssh-failed" "ssh failed (exit 255)" -e "ssh -F $LAB_SSH_CONFIG -p 1"
run_error "error/not-sshuttle" 'not-sshuttle\n' -e "ssh -F $LAB_SSH_CONFIG" \
  --server-cmd "echo not-sshuttle"

# -H: the names the server reports reach /etc/hosts through the helper, and leave with the
# tunnel. sshuttled (and its helper child) see a scratch file bind-mounted over /etc/hosts in a
# private mount namespace; the machine's own /etc/hosts must not change at all.
run_auto_hosts() {
  local label=auto-hosts hosts="$LAB_DIR/hosts" before after started=0
  want auto-hosts || return 0
  echo "== run $label"
  printf '127.0.0.1 localhost\n' >"$hosts"
  before=$(sha256sum /etc/hosts)
  daemon_log="$LAB_DIR/logs/sshuttled-$label.log"
  ip netns exec "$LAB_NS_CLIENT" unshare -m --propagation private \
    sh -c 'mount --bind "$1" /etc/hosts && shift && exec "$@"' sh "$hosts" \
    "$SSHUTTLED" -v --name "$TUNNEL_NAME" -r "$LAB_SSH_HOST" -e "ssh -F $LAB_SSH_CONFIG" \
    -l "127.0.0.1:$LISTEN_PORT" -H --seed-hosts "$LAB_DNS_NAME" "$LAB_TARGET_NET4" \
    >"$daemon_log" 2>&1 &
  daemon_pid=$!  # ip netns exec, unshare and sh all exec: this is sshuttled's PID
  for _ in $(seq 150); do
    grep -q "Connected to server" "$daemon_log" && { started=1; break; }
    kill -0 "$daemon_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ((!started)); then
    fail "$label/start" "no 'Connected to server' within 15 s"
    stop_daemon_hard
    return 0
  fi
  for _ in $(seq 100); do  # 10 s: the agent resolves the seed through the lab's resolver
    grep -Eq "^$LAB_TARGET_IP4 $LAB_DNS_NAME\$" "$hosts" && break
    sleep 0.1
  done
  if grep -Eq "^$LAB_TARGET_IP4 $LAB_DNS_NAME\$" "$hosts" && grep -q '^# sshuttle-helper begin' "$hosts"; then
    pass "$label/seed-in-hosts ($(grep -c . "$hosts") lines)"
  else
    fail "$label/seed-in-hosts" "hosts file: $(tr '\n' '|' <"$hosts" | head -c 300)"
  fi
  check_http "$label/http"
  stop_daemon_hard 50  # SIGTERM, 5 s, then SIGKILL
  if [[ "$(cat "$hosts")" == "127.0.0.1 localhost" ]]; then
    pass "$label/hosts-restored-after-stop"
  else
    fail "$label/hosts-restored-after-stop" "hosts file: $(tr '\n' '|' <"$hosts" | head -c 300)"
  fi
  after=$(sha256sum /etc/hosts)
  [[ "$before" == "$after" ]] && pass "$label/machine-hosts-untouched" ||
    fail "$label/machine-hosts-untouched" "/etc/hosts changed"
  check_no_rules "$label/no-rules-after-stop"
}
failed_before=$FAILS
run_auto_hosts
((FAILS == failed_before)) || show_log

# IPv6: an IPv6 listener and the target's IPv6 subnet; the original destination comes from
# SO_ORIGINAL_DST on the IPv6 socket (IP6T_SO_ORIGINAL_DST) and TCP_CONNECT carries family 10.
run_ipv6() {
  local label=ipv6 body
  want ipv6 || return 0
  echo "== run $label"
  start_daemon "$label" -l "127.0.0.1:$LISTEN_PORT,[::1]:$LISTEN_PORT" \
    "$LAB_TARGET_NET4" "$LAB_TARGET_NET6" || return 0
  pass "$label/start"
  check_rules "$label/rules-applied" "inet sshuttle_$TUNNEL_NAME"
  local table
  table=$(lab_exec client nft list table inet "sshuttle_$TUNNEL_NAME" 2>&1) || true
  if grep -q "ip6 daddr $LAB_TARGET_NET6" <<<"$table"; then
    pass "$label/ip6-rule"
  else
    fail "$label/ip6-rule" "no ip6 daddr $LAB_TARGET_NET6 rule in the table"
  fi
  if body=$(lab_exec client curl -sS --max-time 10 "http://[$LAB_TARGET_IP6]/" 2>&1) &&
    [[ "$body" == *"$LAB_HTTP_MARKER"* ]]; then
    pass "$label/http-over-ipv6"
  else
    fail "$label/http-over-ipv6" "curl gave '${body:0:200}'"
  fi
  check_http "$label/http-over-ipv4"
  stop_daemon_hard 50  # SIGTERM, 5 s, then SIGKILL
  check_no_rules "$label/no-rules-after-stop"
}
failed_before=$FAILS
run_ipv6
((FAILS == failed_before)) || show_log

# --ssh-connections 3: 30 connections spread 10/10/10 over three masters; killing one master
# ends its 10 and no other, the tunnel says so and keeps serving new connections.
run_multi() {
  local label=multi flag="$LAB_DIR/hold.flag" out="$LAB_DIR/hold.out" hold_pid m1 per ups
  want multi || return 0
  echo "== run $label"
  start_daemon "$label" --ssh-connections 3 "$LAB_TARGET_NET4" || return 0
  pass "$label/start"
  for _ in $(seq 100); do
    ups=$(status_get '" ".join(m["state"] for m in s["ssh_connections"])')
    [[ "$ups" == "up up up" ]] && break
    sleep 0.1
  done
  [[ "$ups" == "up up up" ]] && pass "$label/three-up" || fail "$label/three-up" "masters: $ups"
  rm -f "$flag"
  lab_exec client "$PY" "$STREAMS" hold "$LAB_TARGET_IP4" "$ECHO_PORT" 30 "$flag" 60 >"$out" 2>&1 &
  hold_pid=$!
  for _ in $(seq 200); do grep -q "^held" "$out" && break; sleep 0.1; done
  per=$(status_get '" ".join(str(m["channels"]) for m in s["ssh_connections"])')
  if grep -qx "held 30" "$out" && [[ "$per" == "10 10 10" ]]; then
    pass "$label/spread-10-10-10"
  else
    fail "$label/spread-10-10-10" "holder said '$(head -c 200 "$out")', channels per master '$per'"
  fi
  # The bytes of held connections are read from the kernel (sock_diag) within a second: each
  # of the 30 sent and got back "hold N\n" (7 or 8 bytes), 230 bytes each way.
  local bytes=""
  for _ in $(seq 30); do
    bytes=$(status_get '"%d %d" % (s["bytes"]["ssh_in"], s["bytes"]["ssh_out"])')
    [[ "$bytes" == "230 230" ]] && break
    sleep 0.1
  done
  [[ "$bytes" == "230 230" ]] && pass "$label/bytes-from-kernel (in/out $bytes)" ||
    fail "$label/bytes-from-kernel" "status bytes.ssh_in/ssh_out '$bytes', want '230 230'"
  # Master 1 is the ssh child of sshuttled whose ControlPath ends in /m1.
  m1=$(ps -o pid=,args= --ppid "$daemon_pid" | awk '/ControlPath=[^ ]*\/m1 / { print $1; exit }')
  if [[ -n "$m1" ]]; then
    kill -KILL "$m1"
    for _ in $(seq 50); do
      per=$(status_get '" ".join(m["state"] + ":" + str(m["channels"]) for m in s["ssh_connections"])')
      [[ "$per" == "up:10 gone:0 up:10" ]] && break
      sleep 0.1
    done
    if [[ "$per" == "up:10 gone:0 up:10" ]] && grep -q "ssh connection 1 was killed by signal 9" "$daemon_log"; then
      pass "$label/master-killed-reported ($per)"
    else
      fail "$label/master-killed-reported" "status '$per'; log: $(grep 'ssh connection 1' "$daemon_log" | tail -n 2)"
    fi
  else
    fail "$label/master-killed-reported" "no ssh child with ControlPath .../m1"
  fi
  touch "$flag"
  wait "$hold_pid" 2>/dev/null || true
  if grep -qx "alive 20 dead 10" "$out"; then
    pass "$label/only-its-channels-ended"
  else
    fail "$label/only-its-channels-ended" "holder said '$(tail -n 1 "$out")', want 'alive 20 dead 10'"
  fi
  check_http "$label/http-after-master-killed"
  check_path "$label" ssh
  stop_daemon_hard 50  # SIGTERM, 5 s, then SIGKILL
  check_no_rules "$label/no-rules-after-stop"
}
failed_before=$FAILS
run_multi
((FAILS == failed_before)) || show_log

# An ssh that makes no control socket (here: the user's -e turns ControlMaster off, and options
# in -e win): TCP goes through the agent, said once. And --tcp-path ssh: a refused port is a
# reset, never a retry through the agent.
run_paths() {
  local label=nomux rc
  want paths || return 0
  echo "== run $label"
  start_daemon "$label" -e "ssh -F $LAB_SSH_CONFIG -o ControlMaster=no" "$LAB_TARGET_NET4" || return 0
  check_http "$label/http"
  check_path "$label" "agent (ssh made no control socket"
  if (($(grep -c "TCP goes through the agent: ssh made no control socket" "$daemon_log") == 1)); then
    pass "$label/said-once"
  else
    fail "$label/said-once" "want one 'TCP goes through the agent' line in $daemon_log"
  fi
  stop_daemon_hard 50  # SIGTERM, 5 s, then SIGKILL
  # The stock server behind an sshd that forbids forwarding: no CONNECT_ERROR there, so the
  # agent's first TCP_DATA tells that it connected where ssh could not.
  if ((STOCK_SERVER_OK)); then
    label=F-stock
    echo "== run $label"
    start_daemon "$label" -r "$LAB_SSH_HOST:$NOFWD_PORT" \
      -e "ssh -F $LAB_SSH_CONFIG -o HostKeyAlias=$LAB_SERVER_IP4" \
      --server-cmd "$PY -c 'import sshuttle.server as s; s.main(True, 32768, False, None, False)'" \
      "$LAB_TARGET_NET4" || return 0
    check_http "$label/http"
    check_http "$label/http-again"
    check_path "$label" "agent (server forbids forwarding)"
    stop_daemon_hard 50  # SIGTERM, 5 s, then SIGKILL
  fi
  label=ssh-only
  echo "== run $label"
  start_daemon "$label" --tcp-path ssh "$LAB_TARGET_NET4" || return 0
  check_http "$label/http"
  rc=0
  lab_exec client curl -sS --max-time 10 -o /dev/null "http://$LAB_TARGET_IP4:9/" >/dev/null 2>&1 || rc=$?
  [[ "$rc" == 56 || "$rc" == 7 ]] && pass "$label/refused-port-reset (curl exit $rc)" ||
    fail "$label/refused-port-reset" "curl exit $rc, want 56 or 7"
  check_path "$label" ssh
  local agent
  agent=$(status_get 's["tcp_connections"]["agent"]')
  [[ "$agent" == 0 ]] && pass "$label/never-the-agent" ||
    fail "$label/never-the-agent" "$agent connection(s) went through the agent"
  stop_daemon_hard 50  # SIGTERM, 5 s, then SIGKILL
  check_no_rules "$label/no-rules-after-stop"
}
failed_before=$FAILS
run_paths
((FAILS == failed_before)) || show_log

# tproxy runs without DNS: sshuttled refuses --ns-hosts with tproxy (see check_supported).
for spec in "nat:1:-A sshuttle_tt .*REDIRECT" "tproxy:0:0x5348"; do
  failed_before=$FAILS
  IFS=: read -r method dns pattern <<<"$spec"
  run_method "$method" "$pattern" "$dns"
  ((FAILS == failed_before)) || show_log
done

if ((FAILS > 0)); then
  echo "$FAILS check(s) failed; logs in $LAB_DIR/logs (LAB_KEEP=1 keeps them)"
  exit 1
fi
echo "all checks passed"

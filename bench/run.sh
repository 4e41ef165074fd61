#!/usr/bin/env bash
# bench/run.sh: one benchmark run through the lab, same workload for every contender.
#
#   sudo bench/run.sh [--quick] [--report FILE] [--only "raw sshL sshuttle ours oursdeb"]
#
# Brings up its own lab (tests/lab/lab.sh), tears it down on exit (trap), and measures:
#   raw      raw ssh stream: benchtool source | ssh lab-server 'benchtool sink' (and reverse)
#   sshL     ssh -N -L to the target's iperf3 and to our echo server
#   sshuttle Debian's sshuttle 1.1 client (--method nat, its own iptables rules in the client
#            namespace) with its own uploaded server
#   ours     sshuttled with our agent; its private sshuttle-helper installs the nft rules
#            (the helper sits idle in the process tree while the traffic flows)
#   oursdeb  sshuttled with Debian's sshuttle server via --server-cmd
# Metrics: iperf3 single-stream and 8-stream throughput up and down (-R), new connections per
# second (connect + 1-byte echo + close, 16 in flight), 64-byte round trip p50/p99 over one
# connection, concurrent idle connections (each proven by an echo, spread over several
# processes) with the tunnel process's RSS while they are held, peak RSS (VmHWM), and CPU
# seconds per GB (utime+stime from /proc, before/after the single-stream transfers) for the
# tunnel's client process, its whole process tree (ssh included) and the server namespace.
# Prints a table with ratios and writes a markdown report (default bench/REPORT.md; with
# --quick the report goes to the run directory unless --report is given).
#
# Exit: 0 the run completed (targets missed or not), 1 the harness failed, 77 skip (not root,
# a tool or a binary missing). Every wait is bounded.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TOP=$(cd "$HERE/.." && pwd)
BUILD=${BENCH_BUILD:-$TOP/build-bench}
SSHUTTLED=${SSHUTTLED:-$BUILD/daemon/sshuttled}
BENCHTOOL=${BENCHTOOL:-$BUILD/bench/benchtool}
PY=/usr/bin/python3
PATH=/usr/sbin:/usr/bin:/sbin:/bin

QUICK=0
REPORT=""
ONLY="raw sshL sshuttle ours oursdeb"
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --report) REPORT=${2:?--report needs a file}; shift ;;
    --only) ONLY=${2:?--only needs a list}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if ((QUICK)); then
  T=1 RTT_COUNT=300 CONN_SECONDS=1 IDLE_N=400 IDLE_PROCS=2 IDLE_MAX=30
else
  T=5 RTT_COUNT=10000 CONN_SECONDS=5 IDLE_N=15000 IDLE_PROCS=4 IDLE_MAX=90
fi
CONN_CONC=16
RTT_SIZE=64
ECHO_PORT=7100          # benchtool serve in the target (the lab's socat echo has backlog 5)
# Each contender gets its own echo port (ECHO_PORT + its index in ECHO_CONTENDERS): tens of
# thousands of short connections per contender leave TIME_WAIT entries on the server side,
# and with one shared port the later contenders ran out of ephemeral ports toward the target
# (failed connects that were the harness's, not the tunnel's).
ECHO_CONTENDERS="sshL sshuttle ours oursdeb"
LISTEN_PORT=12310       # sshuttled's listener, away from sshuttle 1.1's own (12300 down)
FWD_IPERF=15201 FWD_ECHO=17100   # ssh -L local ports

# shellcheck source-path=SCRIPTDIR source=../tests/lab/lab.sh
source "$TOP/tests/lab/lab.sh"

if ((EUID != 0)); then echo "SKIP: needs root (network namespaces)"; exit 77; fi
for tool in iperf3 nft iptables ssh sshuttle "$PY" /usr/bin/time; do
  command -v "$tool" >/dev/null 2>&1 || { echo "SKIP: $tool missing"; exit 77; }
done
for bin in "$SSHUTTLED" "$BENCHTOOL"; do
  [[ -x "$bin" ]] || { echo "SKIP: $bin is not built (meson setup build-bench -Dbuildtype=release; ninja -C build-bench)"; exit 77; }
done
STOCK_SERVER="/usr/lib/python3/dist-packages/sshuttle/server.py"
[[ -f "$STOCK_SERVER" ]] || { echo "SKIP: Debian's sshuttle server is not installed"; exit 77; }

log() { printf 'bench: %s\n' "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Lab, cleanup

lab_is_up=0
tunnel_pid=""
echo_pids=()
idle_pids=()
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  stop_pid "$tunnel_pid" || true
  for p in "${idle_pids[@]}"; do stop_pid "$p" || true; done
  for p in "${echo_pids[@]}"; do stop_pid "$p" || true; done
  # BENCH_LOGS=DIR keeps the run's logs (daemon logs, load generator errors) past the teardown.
  if [[ -n "${BENCH_LOGS:-}" && -n "${RUN:-}" && -d "$RUN" ]]; then
    mkdir -p "$BENCH_LOGS" && cp -r "$RUN/." "$BENCH_LOGS/" || true
  fi
  if ((lab_is_up)); then lab_down "$LAB_DIR" >/dev/null 2>&1 || true; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Stops one PID we started: SIGTERM, up to 5 s, then SIGKILL; reaps it.
stop_pid() {
  local pid=${1:-}
  [[ -n "$pid" ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

lab_rc=0
lab_up || lab_rc=$?
if ((lab_rc != 0)); then
  ((lab_rc == 77)) && { echo "SKIP: the lab cannot run here"; exit 77; }
  echo "bench: lab.sh up failed ($lab_rc)"; exit 1
fi
lab_is_up=1
RUN=$LAB_DIR/bench
mkdir -p "$RUN"
RESULTS=$RUN/results.txt
: >"$RESULTS"
[[ -n "$REPORT" ]] || { if ((QUICK)); then REPORT=$RUN/REPORT.md; else REPORT=$TOP/bench/REPORT.md; fi; }
CFG=$LAB_SSH_CONFIG
TGT=$LAB_TARGET_IP4

# result CONTENDER METRIC VALUE
result() { printf '%s %s %s\n' "$1" "$2" "$3" >>"$RESULTS"; }

# Many short connections and 15,000 idle ones: widen the port range, reuse TIME_WAIT, allow
# long accept queues. These are per-namespace sysctls of namespaces this run created.
for host in client server target; do
  lab_exec "$host" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1 \
    net.core.somaxconn=65535 net.ipv4.tcp_max_syn_backlog=65535 >/dev/null
done

# echo_port CONTENDER: that contender's echo port.
echo_port() {
  local i=0 c
  for c in $ECHO_CONTENDERS; do
    [[ "$c" == "$1" ]] && { echo $((ECHO_PORT + i)); return; }
    i=$((i + 1))
  done
  echo "$ECHO_PORT"
}
for c in $ECHO_CONTENDERS; do
  port=$(echo_port "$c")
  ip netns exec "$LAB_NS_TARGET" "$BENCHTOOL" serve "$TGT" "$port" >"$RUN/echo-server-$c.log" 2>&1 &
  echo_pids+=("$!")
  for _ in $(seq 50); do
    lab_exec target ss -Hltn "sport = :$port" | grep -q . && break
    sleep 0.1
  done
  lab_exec target ss -Hltn "sport = :$port" | grep -q . || { echo "bench: echo server on $port did not start"; exit 1; }
done

# ---------------------------------------------------------------------------------------------
# Process accounting

CLK_TCK=$(getconf CLK_TCK)
descendants() {
  local p=$1 c
  echo "$p"
  # shellcheck disable=SC2013  # the children files hold space-separated PIDs
  for c in $(cat /proc/"$p"/task/*/children 2>/dev/null); do descendants "$c"; done
}
# Sum of utime+stime (clock ticks) over the given PIDs (vanished ones count 0).
ticks() {
  local sum=0 p s
  for p in "$@"; do
    s=$(cat /proc/"$p"/stat 2>/dev/null) || continue
    s=${s##*) }
    read -r -a f <<<"$s"
    sum=$((sum + f[11] + f[12]))
  done
  echo "$sum"
}
server_pids() { ip netns pids "$LAB_NS_SERVER" 2>/dev/null; }
# The Python processes among them: our agent, sshuttle's server (the rest is sshd).
server_py_pids() {
  local p
  for p in $(server_pids); do
    [[ "$(cat /proc/"$p"/comm 2>/dev/null)" == python* ]] && echo "$p"
  done
  return 0
}
# status_kb PID FIELD -> kB (VmRSS, VmHWM)
status_kb() { awk -v f="$2:" '$1 == f {print $2}' /proc/"$1"/status 2>/dev/null || echo 0; }

# ---------------------------------------------------------------------------------------------
# Workloads (each prints nothing; records results). Processes whose PID matters are started
# with a plain `ip netns exec` (which execs), never through the lab_exec function (a subshell).

# iperf NAME IP PORT STREAMS [-R]: throughput in Mbit/s; for single streams also CPU per GB.
# shellcheck disable=SC2046,SC2086  # PID lists and the optional -R are meant to split
run_iperf() {
  local name=$1 c=$2 ip=$3 port=$4 streams=$5 rev=${6:-} out mbps bytes t0c t1c t0s t1s t0t t1t t0p t1p dir pypids
  dir=up; [[ -n "$rev" ]] && dir=down
  local metric="${dir}${streams}"
  pypids=$(server_py_pids)
  t0c=$(ticks "$tunnel_pid"); t0t=$(ticks $(descendants "$tunnel_pid")); t0s=$(ticks $(server_pids))
  t0p=$(ticks $pypids)
  out=""
  for _ in 1 2; do  # iperf3 answers "busy" for a moment after the previous test
    out=$(lab_exec client timeout $((T + 30)) iperf3 -c "$ip" -p "$port" -t "$T" -P "$streams" \
      $rev -J --connect-timeout 5000 2>/dev/null) && break
    out=""
    sleep 1
  done
  t1c=$(ticks "$tunnel_pid"); t1t=$(ticks $(descendants "$tunnel_pid")); t1s=$(ticks $(server_pids))
  t1p=$(ticks $pypids)
  if [[ -z "$out" ]]; then
    log "$c: iperf3 $metric failed"; result "$c" "$metric" fail; return 0
  fi
  read -r mbps bytes < <("$PY" -c '
import json, sys
d = json.load(sys.stdin)["end"]["sum_received"]
print("%.0f %d" % (d["bits_per_second"] / 1e6, d["bytes"]))' <<<"$out") || { result "$c" "$metric" fail; return 0; }
  result "$c" "$metric" "$mbps"
  log "$c: $metric $mbps Mbit/s"
  if ((streams == 1)) && ((bytes > 0)); then
    local gb
    gb=$("$PY" -c "print($bytes / 1e9)")
    result "$c" "cpu_${dir}_proc" "$("$PY" -c "print('%.2f' % (($t1c - $t0c) / $CLK_TCK / $gb))")"
    result "$c" "cpu_${dir}_tree" "$("$PY" -c "print('%.2f' % (($t1t - $t0t) / $CLK_TCK / $gb))")"
    result "$c" "cpu_${dir}_server" "$("$PY" -c "print('%.2f' % (($t1s - $t0s) / $CLK_TCK / $gb))")"
    if [[ -n "$pypids" ]]; then
      result "$c" "cpu_${dir}_serverpy" "$("$PY" -c "print('%.2f' % (($t1p - $t0p) / $CLK_TCK / $gb))")"
    fi
  fi
}

run_rtt() {
  local c=$1 ip=$2 port=$3 out
  if out=$(lab_exec client timeout 120 "$BENCHTOOL" rtt "$ip" "$port" "$RTT_COUNT" "$RTT_SIZE" 2>>"$RUN/$c.err"); then
    read -r p50 p99 _ _ <<<"$out"
    result "$c" rtt_p50 "$p50"; result "$c" rtt_p99 "$p99"
    log "$c: rtt p50 $p50 us p99 $p99 us"
  else
    result "$c" rtt_p50 fail; result "$c" rtt_p99 fail
  fi
}

run_connrate() {
  local c=$1 ip=$2 port=$3 out
  if out=$(lab_exec client timeout $((CONN_SECONDS + 30)) "$BENCHTOOL" connrate "$ip" "$port" \
    "$CONN_SECONDS" "$CONN_CONC" 2>>"$RUN/$c.err"); then
    read -r ok fail _ rate <<<"$out"
    result "$c" conn_rate "$rate"; result "$c" conn_fail "$fail"
    log "$c: $rate conn/s ($ok ok, $fail failed)"
  else
    result "$c" conn_rate fail
  fi
}

# Idle connections, spread over IDLE_PROCS processes; RSS of the tunnel process while held.
run_idle() {
  local c=$1 ip=$2 port=$3 i per go held=0 still=0 failed=0 ready n rss agent_rss=0 p
  per=$(((IDLE_N + IDLE_PROCS - 1) / IDLE_PROCS))
  go=$RUN/idle-go-$c
  rm -f "$go"
  idle_pids=()
  for ((i = 0; i < IDLE_PROCS; i++)); do
    ip netns exec "$LAB_NS_CLIENT" "$BENCHTOOL" idle "$ip" "$port" "$per" "$go" "$IDLE_MAX" \
      >"$RUN/idle-$c-$i.out" 2>>"$RUN/$c.err" &
    idle_pids+=("$!")
  done
  for _ in $(seq $(((IDLE_MAX + 20) * 10))); do
    ready=0
    for ((i = 0; i < IDLE_PROCS; i++)); do
      grep -q '^held' "$RUN/idle-$c-$i.out" 2>/dev/null && ready=$((ready + 1))
    done
    ((ready == IDLE_PROCS)) && break
    sleep 0.1
  done
  sleep 1  # let the tunnel settle with everything held
  rss=0
  if [[ -n "$tunnel_pid" ]] && kill -0 "$tunnel_pid" 2>/dev/null; then rss=$(status_kb "$tunnel_pid" VmRSS); fi
  # The biggest process on the server side (our agent, sshuttle's server or sshd).
  for p in $(server_pids); do
    n=$(status_kb "$p" VmRSS); n=${n:-0}
    ((n > agent_rss)) && agent_rss=$n
  done
  touch "$go"
  for p in "${idle_pids[@]}"; do
    for _ in $(seq 300); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    stop_pid "$p"
  done
  idle_pids=()
  for ((i = 0; i < IDLE_PROCS; i++)); do
    n=$(awk '/^held/ {print $2}' "$RUN/idle-$c-$i.out"); held=$((held + ${n:-0}))
    n=$(awk '/^held/ {print $4}' "$RUN/idle-$c-$i.out"); failed=$((failed + ${n:-0}))
    n=$(awk '/^still/ {print $2}' "$RUN/idle-$c-$i.out"); still=$((still + ${n:-0}))
  done
  result "$c" idle_target "$((per * IDLE_PROCS))"
  result "$c" idle_held "$held"; result "$c" idle_still "$still"; result "$c" idle_failed "$failed"
  result "$c" idle_rss_mb "$((rss / 1024))"; result "$c" idle_server_rss_mb "$((agent_rss / 1024))"
  log "$c: idle held $held, still $still after the RSS reading, failed $failed; RSS $((rss / 1024)) MB (server side max $((agent_rss / 1024)) MB)"
}

tunnel_alive() { [[ -n "$tunnel_pid" ]] && kill -0 "$tunnel_pid" 2>/dev/null; }

# Runs all workloads of a tunnel-like contender (iperf at IP:IPORT, echo at IP:EPORT).
run_all() {
  local c=$1 ip=$2 iport=$3 eport=$4
  result "$c" rss_start_mb "$(($(status_kb "$tunnel_pid" VmRSS) / 1024))"
  run_iperf "$c" "$c" "$ip" "$iport" 1
  run_iperf "$c" "$c" "$ip" "$iport" 1 -R
  run_iperf "$c" "$c" "$ip" "$iport" 8
  run_iperf "$c" "$c" "$ip" "$iport" 8 -R
  run_rtt "$c" "$ip" "$eport"
  run_connrate "$c" "$ip" "$eport"
  tunnel_alive && result "$c" rss_peak_mb "$(($(status_kb "$tunnel_pid" VmHWM) / 1024))"
  run_idle "$c" "$ip" "$eport"
  if tunnel_alive; then
    result "$c" rss_peak_idle_mb "$(($(status_kb "$tunnel_pid" VmHWM) / 1024))"
    result "$c" survived yes
  else
    result "$c" survived no
    log "$c: the tunnel process died during the idle test"
  fi
}

# wait_log FILE PATTERN SECONDS: true once the pattern shows up, false if the tunnel died.
wait_log() {
  for _ in $(seq $(($3 * 10))); do
    grep -q "$2" "$1" 2>/dev/null && return 0
    tunnel_alive || return 1
    sleep 0.1
  done
  return 1
}

# ---------------------------------------------------------------------------------------------
# Contenders

bench_raw() {
  local out cpu bytes hs=0
  result raw cmd "'benchtool source $T | ssh -F \$CFG lab-server benchtool sink' and the reverse"
  # The ssh client's CPU for connecting alone (key exchange, auth), subtracted from the totals.
  if lab_exec client /usr/bin/time -f 'CPU %U %S' -o "$RUN/raw-hs.time" \
    ssh -F "$CFG" "$LAB_SSH_HOST" true 2>>"$RUN/raw.err"; then
    hs=$(awk '/^CPU/ {print $2 + $3}' "$RUN/raw-hs.time")
  fi
  result raw ssh_connect_cpu_s "$hs"
  # Up: the remote sink times from its first byte; /usr/bin/time gives the client ssh's CPU.
  out=$("$BENCHTOOL" source "$T" | lab_exec client /usr/bin/time -f 'CPU %U %S' -o "$RUN/raw-up.time" \
    ssh -F "$CFG" "$LAB_SSH_HOST" "$BENCHTOOL sink" 2>>"$RUN/raw.err") || out=""
  if [[ -n "$out" ]]; then
    read -r bytes _ mbps <<<"$out"
    result raw up1 "${mbps%.*}"
    cpu=$(awk -v hs="$hs" '/^CPU/ {c = $2 + $3 - hs; print (c > 0 ? c : 0)}' "$RUN/raw-up.time")
    result raw cpu_up_proc "$("$PY" -c "print('%.2f' % ($cpu / ($bytes / 1e9)))")"
    log "raw: up1 $mbps Mbit/s"
  else
    result raw up1 fail
  fi
  out=$(lab_exec client /usr/bin/time -f 'CPU %U %S' -o "$RUN/raw-down.time" \
    ssh -F "$CFG" "$LAB_SSH_HOST" "$BENCHTOOL source $T" 2>>"$RUN/raw.err" | "$BENCHTOOL" sink) || out=""
  read -r bytes _ mbps <<<"$out"
  if [[ -n "$out" && "$bytes" -gt 0 ]]; then
    result raw down1 "${mbps%.*}"
    cpu=$(awk -v hs="$hs" '/^CPU/ {c = $2 + $3 - hs; print (c > 0 ? c : 0)}' "$RUN/raw-down.time")
    result raw cpu_down_proc "$("$PY" -c "print('%.2f' % ($cpu / ($bytes / 1e9)))")"
    log "raw: down1 $mbps Mbit/s"
  else
    result raw down1 fail
  fi
}

bench_sshL() {
  local c=sshL
  result $c cmd "'ssh -F \$CFG -N -o ExitOnForwardFailure=yes -L 127.0.0.1:$FWD_IPERF:$TGT:$LAB_IPERF_PORT -L 127.0.0.1:$FWD_ECHO:$TGT:$(echo_port sshL) lab-server'"
  ip netns exec "$LAB_NS_CLIENT" ssh -F "$CFG" -N -o ExitOnForwardFailure=yes \
    -L "127.0.0.1:$FWD_IPERF:$TGT:$LAB_IPERF_PORT" -L "127.0.0.1:$FWD_ECHO:$TGT:$(echo_port sshL)" \
    "$LAB_SSH_HOST" >"$RUN/$c.log" 2>&1 &
  tunnel_pid=$!
  for _ in $(seq 100); do
    lab_exec client ss -Hltn "sport = :$FWD_ECHO" | grep -q . && break
    tunnel_alive || break
    sleep 0.1
  done
  if ! lab_exec client ss -Hltn "sport = :$FWD_ECHO" | grep -q .; then
    log "ssh -L did not come up"; result $c start fail; stop_pid "$tunnel_pid"; tunnel_pid=""; return 0
  fi
  run_all $c 127.0.0.1 "$FWD_IPERF" "$FWD_ECHO"
  stop_pid "$tunnel_pid"; tunnel_pid=""
}

bench_sshuttle() {
  local c=sshuttle
  result $c cmd "'sshuttle --method nat -r lab-server -e \"ssh -F \$CFG\" $LAB_TARGET_NET4' ($(sshuttle --version))"
  ip netns exec "$LAB_NS_CLIENT" sshuttle --method nat -r "$LAB_SSH_HOST" -e "ssh -F $CFG" "$LAB_TARGET_NET4" \
    >"$RUN/$c.log" 2>&1 &
  tunnel_pid=$!
  if ! wait_log "$RUN/$c.log" "Connected to server" 20; then
    log "sshuttle did not connect"; tail -5 "$RUN/$c.log" >&2
    result $c start fail; stop_pid "$tunnel_pid"; tunnel_pid=""; return 0
  fi
  run_all $c "$TGT" "$LAB_IPERF_PORT" "$(echo_port sshuttle)"
  stop_pid "$tunnel_pid"; tunnel_pid=""
  # Its children (firewall, ssh) may outlive a slow stop; say so if its listener lingers.
  for _ in $(seq 100); do
    lab_exec client ss -Hltn "sport = :12300" | grep -q . || break
    sleep 0.1
  done
  if lab_exec client ss -Hltn "sport = :12300" | grep -q .; then
    log "sshuttle's listener on :12300 is still open 10 s after it was stopped:"
    lab_exec client ss -Hltnp "sport = :12300" >&2 || true
  fi
  # If it was killed (or crashed) its nat rules may remain: flush them, they are in our lab.
  if lab_exec client iptables-save -t nat 2>/dev/null | grep -q sshuttle; then
    log "sshuttle left iptables rules behind; flushing the client namespace's nat table"
    lab_exec client iptables -t nat -F; lab_exec client iptables -t nat -X
  fi
}

# bench_ours NAME [sshuttled args...]
bench_ours() {
  local c=$1
  shift
  result "$c" cmd "'sshuttled -r lab-server -e \"ssh -F \$CFG\" -l 127.0.0.1:$LISTEN_PORT $* $LAB_TARGET_NET4'"
  ip netns exec "$LAB_NS_CLIENT" "$SSHUTTLED" -r "$LAB_SSH_HOST" -e "ssh -F $CFG" -l "127.0.0.1:$LISTEN_PORT" "$@" "$LAB_TARGET_NET4" \
    >"$RUN/$c.log" 2>&1 &
  tunnel_pid=$!
  if ! wait_log "$RUN/$c.log" "Connected to server" 20; then
    log "$c: sshuttled did not connect"; tail -5 "$RUN/$c.log" >&2
    result "$c" start fail; stop_pid "$tunnel_pid"; tunnel_pid=""; return 0
  fi
  run_all "$c" "$TGT" "$LAB_IPERF_PORT" "$(echo_port "$c")"
  stop_pid "$tunnel_pid"; tunnel_pid=""
}

# ---------------------------------------------------------------------------------------------
# The run

machine_info() {
  result machine cores "$(nproc)"
  result machine kernel "$(uname -r)"
  result machine cpu "$(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo | tr ' ' '_')"
  result machine mem_gb "$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)"
  result machine nofile "$(ulimit -Hn)"
  result machine ssh "$(ssh -V 2>&1 | cut -d, -f1 | tr ' ' '_')"
  result machine python "$("$PY" -V | tr ' ' '_')"
  result machine date "$(date -u +%Y-%m-%dT%H:%MZ)"
}

machine_info
result machine load_start "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
result machine mode "$( ((QUICK)) && echo quick || echo full)"
result machine params "iperf3_t=${T}s rtt_count=$RTT_COUNT conn_s=$CONN_SECONDS conn_conc=$CONN_CONC idle_n=$IDLE_N idle_procs=$IDLE_PROCS"
start=$SECONDS
for c in $ONLY; do
  log "== $c"
  case "$c" in
    raw) bench_raw ;;
    sshL) bench_sshL ;;
    sshuttle) bench_sshuttle ;;
    ours) bench_ours ours ;;
    oursdeb) bench_ours oursdeb --server-cmd "$PY -c 'import sshuttle.server as s; s.main(True, 32768, False, None, False)'" ;;
    *) log "unknown contender $c"; exit 2 ;;
  esac
done
result machine load_end "$(cut -d' ' -f1-3 /proc/loadavg | tr ' ' '/')"
result machine seconds "$((SECONDS - start))"

"$PY" "$HERE/report.py" "$RESULTS" "$REPORT" "$HERE/analysis.md"
log "report written to $REPORT (raw results: $RESULTS)"
cp "$RESULTS" "${REPORT%.md}.results.txt" 2>/dev/null || true
# A contender that could not even start makes the run (and the bench-quick test) fail: the
# report would otherwise compare against nothing and still look green.
if failed=$(awk '$2 == "start" && $3 == "fail" { print $1 }' "$RESULTS" | sort -u | tr '\n' ' ') &&
  [[ -n "$failed" ]]; then
  log "FAILED: these contenders did not start: $failed"
  exit 1
fi

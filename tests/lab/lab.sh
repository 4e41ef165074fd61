#!/usr/bin/env bash
# tests/lab/lab.sh: the network-namespace test lab (see TESTING.md in the shared design folder).
#
# Three hosts, as network namespaces joined by veth pairs. Nothing routes out of the machine and
# the root namespace gets no address, route or link (veths are created inside the namespaces):
#
#   client ns  10.201.1.2/24 fd00:201:1::2/64   default routes via the server
#       | shl<id>c-s <-> shl<id>s-c
#   server ns  10.201.1.1/24 fd00:201:1::1/64   sshd :22, forwarding OFF (v4 and v6)
#              10.201.2.1/24 fd00:201:2::1/64
#       | shl<id>s-t <-> shl<id>t-s
#   target ns  10.201.2.2/24 fd00:201:2::2/64   http :80, tcp echo :7, udp echo :7,
#                                                iperf3 :5201, dns :53 (target.lab.test)
#
# The server does not forward, so the client reaches the target only through a tunnel; `up`
# proves that a direct connection fails. Outside its run directory `up` only creates
# /run/sshd (sshd's privilege separation directory) if missing, and `ip netns` its /run/netns.
#
# CLI (root only; exit 77 = skip when not root, netns unusable or a tool missing):
#   lab.sh up                    build a lab; stdout is one line `export LAB_DIR=...`
#                                (progress goes to stderr), so `eval "$(lab.sh up)"` works
#   lab.sh down [DIR]            tear down the lab in DIR or $LAB_DIR; idempotent. Stops the
#                                recorded services, then every process left inside the lab's
#                                namespaces, deletes the namespaces and the run directory
#   lab.sh status [DIR]          namespaces and services; exit 1 if anything is down
#   lab.sh check [DIR]           rerun the sanity checks
#   lab.sh env [DIR]             print the env file (shell assignments, LAB_*)
#   lab.sh exec HOST CMD...      run CMD in HOST's namespace (client|server|target),
#                                with the LAB_* variables exported
#   Exit codes: 0 ok, 1 failure, 2 usage, 77 skip.
#
# Library: `source tests/lab/lab.sh` defines the lab_* functions and changes no shell option:
#   lab_up, lab_down          run the CLI in a child bash (so `set -e` behaves the same in
#                             every caller); lab_up sets LAB_DIR and loads the env
#   lab_load [DIR]            source DIR/env and export its LAB_* variables
#   lab_ns HOST, lab_exec HOST CMD...
#   lab_check and lab_assert_* (http/echo/udp echo/dns/iperf3 from the server, ssh from the
#                             client, lab_assert_no_direct_route)
#   lab_www_file NAME KIB     a file of random bytes served by the target's HTTP server
#
# Knobs (environment):
#   LAB_DIR=DIR       run directory for `up` (must be absent or empty; default mktemp -d)
#   LAB_ID=ID         force the run id ([a-z0-9], 1-8 chars; default 6 random hex digits)
#   LAB_KEEP=1        `down` keeps the run directory (logs) instead of removing it
#   LAB_FAIL_AT=STEP  test hook: `up` fails after STEP (netns|links|sshd|services|checks)
#   LAB_BREAK_SERVICE=NAME  test hook: service NAME (see LAB_SERVICES) exits at once
#
# State lives in the run directory: env (LAB_* assignments, written before anything is
# created), pids/<service>.pid (PIDs we started), logs/, ssh/, www/, netns-created (namespaces
# this run created: the only ones teardown deletes).

# Fixed lab constants. Namespaces isolate addresses and ports, so two labs can share them.
_LAB_SERVICES="sshd http echo4 echo6 udpecho4 udpecho6 iperf3 dnsmasq"
_LAB_WAIT_TRIES=50         # readiness polls, 0.1 s apart: 5 s per service at most
_LAB_TERM_TRIES=30         # after SIGTERM, polls 0.1 s apart before SIGKILL: 3 s
_LAB_KILL_TRIES=10         # after SIGKILL, polls 0.1 s apart: 1 s
_LAB_MARKER=".sshuttle-lab"  # marks a run dir as ours: teardown removes no other directory
_LAB_SH=$(readlink -f "${BASH_SOURCE[0]}")
_LAB_HERE=$(dirname "$_LAB_SH")

# Every variable written to the env file, in order.
_LAB_ENV_VARS=(
  LAB_ID LAB_DIR LAB_PREFIX
  LAB_NS_CLIENT LAB_NS_SERVER LAB_NS_TARGET LAB_NAMESPACES
  LAB_IF_CLIENT LAB_IF_SERVER_CLIENT LAB_IF_SERVER_TARGET LAB_IF_TARGET
  LAB_CLIENT_IP4 LAB_CLIENT_IP6 LAB_SERVER_IP4 LAB_SERVER_IP6
  LAB_SERVER_TARGET_IP4 LAB_SERVER_TARGET_IP6 LAB_TARGET_IP4 LAB_TARGET_IP6
  LAB_CLIENT_NET4 LAB_CLIENT_NET6 LAB_TARGET_NET4 LAB_TARGET_NET6
  LAB_SSH_PORT LAB_HTTP_PORT LAB_ECHO_PORT LAB_UDP_ECHO_PORT LAB_IPERF_PORT LAB_DNS_PORT
  LAB_SSH_HOST LAB_SSH_HOST6 LAB_SSH_USER LAB_SSH_CONFIG LAB_SSH_CMD LAB_SSH_KEY
  LAB_SSH_HOST_KEY LAB_SSH_KNOWN_HOSTS LAB_SSHD_CONFIG
  LAB_WWW_DIR LAB_HTTP_MARKER LAB_DNS_NAME LAB_LOG_DIR LAB_PID_DIR LAB_SERVICES
  LAB_PIDFILE_SSHD LAB_PIDFILE_HTTP LAB_PIDFILE_ECHO4 LAB_PIDFILE_ECHO6
  LAB_PIDFILE_UDPECHO4 LAB_PIDFILE_UDPECHO6 LAB_PIDFILE_IPERF3 LAB_PIDFILE_DNSMASQ
)

# ---------------------------------------------------------------------------------------------
# Small helpers

_lab_log() { printf 'lab%s: %s\n' "${LAB_ID:+ $LAB_ID}" "$*" >&2; }

# Milliseconds since START (an $EPOCHREALTIME value), for progress messages.
_lab_ms_since() {
  local now=${EPOCHREALTIME/./} start=${1/./}
  printf '%d' "$(((now - start) / 1000))"
}

# Only used inside the CLI process: exiting fires the `up` trap, which tears down.
_lab_die() { _lab_log "ERROR: $*"; exit 1; }

# Sets every LAB_* name of a run from its id and run directory (pure: touches nothing).
# shellcheck disable=SC2034  # the names are read by the env file's users
_lab_define() {
  LAB_ID=$1
  LAB_DIR=$2
  LAB_PREFIX="shl$LAB_ID"
  LAB_NS_CLIENT="$LAB_PREFIX-client"
  LAB_NS_SERVER="$LAB_PREFIX-server"
  LAB_NS_TARGET="$LAB_PREFIX-target"
  LAB_NAMESPACES="$LAB_NS_CLIENT $LAB_NS_SERVER $LAB_NS_TARGET"
  # veth ends, named <host><peer>; at most 3+8+3 = 14 chars (IFNAMSIZ allows 15)
  LAB_IF_CLIENT="${LAB_PREFIX}c-s"
  LAB_IF_SERVER_CLIENT="${LAB_PREFIX}s-c"
  LAB_IF_SERVER_TARGET="${LAB_PREFIX}s-t"
  LAB_IF_TARGET="${LAB_PREFIX}t-s"
  LAB_CLIENT_IP4=10.201.1.2 LAB_CLIENT_IP6=fd00:201:1::2
  LAB_SERVER_IP4=10.201.1.1 LAB_SERVER_IP6=fd00:201:1::1
  LAB_SERVER_TARGET_IP4=10.201.2.1 LAB_SERVER_TARGET_IP6=fd00:201:2::1
  LAB_TARGET_IP4=10.201.2.2 LAB_TARGET_IP6=fd00:201:2::2
  LAB_CLIENT_NET4=10.201.1.0/24 LAB_CLIENT_NET6=fd00:201:1::/64
  LAB_TARGET_NET4=10.201.2.0/24 LAB_TARGET_NET6=fd00:201:2::/64
  LAB_SSH_PORT=22 LAB_HTTP_PORT=80 LAB_ECHO_PORT=7 LAB_UDP_ECHO_PORT=7
  LAB_IPERF_PORT=5201 LAB_DNS_PORT=53
  LAB_SSH_HOST=lab-server LAB_SSH_HOST6=lab-server6 LAB_SSH_USER=root
  LAB_SSH_CONFIG="$LAB_DIR/ssh_config"
  LAB_SSH_CMD="ssh -F $LAB_SSH_CONFIG"
  LAB_SSH_KEY="$LAB_DIR/ssh/client_ed25519"
  LAB_SSH_HOST_KEY="$LAB_DIR/ssh/host_ed25519"
  LAB_SSH_KNOWN_HOSTS="$LAB_DIR/ssh/known_hosts"
  LAB_SSHD_CONFIG="$LAB_DIR/ssh/sshd_config"
  LAB_WWW_DIR="$LAB_DIR/www"
  LAB_HTTP_MARKER="sshuttle lab target $LAB_ID"
  LAB_DNS_NAME=target.lab.test
  LAB_LOG_DIR="$LAB_DIR/logs"
  LAB_PID_DIR="$LAB_DIR/pids"
  LAB_SERVICES=$_LAB_SERVICES
  local svc var
  for svc in $_LAB_SERVICES; do
    var="LAB_PIDFILE_${svc^^}"
    printf -v "$var" '%s' "$LAB_PID_DIR/$svc.pid"
  done
}

# Writes the env file: NAME='value' lines that any POSIX shell can source.
_lab_write_env() {
  local var
  {
    printf '# sshuttle lab %s: source this file (lab.sh env prints it)\n' "$LAB_ID"
    for var in "${_LAB_ENV_VARS[@]}"; do
      [[ "${!var}" != *"'"* ]] || _lab_die "quote in $var"
      printf "%s='%s'\n" "$var" "${!var}"
    done
  } >"$LAB_DIR/env"
}

# True when PID is alive (a zombie counts as dead: it holds no socket and no namespace).
_lab_alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ "${stat%% *}" != [ZX] ]]
}

# Inode numbers of this run's namespaces, recorded at creation; they identify the namespace
# even after its name is gone.
_lab_ns_inodes() {
  [[ -f "$LAB_DIR/netns-inodes" ]] && cat "$LAB_DIR/netns-inodes"
  return 0
}

# True when PID is one of ours: it lives in one of this run's namespaces, or its command line
# names this run's directory. Guards against killing a reused PID.
_lab_pid_is_ours() {
  local pid=$1 cmdline netns ino
  [[ "$pid" =~ ^[0-9]+$ ]] && _lab_alive "$pid" || return 1
  netns=$(readlink "/proc/$pid/ns/net" 2>/dev/null) || netns=""
  for ino in $(_lab_ns_inodes); do
    [[ "$netns" == "net:[$ino]" ]] && return 0
  done
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
  [[ "$cmdline" == *"$LAB_DIR/"* ]]
}

# Stops PIDs that are ours: SIGTERM, a bounded wait, then SIGKILL and another bounded wait.
# Returns 1 if one survives.
_lab_stop_pids() {
  local pid i sig tries left=() next=()
  for pid in "$@"; do
    _lab_pid_is_ours "$pid" && left+=("$pid")
  done
  for sig in TERM KILL; do
    ((${#left[@]})) || return 0
    for pid in "${left[@]}"; do
      if _lab_pid_is_ours "$pid"; then kill "-$sig" "$pid" 2>/dev/null || true; fi
    done
    tries=$_LAB_TERM_TRIES
    [[ "$sig" == KILL ]] && tries=$_LAB_KILL_TRIES
    for ((i = 0; i < tries; i++)); do
      next=()
      for pid in "${left[@]}"; do
        _lab_alive "$pid" && next+=("$pid")
      done
      left=("${next[@]}")
      ((${#left[@]})) || return 0
      sleep 0.1
    done
    [[ "$sig" == TERM ]] && _lab_log "still alive after SIGTERM, sending SIGKILL: ${left[*]}"
  done
  _lab_log "could not stop: ${left[*]}"
  return 1
}

# Host name (client|server|target) to namespace name.
lab_ns() {
  case "${1:-}" in
    client) printf '%s\n' "$LAB_NS_CLIENT" ;;
    server) printf '%s\n' "$LAB_NS_SERVER" ;;
    target) printf '%s\n' "$LAB_NS_TARGET" ;;
    *) _lab_log "unknown host '${1:-}' (client|server|target)"; return 2 ;;
  esac
}

# Runs a command inside a host's namespace.
lab_exec() {
  local ns
  ns=$(lab_ns "${1:-}") || return 2
  shift
  ip netns exec "$ns" "$@"
}

# Loads a run's env file into the calling shell and exports the LAB_* variables.
lab_load() {
  local dir=${1:-${LAB_DIR:-}} var
  if [[ -z "$dir" || ! -f "$dir/env" ]]; then
    _lab_log "no lab env in '${dir}' (set LAB_DIR to the directory printed by lab.sh up)"
    return 1
  fi
  # shellcheck source=/dev/null
  source "$dir/env" || return 1
  for var in "${_LAB_ENV_VARS[@]}"; do
    export "${var?}"
  done
}

# Runs the CLI in a child bash; sets LAB_DIR and loads the env. Returns the CLI's exit code.
lab_up() {
  local out rc=0
  out=$(bash "$_LAB_SH" up) || rc=$?
  ((rc == 0)) || return "$rc"
  LAB_DIR=${out#export LAB_DIR=}
  lab_load "$LAB_DIR"
}

# For a test script: brings the lab up (lab_up) or ends the script, with exit 77 and a SKIP line
# when this host cannot run the lab, with exit 1 and "FAIL lab-up" otherwise. lab_up cleans up
# after itself on failure; the caller's own trap handles the rest.
lab_up_for_test() {
  local rc=0
  lab_up || rc=$?
  ((rc == 0)) && return 0
  if ((rc == 77)); then echo "SKIP: the lab cannot run here"; exit 77; fi
  echo "FAIL lab-up: lab.sh up exited $rc"
  exit 1
}

# Tears down the lab in $LAB_DIR (or the given directory) through the CLI.
lab_down() {
  bash "$_LAB_SH" down "${1:-${LAB_DIR:-}}"
}

# Writes a file of KIB KiB of random bytes into the target's web root; prints its URL path.
lab_www_file() {
  local name=$1 kib=$2
  [[ "$name" =~ ^[A-Za-z0-9._-]+$ && "$kib" =~ ^[0-9]+$ ]] || return 2
  head -c "$((kib * 1024))" /dev/urandom >"$LAB_WWW_DIR/$name" || return 1
  printf '/%s\n' "$name"
}

# ---------------------------------------------------------------------------------------------
# Sanity checks (usable from tests: each returns non-zero with a message on failure)

# Brackets an IPv6 address for a URL or a socat address.
_lab_hostport() {
  if [[ "$1" == *:* ]]; then printf '[%s]:%s' "$1" "$2"; else printf '%s:%s' "$1" "$2"; fi
}

lab_assert_http_from_server() {
  local ip body
  for ip in "$LAB_TARGET_IP4" "$LAB_TARGET_IP6"; do
    body=$(ip netns exec "$LAB_NS_SERVER" curl -gsS --max-time 3 \
      "http://$(_lab_hostport "$ip" "$LAB_HTTP_PORT")/") || {
      _lab_log "FAIL: server cannot fetch http from target $ip"; return 1; }
    [[ "$body" == *"$LAB_HTTP_MARKER"* ]] || {
      _lab_log "FAIL: http from target $ip lacks '$LAB_HTTP_MARKER'"; return 1; }
  done
}

lab_assert_echo_from_server() {
  local ip want got
  for ip in "$LAB_TARGET_IP4" "$LAB_TARGET_IP6"; do
    want="lab-echo-$LAB_ID-tcp-$ip"
    got=$(printf '%s\n' "$want" | ip netns exec "$LAB_NS_SERVER" \
      timeout 5 socat -t1 -T3 - "TCP:$(_lab_hostport "$ip" "$LAB_ECHO_PORT")") || got=""
    [[ "$got" == "$want" ]] || {
      _lab_log "FAIL: tcp echo at $ip answered '$got'"; return 1; }
    # bash's /dev/udp is a connected UDP socket: send one datagram; dd reads the reply whole
    # (bash's read builtin would take one byte and lose the rest of the datagram).
    want="lab-echo-$LAB_ID-udp-$ip"
    # shellcheck disable=SC2016  # $1..$3 belong to the inner bash
    got=$(ip netns exec "$LAB_NS_SERVER" timeout 3 bash -c \
      'exec 3<>"/dev/udp/$1/$2" && printf "%s\n" "$3" >&3 && dd bs=2048 count=1 status=none <&3' \
      sh "$ip" "$LAB_UDP_ECHO_PORT" "$want") || got=""
    [[ "$got" == "$want" ]] || {
      _lab_log "FAIL: udp echo at $ip answered '$got'"; return 1; }
  done
}

lab_assert_dns_from_server() {
  local got
  got=$(ip netns exec "$LAB_NS_SERVER" dig +short +time=2 +tries=1 \
    "@$LAB_TARGET_IP4" "$LAB_DNS_NAME" A) || got=""
  [[ "$got" == "$LAB_TARGET_IP4" ]] || {
    _lab_log "FAIL: dig @$LAB_TARGET_IP4 $LAB_DNS_NAME A gave '$got'"; return 1; }
  got=$(ip netns exec "$LAB_NS_SERVER" dig +short +time=2 +tries=1 \
    "@$LAB_TARGET_IP6" "$LAB_DNS_NAME" AAAA) || got=""
  [[ "$got" == "$LAB_TARGET_IP6" ]] || {
    _lab_log "FAIL: dig @$LAB_TARGET_IP6 $LAB_DNS_NAME AAAA gave '$got'"; return 1; }
}

# A short iperf3 run (64 KiB) proves the server answers; tests, not timings.
lab_assert_iperf_from_server() {
  local ip
  for ip in "$LAB_TARGET_IP4" "$LAB_TARGET_IP6"; do
    ip netns exec "$LAB_NS_SERVER" timeout 10 iperf3 -c "$ip" -p "$LAB_IPERF_PORT" \
      -n 64K --connect-timeout 2000 >/dev/null 2>&1 || {
      _lab_log "FAIL: iperf3 to target $ip"; return 1; }
  done
}

lab_assert_ssh_from_client() {
  local host
  for host in "$LAB_SSH_HOST" "$LAB_SSH_HOST6"; do
    ip netns exec "$LAB_NS_CLIENT" timeout 10 ssh -F "$LAB_SSH_CONFIG" "$host" true || {
      _lab_log "FAIL: ssh from client to $host"; return 1; }
  done
}

# The client must not reach the target without a tunnel (the server does not forward).
# The three probes run in parallel: the dropped IPv6 one costs its whole 2 s timeout.
lab_assert_no_direct_route() {
  local p4 p6 pdns rc=0
  ip netns exec "$LAB_NS_CLIENT" curl -gsS --max-time 2 -o /dev/null \
    "http://$(_lab_hostport "$LAB_TARGET_IP4" "$LAB_HTTP_PORT")/" 2>/dev/null &
  p4=$!
  ip netns exec "$LAB_NS_CLIENT" curl -gsS --max-time 2 -o /dev/null \
    "http://$(_lab_hostport "$LAB_TARGET_IP6" "$LAB_HTTP_PORT")/" 2>/dev/null &
  p6=$!
  ip netns exec "$LAB_NS_CLIENT" dig +short +time=1 +tries=1 \
    "@$LAB_TARGET_IP4" "$LAB_DNS_NAME" A >/dev/null 2>&1 &
  pdns=$!
  if wait "$p4"; then _lab_log "FAIL: client reaches http://$LAB_TARGET_IP4/ directly"; rc=1; fi
  if wait "$p6"; then _lab_log "FAIL: client reaches http://[$LAB_TARGET_IP6]/ directly"; rc=1; fi
  if wait "$pdns"; then _lab_log "FAIL: client reaches dns at $LAB_TARGET_IP4 directly"; rc=1; fi
  return "$rc"
}

# All sanity checks of a lab that is up.
lab_check() {
  lab_assert_http_from_server &&
    lab_assert_echo_from_server &&
    lab_assert_dns_from_server &&
    lab_assert_iperf_from_server &&
    lab_assert_ssh_from_client &&
    lab_assert_no_direct_route
}

# ---------------------------------------------------------------------------------------------
# Building the lab (runs only in the CLI process, under set -euo pipefail)

# Why we would skip (exit 77) rather than fail: not root, no netns, a tool missing.
_lab_preflight() {
  local tool
  if ((EUID != 0)); then
    _lab_log "SKIP: the lab needs root (network namespaces)"; return 77
  fi
  for tool in ip ss ssh ssh-keygen /usr/sbin/sshd curl socat iperf3 /usr/sbin/dnsmasq dig \
    /usr/bin/python3 timeout; do
    command -v "$tool" >/dev/null || { _lab_log "SKIP: missing tool $tool"; return 77; }
  done
  ip netns list >/dev/null 2>&1 || { _lab_log "SKIP: 'ip netns' does not work here"; return 77; }
  # With UsePAM no, sshd refuses a locked account ('!' in the shadow password field).
  if [[ "$(getent shadow root | cut -d: -f2)" == '!'* ]]; then
    _lab_log "SKIP: root's account is locked; the lab's sshd would refuse it"; return 77
  fi
}

# Picks the run directory: $LAB_DIR if given (absent or empty), else a fresh mktemp -d.
_lab_prepare_dir() {
  if [[ -n "${LAB_DIR:-}" ]]; then
    [[ "$LAB_DIR" == /* && "$LAB_DIR" =~ ^[A-Za-z0-9/._-]+$ ]] ||
      _lab_die "LAB_DIR must be an absolute path of [A-Za-z0-9/._-]: '$LAB_DIR'"
    if [[ -e "$LAB_DIR" ]]; then
      [[ -d "$LAB_DIR" && -z "$(ls -A "$LAB_DIR")" ]] ||
        _lab_die "LAB_DIR $LAB_DIR exists and is not an empty directory"
    fi
    mkdir -p "$LAB_DIR"
    chmod 0700 "$LAB_DIR"
  else
    LAB_DIR=$(mktemp -d /tmp/sshuttle-lab.XXXXXX)
  fi
  : >"$LAB_DIR/$_LAB_MARKER"
  mkdir -p "$LAB_DIR/pids" "$LAB_DIR/logs" "$LAB_DIR/ssh" "$LAB_DIR/www"
}

# Picks the run id: $LAB_ID if given, else 6 random hex digits not used by another lab.
_lab_choose_id() {
  local id i
  if [[ -n "${LAB_ID:-}" ]]; then
    [[ "$LAB_ID" =~ ^[a-z0-9]{1,8}$ ]] || _lab_die "LAB_ID must be 1-8 of [a-z0-9]"
    [[ ! -e "/run/netns/shl$LAB_ID-client" ]] || _lab_die "a lab with id $LAB_ID exists"
    return 0
  fi
  for ((i = 0; i < 10; i++)); do
    id=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    if [[ ! -e "/run/netns/shl$id-client" ]]; then
      LAB_ID=$id
      return 0
    fi
  done
  _lab_die "no free run id after 10 tries"
}

# Test hook: pretend STEP failed.
_lab_maybe_fail() {
  [[ "${LAB_FAIL_AT:-}" != "$1" ]] || _lab_die "simulated failure after step '$1' (LAB_FAIL_AT)"
}

# Writes a network sysctl inside a namespace (/proc/sys/net is per namespace) and reads it back.
_lab_sysctl() {
  local ns=$1 key=$2 value=$3
  # shellcheck disable=SC2016  # $1 and $2 belong to the inner sh
  ip netns exec "$ns" /bin/sh -c 'echo "$2" >"$1" && [ "$(cat "$1")" = "$2" ]' \
    sh "/proc/sys/${key//.//}" "$value" || _lab_die "cannot set $key=$value in $ns"
}

# Creates the three namespaces, recording each before creating it so teardown can find it.
_lab_make_netns() {
  local ns first=1
  for ns in $LAB_NAMESPACES; do
    echo "$ns" >>"$LAB_DIR/netns-created"
    if ! ip netns add "$ns"; then
      sed -i "/^$ns\$/d" "$LAB_DIR/netns-created"
      if ((first)); then
        _lab_log "SKIP: cannot create network namespaces"
        exit 77
      fi
      _lab_die "ip netns add $ns failed"
    fi
    first=0
    stat -L -c %i "/run/netns/$ns" >>"$LAB_DIR/netns-inodes"
    # `ip netns exec` bind-mounts /etc/netns/NS/resolv.conf over /etc/resolv.conf: anything in
    # the lab that reads it (the remote agent's default resolver, dig) asks the target's
    # dnsmasq, never the machine's real resolver.
    mkdir -p "/etc/netns/$ns"
    echo "nameserver $LAB_TARGET_IP4" >"/etc/netns/$ns/resolv.conf"
    ip -n "$ns" link set lo up
    # No DAD anywhere: addresses (link-local too) are usable at once.
    _lab_sysctl "$ns" net.ipv6.conf.all.accept_dad 0
    _lab_sysctl "$ns" net.ipv6.conf.default.accept_dad 0
  done
  # The point of the lab: the server must not forward, so only a tunnel reaches the target.
  _lab_sysctl "$LAB_NS_SERVER" net.ipv4.ip_forward 0
  _lab_sysctl "$LAB_NS_SERVER" net.ipv6.conf.all.forwarding 0
  _lab_sysctl "$LAB_NS_SERVER" net.ipv6.conf.default.forwarding 0
}

# Adds an IPv4 and an IPv6 address to DEV in NS and brings DEV up.
_lab_addrs() {
  local ns=$1 dev=$2 ip4=$3 ip6=$4
  ip -n "$ns" addr add "$ip4/24" dev "$dev"
  ip -n "$ns" -6 addr add "$ip6/64" dev "$dev" nodad
  ip -n "$ns" link set "$dev" up
}

# Creates the veth pairs directly inside the namespaces (they never exist in the root ns),
# addresses them, and gives the client its default routes.
_lab_make_links() {
  ip link add "$LAB_IF_CLIENT" netns "$LAB_NS_CLIENT" type veth \
    peer name "$LAB_IF_SERVER_CLIENT" netns "$LAB_NS_SERVER"
  ip link add "$LAB_IF_SERVER_TARGET" netns "$LAB_NS_SERVER" type veth \
    peer name "$LAB_IF_TARGET" netns "$LAB_NS_TARGET"
  _lab_addrs "$LAB_NS_CLIENT" "$LAB_IF_CLIENT" "$LAB_CLIENT_IP4" "$LAB_CLIENT_IP6"
  _lab_addrs "$LAB_NS_SERVER" "$LAB_IF_SERVER_CLIENT" "$LAB_SERVER_IP4" "$LAB_SERVER_IP6"
  _lab_addrs "$LAB_NS_SERVER" "$LAB_IF_SERVER_TARGET" "$LAB_SERVER_TARGET_IP4" \
    "$LAB_SERVER_TARGET_IP6"
  _lab_addrs "$LAB_NS_TARGET" "$LAB_IF_TARGET" "$LAB_TARGET_IP4" "$LAB_TARGET_IP6"
  ip -n "$LAB_NS_CLIENT" route add default via "$LAB_SERVER_IP4"
  ip -n "$LAB_NS_CLIENT" -6 route add default via "$LAB_SERVER_IP6"
}

# Keys, sshd_config, and a client ssh_config that trusts this run's host key.
_lab_make_ssh_files() {
  ssh-keygen -q -t ed25519 -N '' -C "sshuttle-lab-$LAB_ID-host" -f "$LAB_SSH_HOST_KEY"
  ssh-keygen -q -t ed25519 -N '' -C "sshuttle-lab-$LAB_ID-client" -f "$LAB_SSH_KEY"
  cp "$LAB_SSH_KEY.pub" "$LAB_DIR/ssh/authorized_keys"
  printf '%s,%s %s\n' "$LAB_SERVER_IP4" "$LAB_SERVER_IP6" \
    "$(cut -d' ' -f1-2 "$LAB_SSH_HOST_KEY.pub")" >"$LAB_SSH_KNOWN_HOSTS"
  cat >"$LAB_SSHD_CONFIG" <<EOF
# sshd for sshuttle lab $LAB_ID (server namespace $LAB_NS_SERVER)
Port $LAB_SSH_PORT
ListenAddress $LAB_SERVER_IP4
ListenAddress $LAB_SERVER_IP6
HostKey $LAB_SSH_HOST_KEY
PidFile $LAB_DIR/ssh/sshd.pid
AuthorizedKeysFile $LAB_DIR/ssh/authorized_keys
AuthenticationMethods publickey
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
# No PAM: it would register lab logins with logind on the host.
UsePAM no
StrictModes no
PermitUserRC no
UseDNS no
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 100:30:200
MaxSessions 64
LogLevel VERBOSE
Subsystem sftp internal-sftp
EOF
  cat >"$LAB_SSH_CONFIG" <<EOF
# ssh client config for sshuttle lab $LAB_ID: ip netns exec $LAB_NS_CLIENT ssh -F $LAB_SSH_CONFIG $LAB_SSH_HOST
Host $LAB_SSH_HOST $LAB_SSH_HOST6 $LAB_SERVER_IP4 $LAB_SERVER_IP6
  User $LAB_SSH_USER
  Port $LAB_SSH_PORT
  IdentityFile $LAB_SSH_KEY
  IdentitiesOnly yes
  IdentityAgent none
  UserKnownHostsFile $LAB_SSH_KNOWN_HOSTS
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  UpdateHostKeys no
  CheckHostIP no
  BatchMode yes
  ConnectTimeout 5
  ControlMaster no
  ControlPath none
  LogLevel ERROR
Host $LAB_SSH_HOST
  HostName $LAB_SERVER_IP4
Host $LAB_SSH_HOST6
  HostName $LAB_SERVER_IP6
EOF
}

# Starts a long-running service in NS, in the background with no tie to our stdio (so
# `$(lab.sh up)` returns), and records its PID. `ip netns exec` execs, so $! is the service.
_lab_start() {
  local name=$1 ns=$2
  shift 2
  [[ "${LAB_BREAK_SERVICE:-}" != "$name" ]] || set -- /bin/false  # test hook
  ip netns exec "$ns" "$@" </dev/null >>"$LAB_LOG_DIR/$name.log" 2>&1 &
  echo "$!" >"$LAB_PID_DIR/$name.pid"
}

# Waits (bounded) until service NAME in NS has COUNT listening PROTO sockets on PORT, owned by
# its recorded PID; fails at once if it died. On failure shows the end of its log.
_lab_wait_listen() {
  local name=$1 ns=$2 proto=$3 port=$4 count=${5:-1} pid i n
  pid=$(<"$LAB_PID_DIR/$name.pid")
  for ((i = 0; i < _LAB_WAIT_TRIES; i++)); do
    if ! _lab_alive "$pid"; then
      _lab_log "$name (pid $pid) exited; end of its log:"
      tail -n 5 "$LAB_LOG_DIR/$name.log" >&2 || true
      _lab_die "$name did not start"
    fi
    n=$(ip netns exec "$ns" ss -Hnlp "--$proto" "sport = :$port" | grep -c "pid=$pid,") || n=0
    ((n >= count)) && return 0
    sleep 0.1
  done
  tail -n 5 "$LAB_LOG_DIR/$name.log" >&2 || true
  _lab_die "$name is not listening on $proto port $port after $((_LAB_WAIT_TRIES / 10)) s"
}

# sshd in the server namespace; PID from $! cross-checked with its PidFile.
_lab_start_sshd() {
  local pid i
  # sshd's privilege separation directory (Debian creates it only when its sshd runs).
  [[ -d /run/sshd ]] || install -d -m 0755 /run/sshd
  ip netns exec "$LAB_NS_SERVER" /usr/sbin/sshd -t -f "$LAB_SSHD_CONFIG" ||
    _lab_die "sshd rejects $LAB_SSHD_CONFIG"
  _lab_start sshd "$LAB_NS_SERVER" /usr/sbin/sshd -D -f "$LAB_SSHD_CONFIG" \
    -E "$LAB_LOG_DIR/sshd.log"
  _lab_wait_listen sshd "$LAB_NS_SERVER" tcp "$LAB_SSH_PORT" 2
  pid=$(<"$LAB_PIDFILE_SSHD")
  for ((i = 0; i < _LAB_WAIT_TRIES; i++)); do
    [[ "$(cat "$LAB_DIR/ssh/sshd.pid" 2>/dev/null)" == "$pid" ]] && return 0
    sleep 0.1
  done
  _lab_die "sshd's PidFile does not hold its pid $pid"
}

# The target's services. Each command line names $LAB_DIR (a log or pid file, the web root):
# that is how teardown recognises them even if their namespace is gone.
_lab_start_targets() {
  local ns=$LAB_NS_TARGET t4=$LAB_TARGET_IP4 t6=$LAB_TARGET_IP6
  printf '<html><body><p>%s</p></body></html>\n' "$LAB_HTTP_MARKER" >"$LAB_WWW_DIR/index.html"
  # Bound to '::', http.server is dual-stack (IPV6_V6ONLY=0): one process serves v4 and v6.
  _lab_start http "$ns" /usr/bin/python3 -m http.server --bind :: \
    --directory "$LAB_WWW_DIR" "$LAB_HTTP_PORT"
  # TCP echo: our own non-blocking server (tcp_echo.py says why not socat: backlog 5, and a
  # forked child that blocks on its own full pipe when a large echo backs up).
  _lab_start echo4 "$ns" /usr/bin/python3 "$_LAB_HERE/tcp_echo.py" "$t4" "$LAB_ECHO_PORT" \
    "$LAB_LOG_DIR/echo4.errors"
  _lab_start echo6 "$ns" /usr/bin/python3 "$_LAB_HERE/tcp_echo.py" "$t6" "$LAB_ECHO_PORT" \
    "$LAB_LOG_DIR/echo6.errors"
  # RECVFROM+fork: one short-lived child per datagram, which answers from the bound address.
  _lab_start udpecho4 "$ns" socat -lf "$LAB_LOG_DIR/udpecho4.socat" \
    "UDP4-RECVFROM:$LAB_UDP_ECHO_PORT,bind=$t4,fork" PIPE
  _lab_start udpecho6 "$ns" socat -lf "$LAB_LOG_DIR/udpecho6.socat" \
    "UDP6-RECVFROM:$LAB_UDP_ECHO_PORT,bind=[$t6],fork,ipv6only=1" PIPE
  # In the foreground (no -D) so that $! is iperf3; it listens dual-stack on '*'.
  _lab_start iperf3 "$ns" iperf3 -s -p "$LAB_IPERF_PORT" --logfile "$LAB_LOG_DIR/iperf3.out"
  _lab_start dnsmasq "$ns" /usr/sbin/dnsmasq --keep-in-foreground --conf-file=/dev/null \
    --no-resolv --no-hosts --bind-interfaces --port="$LAB_DNS_PORT" \
    --listen-address="$t4" --listen-address="$t6" \
    --address="/$LAB_DNS_NAME/$t4" --address="/$LAB_DNS_NAME/$t6" \
    --user=root --pid-file="$LAB_DIR/dnsmasq.pid" \
    --log-facility="$LAB_LOG_DIR/dnsmasq.queries" --log-queries

  _lab_wait_listen http "$ns" tcp "$LAB_HTTP_PORT"
  _lab_wait_listen echo4 "$ns" tcp "$LAB_ECHO_PORT"
  _lab_wait_listen echo6 "$ns" tcp "$LAB_ECHO_PORT"
  _lab_wait_listen udpecho4 "$ns" udp "$LAB_UDP_ECHO_PORT"
  _lab_wait_listen udpecho6 "$ns" udp "$LAB_UDP_ECHO_PORT"
  _lab_wait_listen iperf3 "$ns" tcp "$LAB_IPERF_PORT"
  _lab_wait_listen dnsmasq "$ns" udp "$LAB_DNS_PORT" 2
}

# EXIT trap of `up`: a failed or interrupted build leaves nothing behind.
_lab_up_failed() {
  local rc=$?
  trap - EXIT INT TERM HUP
  ((rc != 0)) || rc=1
  _lab_log "up failed (exit $rc); tearing down"
  _lab_teardown || true
  exit "$rc"
}

_lab_cmd_up() {
  local start=$EPOCHREALTIME rc=0
  _lab_preflight || exit $?
  _lab_choose_id
  _lab_prepare_dir
  trap _lab_up_failed EXIT
  _lab_define "$LAB_ID" "$LAB_DIR"
  _lab_write_env
  trap 'exit 130' INT
  trap 'exit 143' TERM
  trap 'exit 129' HUP
  _lab_log "building in $LAB_DIR"
  _lab_make_netns
  _lab_maybe_fail netns
  _lab_make_links
  _lab_maybe_fail links
  _lab_make_ssh_files
  _lab_start_sshd
  _lab_maybe_fail sshd
  _lab_start_targets
  _lab_maybe_fail services
  lab_check || rc=$?
  ((rc == 0)) || _lab_die "sanity checks failed"
  _lab_maybe_fail checks
  trap - EXIT INT TERM HUP
  _lab_log "up in $(_lab_ms_since "$start") ms: namespaces $LAB_NAMESPACES"
  printf 'export LAB_DIR=%s\n' "$LAB_DIR"
}

# ---------------------------------------------------------------------------------------------
# Teardown (best effort, idempotent, safe on a half-built lab)

# Stops our processes, deletes our namespaces, removes the run dir unless LAB_KEEP=1.
# Returns 1 if something could not be removed.
_lab_teardown() {
  local rc=0 f svc ns round pid pids=() kept=()
  for f in "$LAB_DIR"/pids/*.pid; do
    [[ -f "$f" ]] && pids+=("$(<"$f")")
  done
  _lab_stop_pids "${pids[@]}" || rc=1
  # Then anything else inside our namespaces (ssh sessions, programs tests started there).
  # A few rounds, in case one of them forked while we were stopping the others.
  if [[ -f "$LAB_DIR/netns-created" ]]; then
    for round in 1 2 3; do
      pids=()
      while read -r ns; do
        [[ -e "/run/netns/$ns" ]] || continue
        for pid in $(ip netns pids "$ns" 2>/dev/null); do
          _lab_alive "$pid" && pids+=("$pid")
        done
      done <"$LAB_DIR/netns-created"
      ((${#pids[@]})) || break
      _lab_log "stopping ${#pids[@]} other process(es) in the lab (round $round)"
      _lab_stop_pids "${pids[@]}" || rc=1
    done
    # Delete; keep listed only the namespaces that could not be deleted, so that a later
    # `down` of a kept run dir never touches a namespace that is not ours any more.
    kept=()
    while read -r ns; do
      [[ -e "/run/netns/$ns" ]] || continue
      ip netns delete "$ns" || { _lab_log "cannot delete namespace $ns"; kept+=("$ns"); rc=1; }
      rm -rf -- "/etc/netns/$ns"
    done <"$LAB_DIR/netns-created"
    printf '%s\n' "${kept[@]}" | sed '/^$/d' >"$LAB_DIR/netns-created"
  fi
  for svc in $_LAB_SERVICES; do
    rm -f "$LAB_DIR/pids/$svc.pid"
  done
  if [[ "${LAB_KEEP:-0}" == 1 ]]; then
    _lab_log "down; kept $LAB_DIR (LAB_KEEP=1)"
  elif ((rc == 0)); then
    rm -rf -- "$LAB_DIR" || rc=1
  else
    _lab_log "kept $LAB_DIR for inspection: teardown was incomplete"
  fi
  return "$rc"
}

_lab_cmd_down() {
  local dir=${1:-${LAB_DIR:-}} start=$EPOCHREALTIME
  [[ -n "$dir" ]] || { _lab_log "usage: LAB_DIR=... lab.sh down (or lab.sh down DIR)"; exit 2; }
  if [[ ! -e "$dir" ]]; then
    _lab_log "nothing to tear down: $dir does not exist"
    return 0
  fi
  # Never remove a directory that this script did not create.
  [[ -f "$dir/$_LAB_MARKER" ]] || { _lab_log "$dir is not a lab run directory"; exit 1; }
  if [[ -f "$dir/env" ]]; then
    lab_load "$dir" || exit 1
  else
    LAB_DIR=$(readlink -f "$dir")  # half-built before its env was written
  fi
  ((EUID == 0)) || { _lab_log "down needs root"; exit 1; }
  trap '' INT TERM HUP  # finish the teardown once started
  _lab_teardown || { _lab_log "teardown incomplete"; exit 1; }
  _lab_log "down in $(_lab_ms_since "$start") ms"
}

_lab_cmd_status() {
  local svc pid ns rc=0
  for ns in $LAB_NAMESPACES; do
    if [[ -e "/run/netns/$ns" ]]; then echo "netns   $ns: present"; else echo "netns   $ns: MISSING"; rc=1; fi
  done
  for svc in $LAB_SERVICES; do
    pid=$(cat "$LAB_PID_DIR/$svc.pid" 2>/dev/null) || pid=""
    if [[ -n "$pid" ]] && _lab_pid_is_ours "$pid"; then
      printf 'service %-9s pid %s: running\n' "$svc" "$pid"
    else
      printf 'service %-9s pid %s: DOWN\n' "$svc" "${pid:--}"
      rc=1
    fi
  done
  return "$rc"
}

_lab_usage() {
  sed -n '/^# CLI/,/^#   Exit codes/p' "$_LAB_SH" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

_lab_main() {
  set -euo pipefail
  local orig_path=$PATH cmd=${1:-}
  # Only the system's tools: nothing from a venv, a shim or /usr/local.
  PATH=/usr/sbin:/usr/bin:/sbin:/bin
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    up) (($# == 0)) || _lab_usage; _lab_cmd_up ;;
    down) _lab_cmd_down "$@" ;;
    status | check | env)
      lab_load "${1:-${LAB_DIR:-}}" || exit 1
      case "$cmd" in
        status) _lab_cmd_status ;;
        check) lab_check && _lab_log "all checks passed" ;;
        env) cat "$LAB_DIR/env" ;;
      esac
      ;;
    exec)
      (($# >= 2)) || _lab_usage
      lab_load || exit 1
      local ns ip_bin
      ns=$(lab_ns "$1") || exit 2
      shift
      ip_bin=$(command -v ip)
      PATH=$orig_path  # the command runs with the caller's PATH
      exec "$ip_bin" netns exec "$ns" "$@"
      ;;
    *) _lab_usage ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  _lab_main "$@"
fi

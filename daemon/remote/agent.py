#!/usr/bin/env python3
# sshuttle remote agent: the program sshuttled uploads over ssh and runs on the remote host.
#
# It needs only python3 (>= 3.6, standard library only) and no root, no install and no file
# on disk. It speaks sshuttle 1.x's mux protocol on stdin/stdout (docs/PROTOCOL.md, and
# sshuttle-upstream.md sections 2 and 4) plus our extensions (docs/EXTENSIONS.md), and opens
# the real TCP connections, DNS queries and UDP flows on the remote side. This is our own
# implementation; it shares no code with sshuttle.
#
# HOW THE DAEMON STARTS IT
#
#   ssh [opts] host -- "<remote command>"      (the remote command is ONE argv word for ssh)
#
# where <remote command>, with <N> replaced by the decimal byte count of the upload, is:
#
#   /bin/sh -c 'P=python3; $P -V >/dev/null 2>&1 || P=python; $P -V >/dev/null 2>&1 || exit 97; exec "$P" -c "<stage1>"; exit 97'
#
# and <stage1> is exactly (one line, no quotes, no backslashes, no $ or !, so it survives the
# two shell levels, the login shell's single quotes and /bin/sh's double quotes, unchanged):
#
#   import os,sys;n=<N>;b=bytearray();[b.extend(d or sys.exit(98)) for d in iter(lambda:os.read(0,n-len(b)) if n>len(b) else None,None)];exec(bytes(b))
#
# Stage1 reads exactly N bytes from fd 0 with os.read (never sys.stdin, whose buffer could
# swallow the frames that follow), exits 98 if stdin ends early, then exec()s them in
# __main__'s globals. So the daemon may write the upload and its first frames (the extension
# PING) back to back without waiting for the sync header: nothing after byte N is consumed by
# the bootstrap.
#
# THE UPLOAD (exactly N bytes, written to ssh's stdin right after spawning it):
#
#   <this file's bytes, ending with "\n">  +  'main(json.loads(' + LIT + '))\n'
#
# where LIT is a Python string literal holding the options' JSON text. A JSON string is a valid
# Python literal here, so LIT = json.dumps(json.dumps(options)) in Python terms, or in C++
# nlohmann::json(options.dump(-1, ' ', true)).dump(-1, ' ', true) (ASCII-only output).
#
# Any stage1 that execs exactly those bytes works: the agent relies neither on running in
# __main__'s globals nor on a fresh dict (daemon/ssh_command.cpp's multi-line stage1 execs it
# with {"__name__": "sshuttle_agent"}), and main() takes a dict or a JSON text (str or bytes).
# The one-liner above is preferred on the wire: no newlines and no quotes, so csh/tcsh login
# shells (which reject newlines inside quotes) and nested quote escaping are no concern.
#
# For local testing: python3 agent.py '{"verbosity": 2}'   (options JSON in argv[1], optional).
# The __main__ block below is skipped under stage1 (argv[0] is "-c" there).
#
# OPTIONS (a JSON object; every key optional; unknown keys are ignored; wrong types exit 99):
#
#   latency_control      bool   true    stock flow control (rttest PINGs) when `credit` is off
#   latency_buffer_size  int    32768   bytes queued since the last PONG before an rttest PING
#   auto_nets            bool   false   report the remote IPv4 routes in ROUTES (`ip -4 route`,
#                                       else `netstat -rn`)
#   auto_hosts           bool   false   with HOST_REQ: also report the IPv4 names of the
#                                       server's /etc/hosts, re-read every HOSTS_RESCAN seconds
#                                       (sshuttle's hostwatch also scans ARP, netstat and SMB;
#                                       ours does not)
#   to_nameserver        str    null    "ip@port" ("[v6]@port" ok, port 0 or none means 53);
#                                       else a random nameserver of /etc/resolv.conf, else
#                                       127.0.0.1
#   verbosity            int    0       stderr logging: 0 fatal only, 1 warnings, 2 debug,
#                                       3 every frame
#   dns_timeout          number 10      seconds before a DNS query is abandoned (silently)
#   dns_attempts         int    4       sends per query (first + retries), spread evenly over
#                                       dns_timeout; a retry uses the next resolv.conf server
#   udp_idle_timeout     number 300     seconds of silence after which a UDP channel is closed
#                                       on this side (0 = never). The daemon normally closes
#                                       flows itself (UDP_CLOSE) much earlier; this is a
#                                       safety net against leaks and must stay longer than the
#                                       daemon's own idle timeout (no frame tells the daemon).
#   max_output_buffer    int    4 MiB   frames queued for stdout above which no remote socket
#                                       is read until the queue is back under a quarter
#   max_socket_queue     int    16 MiB  without `credit`: bytes queued for remote sockets above
#                                       which stdin is not read until under half (this holds
#                                       every channel, not just the slow one). With `credit`
#                                       the windows bound each channel and stdin is always read.
#   tcp_nodelay          bool   true    TCP_NODELAY on remote connections
#   tcp_keepalive        bool   true    SO_KEEPALIVE on remote connections
#
# EXIT STATUS: 0 normal end (EXIT frame, EOF on stdin, or stdout closed); 97 no python (from
# the shell command above); 98 stdin ended during the upload (stage1); 99 protocol error, bad
# options or an internal error, with a one-line reason on stderr ("agent: fatal: ...").
#
# BEHAVIOUR SUMMARY: writes "\0\0SSHUTTLE0001", PING "chicken", one ROUTES; answers every PING
# with a PONG of the same payload, except the negotiation PING "sshuttle-ext1 <ext>..." which
# gets "sshuttle-ext1-ok <accepted>..." (credit, connect-error; only before the first channel,
# afterwards it is echoed like any PING). TCP channels follow the half-close rules of upstream
# section 2.9; with connect-error a connect or read failure is reported as CONNECT_ERROR
# "errno,message" before TCP_EOF + TCP_STOP_SENDING. DNS_REQ: one UDP query per channel, the
# first reply whose id matches becomes DNS_RESPONSE. UDP_OPEN/UDP_DATA/UDP_CLOSE: one
# unconnected UDP socket per channel. HOST_REQ: each seed name is resolved once (IPv4, in a
# thread) and reported in HOST_LIST as "name,ip" (plus "firstlabel,ip"). Logs go to stderr
# only; stdout carries nothing but the mux.

import collections
import errno
import fcntl
import heapq
import ipaddress
import json
import os
import random
import re
import selectors
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time

SYNC_HEADER = b"\0\0SSHUTTLE0001"
MAGIC = 0x5353
HDR = struct.Struct("!HHHH")
MAX_PAYLOAD = 65535

CMD_EXIT = 0x4200
CMD_PING = 0x4201
CMD_PONG = 0x4202
CMD_TCP_CONNECT = 0x4203
CMD_TCP_STOP_SENDING = 0x4204
CMD_TCP_EOF = 0x4205
CMD_TCP_DATA = 0x4206
CMD_ROUTES = 0x4207
CMD_HOST_REQ = 0x4208
CMD_HOST_LIST = 0x4209
CMD_DNS_REQ = 0x420A
CMD_DNS_RESPONSE = 0x420B
CMD_UDP_OPEN = 0x420C
CMD_UDP_DATA = 0x420D
CMD_UDP_CLOSE = 0x420E
CMD_WINDOW = 0x4280
CMD_CONNECT_ERROR = 0x4281

CMD_NAMES = {
    CMD_EXIT: "EXIT", CMD_PING: "PING", CMD_PONG: "PONG", CMD_TCP_CONNECT: "TCP_CONNECT",
    CMD_TCP_STOP_SENDING: "TCP_STOP_SENDING", CMD_TCP_EOF: "TCP_EOF", CMD_TCP_DATA: "TCP_DATA",
    CMD_ROUTES: "ROUTES", CMD_HOST_REQ: "HOST_REQ", CMD_HOST_LIST: "HOST_LIST",
    CMD_DNS_REQ: "DNS_REQ", CMD_DNS_RESPONSE: "DNS_RESPONSE", CMD_UDP_OPEN: "UDP_OPEN",
    CMD_UDP_DATA: "UDP_DATA", CMD_UDP_CLOSE: "UDP_CLOSE", CMD_WINDOW: "WINDOW",
    CMD_CONNECT_ERROR: "CONNECT_ERROR",
}

EXT_PREFIX = b"sshuttle-ext1"
EXT_OK = b"sshuttle-ext1-ok"
KNOWN_EXTENSIONS = (b"credit", b"connect-error")
INITIAL_CREDIT = 1048576
WINDOW_BATCH = INITIAL_CREDIT // 2
MAX_WINDOW_INCREMENT = 0x7FFFFFFF

STDIN_CHUNK = 1048576
HOSTS_PATH = "/etc/hosts"
HOSTS_RESCAN = 10.0  # seconds between looks at /etc/hosts (hostwatch)
# os.read(fd, n) allocates n bytes before reading; 1 MiB comes from mmap and is shrunk and freed
# again, three extra syscalls per small message. Reads start at this size and grow to
# STDIN_CHUNK only while they come back full (bulk transfers).
STDIN_SMALL_CHUNK = 65536
# Output pieces shorter than this are gathered into one bytearray; longer ones (TCP payloads)
# are queued as they are and written with writev, never copied in user space.
SMALL_PIECE = 4096
WRITEV_MAX = 512  # segments per writev (Linux IOV_MAX is 1024)
# sshd hands us stdin and stdout as pipes of 64 KiB: every 64 KiB costs a wakeup on both sides.
# Linux lets any user grow a pipe to /proc/sys/fs/pipe-max-size (1 MiB by default); 1 MiB pipes
# cut the wakeups and syscalls per GB several times.
PIPE_SIZE = 1048576
F_SETPIPE_SZ = 1031  # fcntl.F_SETPIPE_SZ (Linux), missing from Python's fcntl before 3.10
TCP_READ = 65535
UDP_READS_PER_EVENT = 64

READ = selectors.EVENT_READ
WRITE = selectors.EVENT_WRITE

HOSTNAME_RE = re.compile(r"^[-\w.]+$", re.ASCII)

DEFAULT_OPTIONS = {
    "latency_control": True,
    "latency_buffer_size": 32768,
    "auto_nets": False,
    "auto_hosts": False,
    "to_nameserver": None,
    "verbosity": 0,
    "dns_timeout": 10.0,
    "dns_attempts": 4,
    "udp_idle_timeout": 300.0,
    "max_output_buffer": 4 * 1048576,
    "max_socket_queue": 16 * 1048576,
    "tcp_nodelay": True,
    "tcp_keepalive": True,
}

verbosity = 0


def log(level, msg):
    """Write one line to stderr when the verbosity allows; never raises."""
    if verbosity < level:
        return
    try:
        sys.stderr.write("agent: " + msg + "\n")
        sys.stderr.flush()
    except Exception:
        pass


class Fatal(Exception):
    """A protocol violation or bad configuration: the agent exits 99."""


class Quit(Exception):
    """A normal end of the session."""

    def __init__(self, code, reason):
        Exception.__init__(self, reason)
        self.code = code


def now():
    return time.monotonic()


def cmd_name(cmd):
    return CMD_NAMES.get(cmd, "0x%04x" % cmd)


# ------------------------------------------------------------------------------------------
# Options


def parse_options(raw):
    if raw is None:
        raw = {}
    if isinstance(raw, (bytes, str)):
        try:
            raw = json.loads(raw)
        except ValueError as e:
            raise Fatal("options are not valid JSON: %s" % e)
    if not isinstance(raw, dict):
        raise Fatal("options must be a JSON object")
    opts = dict(DEFAULT_OPTIONS)
    for key, value in raw.items():
        if key not in DEFAULT_OPTIONS:
            continue  # newer daemon, older agent: ignore (logged once verbosity is known)
        default = DEFAULT_OPTIONS[key]
        if key == "to_nameserver":
            ok = value is None or isinstance(value, str)
        elif isinstance(default, bool):
            ok = isinstance(value, bool)
        elif isinstance(default, int):
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = True
        if not ok:
            raise Fatal("option %s has the wrong type: %r" % (key, value))
        opts[key] = value
    if opts["latency_buffer_size"] < 1:
        raise Fatal("latency_buffer_size must be positive")
    if opts["dns_attempts"] < 1:
        raise Fatal("dns_attempts must be at least 1")
    if opts["dns_timeout"] <= 0:
        raise Fatal("dns_timeout must be positive")
    if opts["udp_idle_timeout"] < 0:
        raise Fatal("udp_idle_timeout must not be negative")
    if opts["max_output_buffer"] < 65536 or opts["max_socket_queue"] < 65536:
        raise Fatal("max_output_buffer and max_socket_queue must be at least 65536")
    opts["_unknown"] = sorted(k for k in raw if k not in DEFAULT_OPTIONS)
    return opts


def parse_to_nameserver(text):
    """'ip@port' -> (host, port); port 0 or missing means 53; IPv6 may be bracketed."""
    host, sep, port = text.strip().rpartition("@")
    if not sep:
        host, port = text.strip(), ""
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise Fatal("to_nameserver %r has no address" % text)
    if port == "":
        port_num = 0
    elif port.isdigit() and int(port) <= 65535:
        port_num = int(port)
    else:
        raise Fatal("to_nameserver %r has a bad port" % text)
    return host, (port_num or 53)


def parse_resolv_conf(text):
    """The nameserver addresses of a resolv.conf, in file order."""
    servers = []
    for line in text.splitlines():
        tok = line.split()
        if len(tok) >= 2 and tok[0] == "nameserver":
            servers.append(tok[1])
    return servers


def numeric_sockaddr(host, port, socktype):
    """(family, sockaddr) for a numeric address (IPv6 scope ids allowed), or None."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socktype, 0,
                                   socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
    except (socket.gaierror, UnicodeError, ValueError, OSError):
        return None
    for fam, _, _, _, addr in infos:
        if fam in (socket.AF_INET, socket.AF_INET6):
            return fam, addr
    return None


def check_ip(text, family):
    """True if text is a numeric address of the family (IPv6 may carry %scope)."""
    if not text:
        return False
    try:
        socket.inet_pton(family, text.split("%", 1)[0] if family == socket.AF_INET6 else text)
        return True
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------------------------------
# Routes (auto_nets)


def _dotted(text):
    """'10' / '10.1' / '10.1.2.3' -> '10.0.0.0' etc., or None if not an IPv4 prefix."""
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    for p in parts:
        if not p.isdigit() or int(p) > 255:
            return None
    return ".".join(parts + ["0"] * (4 - len(parts)))


def _keep_route(ip, width, seen, out):
    try:
        net = ipaddress.IPv4Network("%s/%d" % (ip, width), strict=False)
    except ValueError:
        return
    addr = str(net.network_address)
    if addr.startswith("0.") or addr.startswith("127."):
        return
    key = (addr, net.prefixlen)
    if key not in seen:
        seen.add(key)
        out.append(key)


def parse_ip_route(text):
    """Routes of `ip -4 route` output: lines whose first word is a.b.c.d/len (default routes,
    host routes without a /len and typed routes such as 'unreachable ...' are skipped)."""
    out, seen = [], set()
    for line in text.splitlines():
        tok = line.split()
        if not tok or "/" not in tok[0]:
            continue
        addr, _, width = tok[0].partition("/")
        ip = _dotted(addr)
        if ip is None or not width.isdigit() or int(width) > 32:
            continue
        _keep_route(ip, int(width), seen, out)
    return out


def parse_netstat_rn(text):
    """Routes of Linux `netstat -rn` output (destination, gateway, genmask columns)."""
    out, seen = [], set()
    for line in text.splitlines():
        tok = line.split()
        if len(tok) < 3:
            continue
        ip, mask = _dotted(tok[0]), tok[2]
        if ip is None or _dotted(mask) is None or tok[0].count(".") != 3:
            continue
        try:
            width = ipaddress.IPv4Network("0.0.0.0/" + mask).prefixlen
        except ValueError:
            continue
        if width == 0 or width == 32:
            continue  # default route, host route
        _keep_route(ip, width, seen, out)
    return out


def routes_payload(routes):
    """ROUTES payload: '2,<net>,<width>\\n' lines, as many whole lines as fit in a frame."""
    payload = b""
    for ip, width in routes:
        line = ("2,%s,%d\n" % (ip, width)).encode("ascii")
        if len(payload) + len(line) > MAX_PAYLOAD:
            log(1, "too many routes; ROUTES truncated")
            break
        payload += line
    return payload


def _run(argv):
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, env=env, timeout=10)
    return res.returncode, res.stdout.decode("ascii", "replace")


def list_routes():
    ip = shutil.which("ip")
    if ip is None:
        for cand in ("/sbin/ip", "/usr/sbin/ip", "/bin/ip", "/usr/bin/ip"):
            if os.access(cand, os.X_OK):
                ip = cand
                break
    try:
        if ip is not None:
            rc, text = _run([ip, "-4", "route"])
            if rc == 0:
                return parse_ip_route(text)
            log(1, "auto_nets: `ip -4 route` failed with status %d" % rc)
        netstat = shutil.which("netstat")
        if netstat is None:
            for cand in ("/sbin/netstat", "/usr/sbin/netstat", "/bin/netstat"):
                if os.access(cand, os.X_OK):
                    netstat = cand
                    break
        if netstat is not None:
            rc, text = _run([netstat, "-rn"])
            if rc == 0:
                return parse_netstat_rn(text)
        log(1, "auto_nets: neither `ip` nor `netstat` worked; sending no routes")
    except (OSError, subprocess.SubprocessError) as e:
        log(1, "auto_nets: listing routes failed: %s" % e)
    return []


# ------------------------------------------------------------------------------------------
# Buffers


class Buf(object):
    """A bytearray with a read offset: appending is amortised O(1), consuming a prefix does not
    move the rest until the consumed part is large (no O(n^2) slicing)."""

    __slots__ = ("b", "off")

    def __init__(self):
        self.b = bytearray()
        self.off = 0

    def __len__(self):
        return len(self.b) - self.off

    def append(self, data):
        self.b += data

    def view(self):
        # The caller passes this straight to a write call and drops it: a live view would
        # forbid resizing the bytearray.
        return memoryview(self.b)[self.off:]

    def consume(self, n):
        self.off += n
        if self.off >= len(self.b):
            self.b = bytearray()
            self.off = 0
        elif self.off >= 1048576 and self.off * 2 >= len(self.b):
            del self.b[:self.off]
            self.off = 0

    def clear(self):
        self.b = bytearray()
        self.off = 0


class OutQueue(object):
    """Bytes waiting for a descriptor, as a queue of segments written with one writev: payloads
    keep the objects recv() returned (no copy into a big buffer); headers and other small
    pieces are gathered into a bytearray segment so a writev carries few, large segments."""

    __slots__ = ("segs", "size", "tail")

    def __init__(self):
        self.segs = collections.deque()
        self.size = 0
        self.tail = None  # the last segment while small pieces may still be added to it

    def __len__(self):
        return self.size

    def append(self, data):
        n = len(data)
        if not n:
            return
        self.size += n
        if n < SMALL_PIECE:
            if self.tail is None:
                self.tail = bytearray()
                self.segs.append(self.tail)
            self.tail += data
        else:
            self.segs.append(data)
            self.tail = None

    def write_to(self, fd):
        """One write or writev of the queued bytes; returns the count written (may raise)."""
        segs = self.segs
        if len(segs) == 1:
            n = os.write(fd, segs[0])
        else:
            n = os.writev(fd, [segs[i] for i in range(min(len(segs), WRITEV_MAX))])
        self.consume(n)
        return n

    def consume(self, n):
        self.size -= n
        segs = self.segs
        while n:
            first = segs[0]
            length = len(first)
            if n >= length:
                segs.popleft()
                if first is self.tail:
                    self.tail = None
                n -= length
            else:
                if first is self.tail:
                    self.tail = None  # a view pins the bytearray: no appends from now on
                segs[0] = memoryview(first)[n:]
                n = 0


# ------------------------------------------------------------------------------------------
# Channels


class Chan(object):
    kind = "?"

    def __init__(self, agent, ch):
        self.agent = agent
        self.ch = ch
        self.closed = False

    def update(self):
        pass


class TcpChan(Chan):
    """One remote TCP connection. rd_done: no more TCP_DATA will be produced (we sent TCP_EOF or
    were told TCP_STOP_SENDING). wr_done: nothing more is written to the socket (we shut it
    down for writing after the daemon's TCP_EOF, or writing failed and we sent
    TCP_STOP_SENDING). Both done -> the socket is closed and the channel forgotten."""

    kind = "tcp"

    def __init__(self, agent, ch, family, addr):
        Chan.__init__(self, agent, ch)
        self.family = family
        self.addr = addr
        self.sock = None
        self.connecting = True
        self.wbuf = Buf()
        self.rd_done = False
        self.wr_done = False
        self.peer_eof = False
        self.send_credit = INITIAL_CREDIT   # bytes we may still send (credit extension)
        self.recv_window = INITIAL_CREDIT   # bytes the daemon may still send us
        self.consumed = 0                   # bytes written since our last WINDOW

    def start(self):
        try:
            s = socket.socket(self.family, socket.SOCK_STREAM)
        except OSError as e:
            self.abort(e.errno or errno.EIO, e.strerror)
            return
        s.setblocking(False)
        self.sock = s
        try:
            err = s.connect_ex(self.addr)
        except OSError as e:
            err = e.errno or errno.EINVAL
        if err in (0, errno.EISCONN):
            self.on_connected()
        elif err in (errno.EINPROGRESS, errno.EINTR, errno.EALREADY):
            self.update()
        else:
            self.abort(err)

    def on_connected(self):
        self.connecting = False
        opts = self.agent.opts
        try:
            if opts["tcp_nodelay"]:
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if opts["tcp_keepalive"]:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        except OSError:
            pass
        log(2, "ch%d: connected to %s" % (self.ch, self.addr[0]))
        if self.rd_done:
            self._shutdown(socket.SHUT_RD)
        self.flush()

    def _shutdown(self, how):
        try:
            self.sock.shutdown(how)
        except OSError:
            pass

    def update(self):
        if self.closed or self.sock is None:
            return
        a = self.agent
        if self.connecting:
            mask = WRITE
        else:
            mask = 0
            if (not self.rd_done and a.tcp_read_ok()
                    and (not a.ext_credit or self.send_credit > 0)):
                mask |= READ
            if len(self.wbuf) and not self.wr_done:
                mask |= WRITE
        a.interest(self.sock, mask, self.on_event)

    def on_event(self, mask):
        if self.closed:
            return
        if self.connecting:
            try:
                err = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            except OSError as e:
                err = e.errno or errno.EIO
            if err:
                self.abort(err)
            else:
                self.on_connected()
            return
        if mask & WRITE:
            self.flush()
        if mask & READ and not self.closed:
            self.on_readable()

    def on_readable(self):
        a = self.agent
        if self.closed or self.connecting or self.rd_done or not a.tcp_read_ok():
            return
        n = TCP_READ
        if a.ext_credit:
            n = min(n, self.send_credit)
            if n <= 0:
                self.update()
                return
        try:
            data = self.sock.recv(n)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            self.abort(e.errno or errno.EIO, e.strerror)
            return
        if not data:
            log(2, "ch%d: remote EOF" % self.ch)
            self.rd_done = True
            a.send(self.ch, CMD_TCP_EOF)
            self.update()
            self.maybe_close()
            return
        a.send_tcp_data(self.ch, data)
        if a.ext_credit:
            self.send_credit -= len(data)
            if self.send_credit <= 0:
                self.update()

    def flush(self):
        """Write buffered daemon data to the socket (one send), return credit, and shut the
        socket for writing once the daemon's EOF is reached."""
        if self.closed or self.connecting:
            return
        a = self.agent
        if len(self.wbuf) and not self.wr_done:
            try:
                n = self.sock.send(self.wbuf.view())
            except (BlockingIOError, InterruptedError):
                n = 0
            except OSError as e:
                self.write_failed(e)
                return
            if n:
                self.wbuf.consume(n)
                a.sock_queued -= n
                self.consumed += n
        if (a.ext_credit and self.consumed >= WINDOW_BATCH and not self.peer_eof
                and not self.wr_done):
            a.send(self.ch, CMD_WINDOW, struct.pack("!I", self.consumed))
            self.recv_window += self.consumed
            self.consumed = 0
        if self.peer_eof and not self.wr_done and not len(self.wbuf):
            log(2, "ch%d: shutdown(SHUT_WR) after daemon EOF" % self.ch)
            self._shutdown(socket.SHUT_WR)
            self.wr_done = True
        self.update()
        self.maybe_close()

    def write_failed(self, e):
        log(2, "ch%d: write to remote failed: %s" % (self.ch, e))
        self.agent.sock_queued -= len(self.wbuf)
        self.wbuf.clear()
        if not self.wr_done:
            self.wr_done = True
            self.agent.send(self.ch, CMD_TCP_STOP_SENDING)
        self.update()
        self.maybe_close()

    def abort(self, err, msg=None):
        """A connect or read error: both directions end (with connect-error, say why first)."""
        a = self.agent
        if not msg:
            msg = os.strerror(err)
        log(1 if self.connecting else 2,
            "ch%d: %s %s: [errno %d] %s" % (self.ch, "connect to" if self.connecting else
                                            "connection to", self.addr[0], err, msg))
        if a.ext_connect_error:
            text = ("%d,%s" % (err, msg)).encode("ascii", "replace")[:256]
            a.send(self.ch, CMD_CONNECT_ERROR, text)
        if not self.rd_done:
            self.rd_done = True
            a.send(self.ch, CMD_TCP_EOF)
        if not self.wr_done:
            self.wr_done = True
            a.send(self.ch, CMD_TCP_STOP_SENDING)
        a.sock_queued -= len(self.wbuf)
        self.wbuf.clear()
        self.close()

    def maybe_close(self):
        if self.rd_done and self.wr_done:
            self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        a = self.agent
        a.sock_queued -= len(self.wbuf)
        self.wbuf.clear()
        if self.sock is not None:
            a.interest(self.sock, 0, None)
            self.sock.close()
        a.forget(self)
        log(2, "ch%d: closed" % self.ch)

    # Frames from the daemon.

    def on_data(self, payload):
        a = self.agent
        if a.ext_credit:
            if len(payload) > self.recv_window:
                raise Fatal("TCP_DATA of %d bytes on channel %d exceeds the granted window of "
                            "%d bytes" % (len(payload), self.ch, self.recv_window))
            self.recv_window -= len(payload)
        if self.wr_done or self.peer_eof:
            log(2, "ch%d: dropping %d bytes of TCP_DATA after %s" % (
                self.ch, len(payload), "EOF" if self.peer_eof else "write end"))
            return
        if not len(self.wbuf) and not self.connecting:
            # Nothing queued: straight to the socket, buffering only what it refuses.
            try:
                sent = self.sock.send(payload)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError as e:
                self.write_failed(e)
                return
            self.consumed += sent
            if sent < len(payload):
                payload = payload[sent:]
            else:
                payload = b""
        if len(payload):
            self.wbuf.append(payload)
            a.sock_queued += len(payload)
        a.dirty.add(self)

    def on_eof(self):
        # Handled at once, not batched: a channel whose both directions end here must be
        # free before the next frame, which may reuse its number.
        self.peer_eof = True
        self.flush()

    def on_stop_sending(self):
        if self.rd_done:
            return
        self.rd_done = True
        if not self.connecting and self.sock is not None:
            self._shutdown(socket.SHUT_RD)
        self.update()
        self.maybe_close()

    def on_window(self, inc):
        self.send_credit += inc
        self.update()


class UdpChan(Chan):
    """One unconnected UDP socket; datagrams both ways carry 'ip,port,' prefixes."""

    kind = "udp"

    def __init__(self, agent, ch, family):
        Chan.__init__(self, agent, ch)
        self.sock = None
        self.last = now()
        try:
            s = socket.socket(family, socket.SOCK_DGRAM)
            s.setblocking(False)
            self.sock = s
        except OSError as e:
            log(1, "ch%d: cannot open a UDP socket: %s; its datagrams will be dropped" % (
                ch, e))
        idle = agent.opts["udp_idle_timeout"]
        if idle > 0:
            agent.call_at(self.last + idle, self.on_idle_timer)
        self.update()

    def update(self):
        if self.closed or self.sock is None:
            return
        self.agent.interest(self.sock, READ if self.agent.udp_read_ok() else 0, self.on_event)

    def on_idle_timer(self):
        if self.closed:
            return
        idle = self.agent.opts["udp_idle_timeout"]
        if now() - self.last >= idle:
            log(2, "ch%d: UDP channel idle for %gs; closed" % (self.ch, idle))
            self.close()
        else:
            self.agent.call_at(self.last + idle, self.on_idle_timer)

    def on_event(self, mask):
        a = self.agent
        for _ in range(UDP_READS_PER_EVENT):
            if self.closed or not a.udp_read_ok():
                return
            try:
                data, addr = self.sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                log(2, "ch%d: UDP receive error: %s" % (self.ch, e))
                return
            self.last = now()
            prefix = ("%s,%d," % (addr[0], addr[1])).encode("ascii", "replace")
            if len(prefix) + len(data) > MAX_PAYLOAD:
                log(1, "ch%d: dropping a %d-byte datagram that does not fit a frame" % (
                    self.ch, len(data)))
                continue
            a.send(self.ch, CMD_UDP_DATA, prefix + data)

    def on_data(self, payload):
        parts = payload.split(b",", 2)
        if len(parts) != 3:
            raise Fatal("malformed UDP_DATA on channel %d: no 'ip,port,' prefix" % self.ch)
        try:
            ip = parts[0].decode("ascii")
            port_s = parts[1].decode("ascii")
        except UnicodeDecodeError:
            raise Fatal("malformed UDP_DATA on channel %d: non-ASCII address" % self.ch)
        if not port_s.isdigit() or int(port_s) > 65535:
            raise Fatal("malformed UDP_DATA on channel %d: bad port %r" % (self.ch, port_s))
        if not (check_ip(ip, socket.AF_INET) or check_ip(ip, socket.AF_INET6)):
            raise Fatal("malformed UDP_DATA on channel %d: bad address %r" % (self.ch, ip))
        if self.sock is None:
            return
        self.last = now()
        try:
            self.sock.sendto(parts[2], (ip, int(port_s)))
        except OSError as e:
            log(1, "ch%d: UDP send to %s,%s failed: %s" % (self.ch, ip, port_s, e))

    def close(self):
        if self.closed:
            return
        self.closed = True
        if self.sock is not None:
            self.agent.interest(self.sock, 0, None)
            self.sock.close()
        self.agent.forget(self)


class DnsReq(Chan):
    """One DNS query: sent from a connected UDP socket, re-sent (to the next server) up to
    dns_attempts times spread over dns_timeout; the first reply with the query's id is
    returned. On timeout the channel is forgotten silently (the resolver retries)."""

    kind = "dns"

    def __init__(self, agent, ch, query):
        Chan.__init__(self, agent, ch)
        self.query = query
        self.socks = []
        self.attempt = 0
        self.started = now()
        self.targets = agent.dns_targets()

    def try_next(self):
        a = self.agent
        while not self.closed:
            timeout = a.opts["dns_timeout"]
            attempts = a.opts["dns_attempts"]
            t = now()
            if self.attempt >= attempts or t >= self.started + timeout:
                log(1, "ch%d: DNS query got no answer after %d attempt(s)" % (
                    self.ch, self.attempt))
                self.close()
                return
            fam, addr = self.targets[self.attempt % len(self.targets)]
            self.attempt += 1
            s = None
            try:
                s = socket.socket(fam, socket.SOCK_DGRAM)
                s.setblocking(False)
                s.connect(addr)
                s.send(self.query)
            except OSError as e:
                log(1, "ch%d: DNS query to %s failed: %s" % (self.ch, addr[0], e))
                if s is not None:
                    s.close()
                continue  # next attempt at once
            self.socks.append(s)
            a.interest(s, READ, lambda mask, s=s: self.on_readable(s))
            due = min(self.started + timeout * self.attempt / attempts, self.started + timeout)
            token = self.attempt
            a.call_at(due, lambda: self.on_timer(token))
            log(3, "ch%d: DNS query sent to %s (attempt %d)" % (self.ch, addr[0], self.attempt))
            return

    def on_timer(self, token):
        if not self.closed and token == self.attempt:
            self.try_next()

    def on_readable(self, s):
        if self.closed:
            return
        try:
            reply = s.recv(65535)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            log(2, "ch%d: DNS receive error: %s" % (self.ch, e))
            self.agent.interest(s, 0, None)
            s.close()
            self.socks.remove(s)
            if not self.socks:
                self.try_next()
            return
        if len(self.query) >= 2 and reply[:2] != self.query[:2]:
            log(2, "ch%d: ignoring a DNS reply with the wrong id" % self.ch)
            return
        self.agent.send(self.ch, CMD_DNS_RESPONSE, reply[:MAX_PAYLOAD])
        self.close()

    def close(self):
        if self.closed:
            return
        self.closed = True
        for s in self.socks:
            self.agent.interest(s, 0, None)
            s.close()
        self.socks = []
        self.agent.forget(self)


# ------------------------------------------------------------------------------------------
# The agent


class Agent(object):
    def __init__(self, opts):
        self.opts = opts
        self.sel = selectors.DefaultSelector()
        self.masks = {}
        self.inbuf = bytearray()
        self.out = OutQueue()
        self.chans = {}
        self.dirty = set()
        self.timers = []
        self.timer_seq = 0
        self.ext_credit = False
        self.ext_connect_error = False
        self.negotiated = False
        self.opened_any = False
        self.fullness = 0
        self.too_full = False
        self.out_paused = False
        self.stdin_paused = False
        self.stdin_chunk = STDIN_SMALL_CHUNK
        self.sock_queued = 0
        self.last_gate = None
        self.lbs = opts["latency_buffer_size"]
        self.to_ns = None
        self.resolv_cache = (None, [])
        self.host_lock = threading.Lock()
        self.host_results = []
        self.host_reported = {}
        self.wake_r = self.wake_w = None
        self.hosts_watching = False
        self.hosts_key = None
        if opts["to_nameserver"]:
            host, port = parse_to_nameserver(opts["to_nameserver"])
            try:
                infos = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)
            except (OSError, UnicodeError) as e:
                raise Fatal("cannot resolve to_nameserver %r: %s" % (opts["to_nameserver"], e))
            self.to_ns = (infos[0][0], infos[0][4])

    # Selector bookkeeping: one registration per fd, changed only when the mask changes.

    def interest(self, fobj, mask, handler):
        fd = fobj if isinstance(fobj, int) else fobj.fileno()
        cur = self.masks.get(fd, 0)
        if mask == cur:
            return
        if cur == 0:
            self.sel.register(fobj, mask, handler)
            self.masks[fd] = mask
        elif mask == 0:
            self.sel.unregister(fobj)
            del self.masks[fd]
        else:
            self.sel.modify(fobj, mask, handler)
            self.masks[fd] = mask

    def call_at(self, when, fn):
        self.timer_seq += 1
        heapq.heappush(self.timers, (when, self.timer_seq, fn))

    # Gates.

    def latency_active(self):
        return self.opts["latency_control"] and not self.ext_credit

    def tcp_read_ok(self):
        return not self.out_paused and not self.too_full

    def udp_read_ok(self):
        return not self.out_paused

    # Output.

    def send(self, ch, cmd, payload=b""):
        n = len(payload)
        if n > MAX_PAYLOAD:
            raise Fatal("internal: frame of %d bytes" % n)
        if verbosity >= 3:
            log(3, "> ch%d %s %d" % (ch, cmd_name(cmd), n))
        self.out.append(HDR.pack(MAGIC, ch, cmd, n))
        if n:
            self.out.append(payload)
        self.fullness += n

    def send_tcp_data(self, ch, data):
        self.send(ch, CMD_TCP_DATA, data)
        self.check_fullness()

    def check_fullness(self):
        if self.latency_active() and not self.too_full and self.fullness > self.lbs:
            self.send(0, CMD_PING, b"rttest")
            self.too_full = True

    def flush_out(self):
        if len(self.out):
            try:
                self.out.write_to(1)
            except (BlockingIOError, InterruptedError):
                pass
            except OSError as e:
                if e.errno in (errno.EPIPE, errno.ECONNRESET):
                    raise Quit(0, "stdout closed")
                raise
        cap = self.opts["max_output_buffer"]
        if self.out_paused:
            if len(self.out) <= cap // 4:
                self.out_paused = False
        elif len(self.out) > cap:
            self.out_paused = True
        self.interest(1, WRITE if len(self.out) else 0, self.on_stdout)

    def on_stdout(self, mask):
        self.flush_out()

    def final_flush(self, seconds):
        """Best effort: push what is queued to stdout for a bounded time before exiting."""
        import select
        deadline = now() + seconds
        while len(self.out):
            left = deadline - now()
            if left <= 0:
                return
            try:
                _, w, _ = select.select([], [1], [], left)
                if w:
                    self.out.write_to(1)
            except (BlockingIOError, InterruptedError):
                continue
            except (OSError, ValueError):
                return

    # Input.

    def on_stdin(self, mask):
        try:
            data = os.read(0, self.stdin_chunk)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as e:
            if e.errno == errno.ECONNRESET:
                data = b""
            else:
                raise
        if not data:
            raise Quit(0, "EOF on stdin")
        if len(data) == self.stdin_chunk:
            self.stdin_chunk = STDIN_CHUNK
        elif len(data) < STDIN_SMALL_CHUNK:
            self.stdin_chunk = STDIN_SMALL_CHUNK
        pos = 0
        if self.inbuf:
            # The frame split across two reads is completed first: only its bytes are copied.
            ib = self.inbuf
            if len(ib) < 8:
                pos = min(8 - len(ib), len(data))
                ib += data[:pos]
                if len(ib) < 8:
                    return
            magic, ch, cmd, n = HDR.unpack_from(ib, 0)
            if magic != MAGIC:
                raise Fatal("bad frame magic %r (stream out of sync)" % bytes(ib[:2]))
            take = min(8 + n - len(ib), len(data) - pos)
            ib += data[pos:pos + take]
            pos += take
            if len(ib) < 8 + n:
                return
            self.inbuf = bytearray()
            payload = memoryview(ib)[8:]
            self.dispatch(ch, cmd, payload if cmd == CMD_TCP_DATA else payload.tobytes())
        # The rest is parsed in place: TCP_DATA payloads are views of `data` (immutable bytes),
        # passed on to the socket without a copy; other payloads become small bytes objects.
        mv = memoryview(data)
        end = len(data)
        while end - pos >= 8:
            magic, ch, cmd, n = HDR.unpack_from(data, pos)
            if magic != MAGIC:
                raise Fatal("bad frame magic %r (stream out of sync)" % data[pos:pos + 2])
            if end - pos - 8 < n:
                break
            start = pos + 8
            pos = start + n
            self.dispatch(ch, cmd, mv[start:pos] if cmd == CMD_TCP_DATA else data[start:pos])
        if pos < end:
            self.inbuf = bytearray(mv[pos:])
        dirty, self.dirty = self.dirty, set()
        for c in dirty:
            c.flush()

    def dispatch(self, ch, cmd, payload):
        if verbosity >= 3:
            log(3, "< ch%d %s %d" % (ch, cmd_name(cmd), len(payload)))
        if cmd == CMD_PING:
            self.on_ping(ch, payload)
        elif cmd == CMD_PONG:
            self.too_full = False
            self.fullness = 0
        elif cmd == CMD_TCP_CONNECT:
            self.on_tcp_connect(ch, payload)
        elif cmd in (CMD_TCP_DATA, CMD_TCP_EOF, CMD_TCP_STOP_SENDING, CMD_WINDOW):
            if cmd == CMD_WINDOW and not self.ext_credit:
                raise Fatal("WINDOW on channel %d but the credit extension is not active" % ch)
            c = self.channel(ch, cmd, "tcp")
            if c is None:
                return
            if cmd == CMD_TCP_DATA:
                c.on_data(payload)
            elif cmd == CMD_TCP_EOF:
                c.on_eof()
            elif cmd == CMD_TCP_STOP_SENDING:
                c.on_stop_sending()
            else:
                if len(payload) != 4:
                    raise Fatal("WINDOW on channel %d has a %d-byte payload" % (ch, len(payload)))
                inc = struct.unpack("!I", payload)[0]
                if inc < 1 or inc > MAX_WINDOW_INCREMENT:
                    raise Fatal("WINDOW on channel %d has a bad increment %d" % (ch, inc))
                c.on_window(inc)
        elif cmd == CMD_DNS_REQ:
            self.new_channel(ch, cmd)
            c = DnsReq(self, ch, payload)
            self.chans[ch] = c
            c.try_next()
        elif cmd == CMD_UDP_OPEN:
            self.new_channel(ch, cmd)
            try:
                fam = int(payload.decode("ascii")) if payload.strip().isdigit() else None
            except (UnicodeDecodeError, ValueError):
                fam = None
            if fam is None:
                raise Fatal("malformed UDP_OPEN payload %r on channel %d" % (payload[:40], ch))
            c = UdpChan(self, ch, socket.AF_INET if fam == 2 else socket.AF_INET6)
            self.chans[ch] = c
        elif cmd == CMD_UDP_DATA:
            c = self.channel(ch, cmd, "udp")
            if c is not None:
                c.on_data(payload)
        elif cmd == CMD_UDP_CLOSE:
            c = self.channel(ch, cmd, "udp")
            if c is not None:
                log(2, "ch%d: UDP channel closed by the daemon" % ch)
                c.close()
        elif cmd == CMD_HOST_REQ:
            self.on_host_req(payload)
        elif cmd == CMD_EXIT:
            raise Quit(0, "EXIT from the daemon")
        elif cmd in (CMD_ROUTES, CMD_HOST_LIST, CMD_DNS_RESPONSE, CMD_CONNECT_ERROR):
            raise Fatal("%s on channel %d is not valid from the daemon" % (cmd_name(cmd), ch))
        else:
            raise Fatal("unknown command 0x%04x on channel %d" % (cmd, ch))

    def channel(self, ch, cmd, kind):
        c = self.chans.get(ch)
        if c is None:
            log(2, "ch%d: %s for a closed or unknown channel; ignored" % (ch, cmd_name(cmd)))
            return None
        if c.kind != kind:
            raise Fatal("%s on channel %d, which is a %s channel" % (cmd_name(cmd), ch, c.kind))
        return c

    def new_channel(self, ch, cmd):
        if ch == 0:
            raise Fatal("%s on the control channel 0" % cmd_name(cmd))
        if ch in self.chans:
            raise Fatal("%s on channel %d, which is still live" % (cmd_name(cmd), ch))
        self.opened_any = True

    def forget(self, c):
        if self.chans.get(c.ch) is c:
            del self.chans[c.ch]
        self.dirty.discard(c)

    def on_ping(self, ch, payload):
        words = payload.split()
        if (words and words[0] == EXT_PREFIX and not self.negotiated and not self.opened_any):
            self.negotiated = True
            accepted = []
            for w in words[1:]:
                if w in KNOWN_EXTENSIONS and w not in accepted:
                    accepted.append(w)
            self.send(ch, CMD_PONG, b" ".join([EXT_OK] + accepted))
            self.ext_credit = b"credit" in accepted
            self.ext_connect_error = b"connect-error" in accepted
            log(2, "extensions: %s" % (b" ".join(accepted).decode("ascii") or "none"))
            return
        self.send(ch, CMD_PONG, payload)

    def on_tcp_connect(self, ch, payload):
        self.new_channel(ch, CMD_TCP_CONNECT)
        try:
            fam_s, ip, port_s = payload.decode("ascii").split(",")
        except (UnicodeDecodeError, ValueError):
            raise Fatal("malformed TCP_CONNECT payload %r on channel %d" % (payload[:80], ch))
        if not fam_s.isdigit() or not port_s.isdigit() or int(port_s) > 65535:
            raise Fatal("malformed TCP_CONNECT payload %r on channel %d" % (payload[:80], ch))
        family = socket.AF_INET if int(fam_s) == 2 else socket.AF_INET6
        if not check_ip(ip, family):
            raise Fatal("TCP_CONNECT on channel %d: %r is not an IPv%s address" % (
                ch, ip, "4" if family == socket.AF_INET else "6"))
        port = int(port_s)
        if family == socket.AF_INET6 and "%" in ip:
            found = numeric_sockaddr(ip, port, socket.SOCK_STREAM)
            addr = found[1] if found else (ip.split("%", 1)[0], port, 0, 0)
        elif family == socket.AF_INET6:
            addr = (ip, port, 0, 0)
        else:
            addr = (ip, port)
        log(2, "ch%d: TCP connect to %s port %d" % (ch, ip, port))
        c = TcpChan(self, ch, family, addr)
        self.chans[ch] = c
        c.start()

    # DNS targets.

    def dns_targets(self):
        if self.to_ns is not None:
            return [self.to_ns]
        servers = self.resolv_servers()
        if not servers:
            servers = [(socket.AF_INET, ("127.0.0.1", 53))]
        first = random.randrange(len(servers))
        return servers[first:] + servers[:first]

    def resolv_servers(self):
        path = "/etc/resolv.conf"
        try:
            st = os.stat(path)
            key = (st.st_mtime, st.st_size, st.st_ino)
        except OSError:
            return []
        if self.resolv_cache[0] == key:
            return self.resolv_cache[1]
        try:
            with open(path, "r", errors="replace") as f:
                names = parse_resolv_conf(f.read())
        except OSError:
            names = []
        servers = []
        for name in names:
            found = numeric_sockaddr(name, 53, socket.SOCK_DGRAM)
            if found is not None:
                servers.append(found)
        self.resolv_cache = (key, servers)
        return servers

    # Seed hosts (HOST_REQ), and with auto_hosts the server's /etc/hosts.

    def on_host_req(self, payload):
        if self.opts["auto_hosts"] and not self.hosts_watching:
            self.hosts_watching = True
            self.hostwatch_tick()
        text = payload.decode("ascii", "replace")
        names = []
        for name in text.replace(",", "\n").split("\n"):
            name = name.strip()
            if not name:
                continue
            if not HOSTNAME_RE.match(name) or len(name) > 253:
                log(1, "ignoring seed host %r" % name)
                continue
            if name not in names:
                names.append(name)
        if not names:
            return
        self.ensure_wake_pipe()
        t = threading.Thread(target=resolve_seeds,
                             args=(names, self.host_results, self.host_lock, self.wake_w))
        t.daemon = True
        t.start()

    def hostwatch_tick(self):
        try:
            st = os.stat(HOSTS_PATH)
            key = (st.st_mtime, st.st_size, st.st_ino)
        except OSError:
            key = None
        if key is not None and key != self.hosts_key:
            self.hosts_key = key
            try:
                with open(HOSTS_PATH, "r", errors="replace") as f:
                    pairs = parse_etc_hosts(f.read())
            except OSError as e:
                log(1, "hostwatch: %s: %s" % (HOSTS_PATH, e))
                pairs = []
            if pairs:
                self.ensure_wake_pipe()
                with self.host_lock:
                    self.host_results.extend(pairs)
                try:
                    os.write(self.wake_w, b"x")
                except OSError:
                    pass
        self.call_at(now() + HOSTS_RESCAN, self.hostwatch_tick)

    def ensure_wake_pipe(self):
        if self.wake_r is None:
            self.wake_r, self.wake_w = os.pipe()
            os.set_blocking(self.wake_r, False)
            os.set_blocking(self.wake_w, False)
            self.interest(self.wake_r, READ, self.on_wake)

    def on_wake(self, mask):
        try:
            os.read(self.wake_r, 4096)
        except OSError:
            pass
        with self.host_lock:
            results, self.host_results[:] = list(self.host_results), []
        lines = []
        for name, ip in results:
            if ip.startswith("127.") or ip.startswith("255."):
                continue
            labels = (name,) if check_ip(name, socket.AF_INET) else (name, name.split(".")[0])
            for n in labels:
                if n and n != "localhost" and self.host_reported.get(n) != ip:
                    self.host_reported[n] = ip
                    lines.append(("%s,%s\n" % (n, ip)).encode("ascii"))
        payload = b""
        for line in lines:
            if len(payload) + len(line) > MAX_PAYLOAD:
                self.send(0, CMD_HOST_LIST, payload)
                payload = b""
            payload += line
        if payload:
            self.send(0, CMD_HOST_LIST, payload)

    # The loop.

    def start(self):
        os.set_blocking(0, False)
        os.set_blocking(1, False)
        grow_pipes()
        self.out.append(SYNC_HEADER)
        self.send(0, CMD_PING, b"chicken")
        self.flush_out()
        self.send(0, CMD_ROUTES, routes_payload(list_routes()) if self.opts["auto_nets"]
                  else b"")

    def run_timers(self):
        t = now()
        while self.timers and self.timers[0][0] <= t:
            _, _, fn = heapq.heappop(self.timers)
            fn()

    def end_iteration(self):
        if self.dirty:
            dirty, self.dirty = self.dirty, set()
            for c in dirty:
                c.flush()
        self.check_fullness()
        self.flush_out()
        gate = (self.tcp_read_ok(), self.udp_read_ok())
        if gate != self.last_gate:
            self.last_gate = gate
            for c in list(self.chans.values()):
                c.update()
        if not self.ext_credit:
            cap = self.opts["max_socket_queue"]
            if self.stdin_paused:
                if self.sock_queued <= cap // 2:
                    self.stdin_paused = False
            elif self.sock_queued > cap:
                self.stdin_paused = True
        else:
            self.stdin_paused = False
        self.interest(0, 0 if self.stdin_paused else READ, self.on_stdin)

    def loop(self):
        self.start()
        while True:
            self.end_iteration()
            timeout = None
            if self.timers:
                timeout = max(0.0, self.timers[0][0] - now())
            for key, mask in self.sel.select(timeout):
                key.data(mask)
            self.run_timers()

    def shutdown(self):
        for c in list(self.chans.values()):
            try:
                c.close()
            except Exception:
                pass


def grow_pipes():
    """Best effort: enlarge stdin/stdout when they are pipes (not sockets or ttys)."""
    if not sys.platform.startswith("linux"):
        return
    for fd in (0, 1):
        for size in (PIPE_SIZE, PIPE_SIZE // 4):
            try:
                fcntl.fcntl(fd, F_SETPIPE_SZ, size)
                break
            except OSError:
                continue


def parse_etc_hosts(text):
    """(name, ipv4) pairs of an /etc/hosts text: IPv4 lines only (HOST_LIST carries IPv4),
    every valid name of the line, comments dropped."""
    pairs = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or not check_ip(words[0], socket.AF_INET):
            continue
        for name in words[1:]:
            if HOSTNAME_RE.match(name) and len(name) <= 253:
                pairs.append((name, words[0]))
    return pairs


def resolve_seeds(names, results, lock, wake_fd):
    """Thread body: resolve each seed name once (IPv4) and hand the pairs to the loop."""
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)
        except (OSError, UnicodeError) as e:
            log(1, "seed host %s: %s" % (name, e))
            continue
        if not infos:
            continue
        with lock:
            results.append((name, infos[0][4][0]))
        try:
            os.write(wake_fd, b"x")
        except OSError:
            pass


def raise_fd_limit():
    """One socket per channel: a server's default soft limit (often 1024) would cap the
    tunnel near 1,000 connections, so take the hard limit, as the daemon does."""
    try:
        import resource
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY:
            hard = 1 << 20
        if soft != resource.RLIM_INFINITY and soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            log(2, "open files limit raised from %d to %d" % (soft, hard))
    except (ImportError, ValueError, OSError) as e:
        log(1, "cannot raise the open files limit: %s" % e)


def main(options=None):
    global verbosity
    code = 99
    agent = None
    try:
        opts = parse_options(options)
        verbosity = opts["verbosity"]
        if opts["_unknown"]:
            log(2, "ignoring unknown options: %s" % ", ".join(opts["_unknown"]))
        log(2, "starting (python %s, pid %d)" % (sys.version.split()[0], os.getpid()))
        raise_fd_limit()
        agent = Agent(opts)
        agent.loop()
    except Quit as e:
        log(2, "exiting: %s" % e)
        code = e.code
        if agent is not None:
            agent.final_flush(1.0)
            agent.shutdown()
    except Fatal as e:
        verbosity = max(verbosity, 0)
        log(0, "fatal: %s" % e)
        code = 99
    except KeyboardInterrupt:
        code = 0
    except Exception:
        import traceback
        log(0, "fatal: internal error:\n" + traceback.format_exc().rstrip())
        code = 99
    try:
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)


if __name__ == "__main__" and sys.argv[0] != "-c":
    main(sys.argv[1] if len(sys.argv) > 1 else None)

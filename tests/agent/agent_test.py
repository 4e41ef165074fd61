#!/usr/bin/env python3
"""Tests of the remote agent (daemon/remote/agent.py), run locally without ssh or root.

The test plays the daemon: it starts the agent as a subprocess (directly, through the exact
stage1 bootstrap command line, or over one socketpair used as both stdin and stdout), speaks
mux frames on its stdin/stdout, and gives it only loopback servers that the test starts itself
(127.0.0.1 and ::1, ephemeral ports).

Usage: python3 tests/agent/agent_test.py [-v] [TestClass.test_name ...]
Prints one line per test (unittest verbosity 2) and exits 0 when everything passed, else 1.
"""

import ast
import errno
import hashlib
import importlib.util
import json
import os
import queue
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.dont_write_bytecode = True  # importing agent.py must not leave __pycache__ in the tree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
AGENT = os.path.join(ROOT, "daemon", "remote", "agent.py")
PY = sys.executable or "python3"
WAIT = 15.0  # upper bound of any single wait; normal runs take milliseconds

SYNC = b"\0\0SSHUTTLE0001"
MAGIC = 0x5353
HDR = struct.Struct("!HHHH")

EXIT, PING, PONG = 0x4200, 0x4201, 0x4202
TCP_CONNECT, TCP_STOP_SENDING, TCP_EOF, TCP_DATA = 0x4203, 0x4204, 0x4205, 0x4206
ROUTES, HOST_REQ, HOST_LIST = 0x4207, 0x4208, 0x4209
DNS_REQ, DNS_RESPONSE = 0x420A, 0x420B
UDP_OPEN, UDP_DATA, UDP_CLOSE = 0x420C, 0x420D, 0x420E
WINDOW, CONNECT_ERROR = 0x4280, 0x4281
MIB = 1048576


# ------------------------------------------------------------------------------------------
# The daemon side of the bootstrap (reference for the C++ code)


def stage1(n):
    """The exact Python one-liner the daemon passes to `python3 -c` for an upload of n bytes."""
    return ("import os,sys;n=%d;b=bytearray();[b.extend(d or sys.exit(98)) for d in "
            "iter(lambda:os.read(0,n-len(b)) if n>len(b) else None,None)];exec(bytes(b))" % n)


def remote_command(n):
    """The one argv word given to ssh after `--` (parsed by the remote login shell)."""
    return ("/bin/sh -c 'P=python3; $P -V >/dev/null 2>&1 || P=python; "
            "$P -V >/dev/null 2>&1 || exit 97; exec \"$P\" -c \"%s\"; exit 97'" % stage1(n))


def build_upload(source, options):
    """agent.py's bytes, then the line that calls main() with the options."""
    if not source.endswith(b"\n"):
        source += b"\n"
    literal = json.dumps(json.dumps(options)).encode("ascii")
    return source + b"main(json.loads(" + literal + b"))\n"


# ------------------------------------------------------------------------------------------
# Frame codec


def frame(ch, cmd, payload=b""):
    return HDR.pack(MAGIC, ch, cmd, len(payload)) + payload


class FrameParser(object):
    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        frames, off = [], 0
        while len(self.buf) - off >= 8:
            magic, ch, cmd, n = HDR.unpack_from(self.buf, off)
            if magic != MAGIC:
                raise AssertionError("agent sent bad magic 0x%04x" % magic)
            if len(self.buf) - off - 8 < n:
                break
            frames.append((ch, cmd, bytes(self.buf[off + 8:off + 8 + n])))
            off += 8 + n
        del self.buf[:off]
        return frames


def have_ipv6():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


HAVE_V6 = have_ipv6()


# ------------------------------------------------------------------------------------------
# The agent under test


class AgentProc(object):
    """An agent subprocess plus a reader thread that parses its output into a queue. The
    reader answers PING with PONG while auto_pong is set, tracks the credit the agent grants
    (WINDOW), and returns credit for received data while auto_window is set."""

    def __init__(self, options=None, mode="direct", extra=b"", env=None, upload=None):
        self.options = options if options is not None else {}
        self.frames = queue.Queue()
        self.wlock = threading.Lock()
        self.cv = threading.Condition()
        self.auto_pong = True
        self.auto_window = False
        self.credit = {}
        self.consumed = {}
        self.sync = None
        self.reading = threading.Event()          # cleared: the "daemon" stops reading
        self.reading.set()
        self.stderr = tempfile.TemporaryFile()
        self.sock = None
        if mode == "socketpair":
            mine, theirs = socket.socketpair()
            self.proc = subprocess.Popen([PY, AGENT, json.dumps(self.options)],
                                         stdin=theirs.fileno(), stdout=theirs.fileno(),
                                         stderr=self.stderr, env=env)
            theirs.close()
            self.sock = mine
            self.rfd = self.wfd = mine.fileno()
        elif mode == "stage1":
            with open(AGENT, "rb") as f:
                data = build_upload(f.read(), self.options) if upload is None else upload
            self.proc = subprocess.Popen(["/bin/sh", "-c", remote_command(len(data))],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.stderr, bufsize=0, env=env)
            self.rfd, self.wfd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
            # The upload and the first frames in one write, before the sync header arrives.
            self.write(data + extra)
        else:
            self.proc = subprocess.Popen([PY, AGENT, json.dumps(self.options)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=self.stderr, bufsize=0, env=env)
            self.rfd, self.wfd = self.proc.stdout.fileno(), self.proc.stdin.fileno()
        self.reader = threading.Thread(target=self._read_loop)
        self.reader.daemon = True
        self.reader.start()

    # Output of the agent.

    def _read_loop(self):
        parser = FrameParser()
        pending = b""
        try:
            while True:
                self.reading.wait()
                data = os.read(self.rfd, 1 << 20)
                if not data:
                    break
                if self.sync is None:
                    pending += data
                    if len(pending) < len(SYNC):
                        continue
                    self.sync, data = pending[:len(SYNC)], pending[len(SYNC):]
                for ch, cmd, payload in parser.feed(data):
                    self._auto(ch, cmd, payload)
                    self.frames.put((ch, cmd, payload))
        except (OSError, AssertionError) as e:
            self.frames.put(("error", str(e)))
        if self.sync is None and pending:
            self.sync = pending
        self.frames.put(None)

    def _auto(self, ch, cmd, payload):
        if cmd == PING and self.auto_pong:
            self.send(ch, PONG, payload)
        elif cmd == WINDOW:
            with self.cv:
                self.credit[ch] = self.credit.get(ch, 0) + struct.unpack("!I", payload)[0]
                self.cv.notify_all()
        elif cmd == TCP_DATA and self.auto_window:
            got = self.consumed.get(ch, 0) + len(payload)
            if got >= MIB // 2:
                self.send(ch, WINDOW, struct.pack("!I", got))
                got = 0
            self.consumed[ch] = got

    def next(self, timeout=WAIT):
        try:
            item = self.frames.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("no frame from the agent within %gs" % timeout)
        if item is not None and item[0] == "error":
            raise AssertionError("reading the agent failed: %s" % item[1])
        return item

    def poll(self, seconds):
        """Every frame that arrives within `seconds` (used to show that nothing arrives)."""
        out, deadline = [], time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return out
            try:
                item = self.frames.get(timeout=left)
            except queue.Empty:
                return out
            if item is None:
                self.frames.put(None)
                return out
            out.append(item)

    def expect(self, ch, cmd, timeout=WAIT, ignore_control=True):
        """The next frame, which must be (ch, cmd); PING/PONG on channel 0 are skipped."""
        deadline = time.monotonic() + timeout
        while True:
            item = self.next(max(0.0, deadline - time.monotonic()))
            if item is None:
                raise AssertionError("agent output ended while waiting for %s" % cmd_name(cmd))
            if ignore_control and item[0] == 0 and item[1] in (PING, PONG) and cmd not in (
                    PING, PONG):
                continue
            if (item[0], item[1]) != (ch, cmd):
                raise AssertionError("expected ch%d %s, got ch%d %s %r" % (
                    ch, cmd_name(cmd), item[0], cmd_name(item[1]), item[2][:100]))
            return item[2]

    def handshake(self):
        """The start: sync header, PING chicken, ROUTES. Returns the ROUTES payload."""
        payload = self.expect(0, PING)
        if payload != b"chicken":
            raise AssertionError("first PING was %r" % payload)
        routes = self.expect(0, ROUTES)
        if self.sync != SYNC:
            raise AssertionError("sync header was %r" % self.sync)
        return routes

    def negotiate(self, offer=b"sshuttle-ext1 credit connect-error"):
        self.send(0, PING, offer)
        return self.expect(0, PONG)

    # Input of the agent.

    def write(self, data):
        view = memoryview(data)
        with self.wlock:
            while len(view):
                n = os.write(self.wfd, view[:262144])
                view = view[n:]

    def send(self, ch, cmd, payload=b""):
        self.write(frame(ch, cmd, payload))

    def open_tcp(self, ch, host, port):
        with self.cv:
            self.credit[ch] = MIB
        fam = 2 if ":" not in host else 10
        self.send(ch, TCP_CONNECT, ("%d,%s,%d" % (fam, host, port)).encode())

    def send_tcp(self, ch, data, credit=False):
        """TCP_DATA in 65535-byte frames; with credit, never beyond the agent's window."""
        view = memoryview(data)
        while len(view):
            n = min(65535, len(view))
            if credit:
                with self.cv:
                    deadline = time.monotonic() + WAIT
                    while self.credit.get(ch, 0) <= 0:
                        left = deadline - time.monotonic()
                        if left <= 0:
                            raise AssertionError("no WINDOW from the agent on ch%d" % ch)
                        self.cv.wait(left)
                    n = min(n, self.credit[ch])
                    self.credit[ch] -= n
            self.send(ch, TCP_DATA, bytes(view[:n]))
            view = view[n:]

    def close_stdin(self):
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_WR)
        else:
            self.proc.stdin.close()

    def wait(self, timeout=WAIT):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("agent did not exit within %gs" % timeout)

    def stderr_text(self):
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                try:
                    f.close()
                except OSError:
                    pass
        if self.sock is not None:
            self.sock.close()
        self.reading.set()
        self.reader.join(WAIT)
        self.stderr.close()


def cmd_name(cmd):
    names = {v: k for k, v in globals().items()
             if isinstance(v, int) and k.isupper() and 0x4200 <= v <= 0x42FF and k != "MAGIC"}
    return names.get(cmd, "0x%04x" % cmd)


# ------------------------------------------------------------------------------------------
# Loopback servers


class TcpServer(object):
    """A loopback listener; each accepted connection runs handler(conn) in its own thread."""

    def __init__(self, handler, family=socket.AF_INET, backlog=256):
        self.host = "127.0.0.1" if family == socket.AF_INET else "::1"
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((self.host, 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.threads = []
        self.conns = []
        if handler is not None:
            self.sock.settimeout(0.1)
            self.stopping = False
            t = threading.Thread(target=self._accept_loop)
            t.daemon = True
            t.start()
            self.threads.append(t)

    def _accept_loop(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(WAIT)
            self.conns.append(conn)
            t = threading.Thread(target=self._run, args=(conn,))
            t.daemon = True
            t.start()
            self.threads.append(t)

    def _run(self, conn):
        try:
            self.handler(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self.stopping = True
        self.sock.close()
        for t in self.threads:
            t.join(WAIT)


def echo_handler(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            conn.shutdown(socket.SHUT_WR)
            return
        conn.sendall(data)


class SinkSource(object):
    """Handler that sends `data` (then shuts down writing) while hashing all it receives."""

    def __init__(self, data):
        self.data = data
        self.received = hashlib.sha256()
        self.count = 0
        self.done = threading.Event()

    def __call__(self, conn):
        def sender():
            try:
                conn.sendall(self.data)
                conn.shutdown(socket.SHUT_WR)
            except OSError:
                pass
        t = threading.Thread(target=sender)
        t.daemon = True
        t.start()
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            self.received.update(chunk)
            self.count += len(chunk)
        t.join(WAIT * 4)
        self.done.set()


class UdpServer(object):
    """A loopback UDP socket served by reply(data) -> bytes or None, in a thread."""

    def __init__(self, reply, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.received = []
        self.stopping = False
        self.thread = threading.Thread(target=self._loop)
        self.thread.daemon = True
        self.thread.start()

    def _loop(self):
        while not self.stopping:
            try:
                data, addr = self.sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            self.received.append((data, addr))
            answer = self.reply(data)
            if answer is not None:
                self.sock.sendto(answer, addr)

    def close(self):
        self.stopping = True
        self.thread.join(WAIT)
        self.sock.close()


def unused_port(family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.bind(("127.0.0.1" if family == socket.AF_INET else "::1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def dns_query(qid, name=b"example"):
    return struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + bytes([len(name)]) + name + \
        b"\0\0\1\0\1"


def dns_answer(query):
    return query[:2] + b"\x81\x80" + query[4:] + b"ANSWER"


def load_agent_module():
    spec = importlib.util.spec_from_file_location("sshuttle_agent", AGENT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# ------------------------------------------------------------------------------------------
# Tests


class Base(unittest.TestCase):
    def agent(self, options=None, **kw):
        a = AgentProc(options, **kw)
        self.addCleanup(a.kill)
        return a

    def server(self, handler, **kw):
        s = TcpServer(handler, **kw)
        self.addCleanup(s.close)
        return s

    def udp_server(self, reply, **kw):
        s = UdpServer(reply, **kw)
        self.addCleanup(s.close)
        return s

    def collect_tcp(self, a, ch, until_eof=True, limit=None):
        """TCP_DATA of ch until TCP_EOF (returns data, frames seen after EOF not consumed)."""
        h, total = hashlib.sha256(), 0
        while True:
            item = a.next()
            self.assertIsNotNone(item, "agent output ended")
            c, cmd, payload = item
            if (c == 0 and cmd in (PING, PONG)) or cmd == WINDOW:
                continue  # the reader thread answered PINGs and counted the credit
            self.assertEqual(c, ch, "frame for another channel: %r" % (item[:2],))
            if cmd == TCP_EOF:
                return h.hexdigest(), total
            self.assertEqual(cmd, TCP_DATA, "unexpected %s" % cmd_name(cmd))
            h.update(payload)
            total += len(payload)

    def assert_fatal(self, a, pattern):
        self.assertEqual(a.wait(), 99, a.stderr_text())
        err = a.stderr_text()
        self.assertRegex(err, "agent: fatal: .*" + pattern)


class StartupTest(Base):
    def test_sync_header_ping_chicken_and_empty_routes(self):
        a = self.agent({})
        self.assertEqual(a.handshake(), b"")
        a.send(0, PONG, b"chicken")
        a.send(0, PING, b"chicken")
        self.assertEqual(a.expect(0, PONG), b"chicken")

    def test_ping_is_echoed_exactly(self):
        a = self.agent({})
        a.handshake()
        for payload in (b"rttest", b"", b"\0\xff binary", bytes(range(256)) * 100):
            a.send(0, PING, payload)
            self.assertEqual(a.expect(0, PONG), payload)

    def test_auto_nets_sends_well_formed_ipv4_routes(self):
        a = self.agent({"auto_nets": True})
        routes = a.handshake().decode("ascii")
        for line in routes.splitlines():
            m = re.match(r"^2,(\d+)\.(\d+)\.(\d+)\.(\d+),(\d+)$", line)
            self.assertIsNotNone(m, line)
            self.assertNotIn(m.group(1), ("0", "127"))
            self.assertLessEqual(int(m.group(5)), 32)
        self.assertTrue(routes == "" or routes.endswith("\n"))

    def test_eof_on_stdin_exits_0(self):
        a = self.agent({})
        a.handshake()
        a.close_stdin()
        self.assertEqual(a.wait(5), 0, a.stderr_text())

    def test_exit_command_exits_0(self):
        a = self.agent({})
        a.handshake()
        a.send(0, EXIT)
        self.assertEqual(a.wait(5), 0, a.stderr_text())

    def test_stdout_is_mux_only_and_logs_go_to_stderr(self):
        srv = self.server(echo_handler)
        a = self.agent({"verbosity": 3})
        a.handshake()
        a.open_tcp(1, "127.0.0.1", srv.port)
        a.send_tcp(1, b"x")
        self.assertEqual(a.expect(1, TCP_DATA), b"x")
        a.close_stdin()
        self.assertEqual(a.wait(5), 0)
        self.assertIn("agent: ", a.stderr_text())

    def test_socketpair_as_stdin_and_stdout(self):
        srv = self.server(echo_handler)
        a = self.agent({}, mode="socketpair")
        a.handshake()
        a.open_tcp(3, "127.0.0.1", srv.port)
        a.send_tcp(3, b"over one socket")
        self.assertEqual(a.expect(3, TCP_DATA), b"over one socket")
        a.close_stdin()
        self.assertEqual(a.wait(5), 0)


class Stage1Test(Base):
    def test_one_liner_is_shell_safe(self):
        text = stage1(12345)
        for bad in ("'", '"', "\\", "$", "`", "!", "\n"):
            self.assertNotIn(bad, text)
        with open(AGENT) as f:
            src = f.read()
        self.assertIn(stage1(0).replace("n=0;", "n=<N>;"), src)
        self.assertIn(remote_command(0).replace(stage1(0), "<stage1>"), src)

    def test_bootstrap_does_not_swallow_frames_sent_with_the_upload(self):
        srv = self.server(echo_handler)
        extra = (frame(0, PING, b"sshuttle-ext1 credit connect-error") + frame(0, PING, b"p2")
                 + frame(0, PONG, b"chicken")
                 + frame(9, TCP_CONNECT, ("2,127.0.0.1,%d" % srv.port).encode())
                 + frame(9, TCP_DATA, b"early bytes"))
        a = self.agent({"verbosity": 1}, mode="stage1", extra=extra)
        a.auto_pong = False
        self.assertEqual(a.handshake(), b"")
        self.assertEqual(a.expect(0, PONG), b"sshuttle-ext1-ok credit connect-error")
        self.assertEqual(a.expect(0, PONG), b"p2")
        self.assertEqual(a.expect(9, TCP_DATA), b"early bytes")
        a.close_stdin()
        self.assertEqual(a.wait(5), 0, a.stderr_text())

    def test_cpp_daemon_style_bootstrap(self):
        # daemon/ssh_command.cpp (today) uses a multi-line stage1 that execs the upload in a
        # fresh globals dict named "sshuttle_agent", and passes the options as a hex-escaped
        # bytes literal. The agent must work that way too.
        n_placeholder = "%d"
        stage1_cpp = ("import os,sys\nn=" + n_placeholder + "\nd=b\"\"\nwhile len(d)<n:\n"
                      " c=os.read(0,n-len(d))\n if not c:sys.exit(98)\n d+=c\n"
                      "exec(compile(d,\"sshuttle-agent\",\"exec\"),"
                      "{\"__name__\":\"sshuttle_agent\"})\n")
        with open(AGENT, "rb") as f:
            src = f.read()
        opts = json.dumps({"verbosity": 1, "latency_buffer_size": 50000}).encode()
        upload = (src + b"main(json.loads(b\"" + b"".join(b"\\x%02x" % c for c in opts)
                  + b"\".decode()))\n")
        proc = subprocess.Popen([PY, "-c", stage1_cpp % len(upload)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(upload + frame(0, PING, b"cpp") + frame(0, EXIT),
                                        timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 0, err)
        self.assertTrue(out.startswith(SYNC))
        frames = FrameParser().feed(out[len(SYNC):])
        self.assertEqual(frames[0], (0, PING, b"chicken"))
        self.assertEqual(frames[1], (0, ROUTES, b""))
        self.assertEqual(frames[2], (0, PONG, b"cpp"))

    def test_early_eof_during_upload_exits_98(self):
        with open(AGENT, "rb") as f:
            data = build_upload(f.read(), {})
        proc = subprocess.Popen(["/bin/sh", "-c", remote_command(len(data))],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
        try:
            out, _ = proc.communicate(data[:len(data) // 2], timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 98)
        self.assertEqual(out, b"")

    def test_missing_python_exits_97(self):
        proc = subprocess.Popen(["/bin/sh", "-c", remote_command(10)], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={"PATH": "/nonexistent"})
        try:
            proc.communicate(b"", timeout=WAIT)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 97)

    def test_source_parses_with_python36_grammar(self):
        with open(AGENT, "rb") as f:
            src = f.read()
        ast.parse(src, filename=AGENT, feature_version=(3, 6))
        self.assertNotIn(b"from __future__", src)
        src.decode("ascii")  # ASCII only: no source-encoding surprises on old remotes


class ExtensionTest(Base):
    def test_offer_is_accepted_in_offered_order_skipping_unknown(self):
        a = self.agent({})
        a.handshake()
        self.assertEqual(a.negotiate(b"sshuttle-ext1 zstd connect-error credit"),
                         b"sshuttle-ext1-ok connect-error credit")

    def test_nothing_known_gives_bare_ok(self):
        a = self.agent({})
        a.handshake()
        self.assertEqual(a.negotiate(b"sshuttle-ext1 zstd"), b"sshuttle-ext1-ok")

    def test_stock_payloads_and_second_offer_are_echoed(self):
        a = self.agent({})
        a.handshake()
        self.assertEqual(a.negotiate(b"sshuttle-ext2 credit"), b"sshuttle-ext2 credit")
        self.assertEqual(a.negotiate(), b"sshuttle-ext1-ok credit connect-error")
        self.assertEqual(a.negotiate(), b"sshuttle-ext1 credit connect-error")

    def test_offer_after_a_channel_opened_is_echoed(self):
        a = self.agent({})
        a.handshake()
        a.send(4, UDP_OPEN, b"2")
        self.assertEqual(a.negotiate(), b"sshuttle-ext1 credit connect-error")

    def test_window_without_credit_is_a_protocol_error(self):
        a = self.agent({})
        a.handshake()
        a.send(1, WINDOW, struct.pack("!I", 100))
        self.assert_fatal(a, "WINDOW")


class TcpTest(Base):
    def test_echo_both_ways(self):
        srv = self.server(echo_handler)
        a = self.agent({})
        a.handshake()
        a.open_tcp(1, "127.0.0.1", srv.port)
        a.send_tcp(1, b"hello")
        self.assertEqual(a.expect(1, TCP_DATA), b"hello")
        a.send_tcp(1, b"world")
        self.assertEqual(a.expect(1, TCP_DATA), b"world")
        a.send(1, TCP_EOF)
        self.assertEqual(a.expect(1, TCP_EOF), b"")
        # Both directions are done: the channel is free again.
        a.open_tcp(1, "127.0.0.1", srv.port)
        a.send_tcp(1, b"again")
        self.assertEqual(a.expect(1, TCP_DATA), b"again")

    @unittest.skipUnless(HAVE_V6, "no IPv6 loopback")
    def test_echo_over_ipv6(self):
        srv = self.server(echo_handler, family=socket.AF_INET6)
        a = self.agent({})
        a.handshake()
        a.send(2, TCP_CONNECT, ("10,::1,%d" % srv.port).encode())
        a.send_tcp(2, b"six")
        self.assertEqual(a.expect(2, TCP_DATA), b"six")

    def test_half_close_daemon_eof_then_remote_replies(self):
        def handler(conn):
            got = b""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                got += chunk
            conn.sendall(b"got %d bytes" % len(got))
        srv = self.server(handler)
        a = self.agent({})
        a.handshake()
        a.open_tcp(5, "127.0.0.1", srv.port)
        a.send_tcp(5, b"x" * 100000)
        a.send(5, TCP_EOF)
        digest, total = self.collect_tcp(a, 5)
        self.assertEqual(digest, hashlib.sha256(b"got 100000 bytes").hexdigest())

    def test_remote_close_sends_eof_and_channel_ends_after_daemon_eof(self):
        def handler(conn):
            conn.sendall(b"bye")
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
        srv = self.server(handler)
        a = self.agent({})
        a.handshake()
        a.open_tcp(6, "127.0.0.1", srv.port)
        self.assertEqual(a.expect(6, TCP_DATA), b"bye")
        a.expect(6, TCP_EOF)
        a.send(6, TCP_EOF)
        # EOF and reuse of the number in the same write: the channel is free at once.
        a.open_tcp(6, "127.0.0.1", srv.port)
        self.assertEqual(a.expect(6, TCP_DATA), b"bye")

    def test_stop_sending_stops_reading(self):
        def handler(conn):
            conn.sendall(b"a" * 10)
            time.sleep(0.3)
            try:
                conn.sendall(b"b" * 10)
            except OSError:
                pass
            while conn.recv(65536):
                pass
        srv = self.server(handler)
        a = self.agent({})
        a.handshake()
        a.open_tcp(7, "127.0.0.1", srv.port)
        self.assertEqual(a.expect(7, TCP_DATA), b"a" * 10)
        a.send(7, TCP_STOP_SENDING)
        frames = [f for f in a.poll(0.8) if f[0] == 7]
        self.assertEqual(frames, [])
        a.send(7, TCP_EOF)
        a.send(0, PING, b"alive")
        self.assertEqual(a.expect(0, PONG), b"alive")

    def test_connection_refused_without_extension(self):
        port = unused_port()
        a = self.agent({})
        a.handshake()
        a.open_tcp(3, "127.0.0.1", port)
        a.send_tcp(3, b"lost")
        a.expect(3, TCP_EOF)
        a.expect(3, TCP_STOP_SENDING)
        a.send(0, PING, b"still here")
        self.assertEqual(a.expect(0, PONG), b"still here")

    def test_connection_refused_with_connect_error(self):
        port = unused_port()
        a = self.agent({})
        a.handshake()
        a.negotiate()
        a.open_tcp(3, "127.0.0.1", port)
        self.assertEqual(a.expect(3, CONNECT_ERROR),
                         ("%d,%s" % (errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED)))
                         .encode())
        a.expect(3, TCP_EOF)
        a.expect(3, TCP_STOP_SENDING)
        # The channel was forgotten; the number can be used again.
        a.open_tcp(3, "127.0.0.1", port)
        a.expect(3, CONNECT_ERROR)

    def _transfer_10mb(self, credit):
        size = 10 * MIB
        down = os.urandom(size)
        up = os.urandom(size)
        sink = SinkSource(down)
        srv = self.server(sink)
        a = self.agent({})
        a.handshake()
        if credit:
            self.assertEqual(a.negotiate(), b"sshuttle-ext1-ok credit connect-error")
            a.auto_window = True
        start = time.monotonic()
        a.open_tcp(1, "127.0.0.1", srv.port)
        errors = []

        def upload():
            try:
                a.send_tcp(1, up, credit=credit)
                a.send(1, TCP_EOF)
            except Exception as e:  # reported by the main thread
                errors.append(e)
        t = threading.Thread(target=upload)
        t.daemon = True
        t.start()
        digest, total = self.collect_tcp(a, 1)
        down_time = time.monotonic() - start
        t.join(WAIT * 4)
        self.assertFalse(errors, errors)
        self.assertTrue(sink.done.wait(WAIT * 4))
        up_time = time.monotonic() - start
        self.assertEqual(total, size)
        self.assertEqual(digest, hashlib.sha256(down).hexdigest())
        self.assertEqual(sink.count, size)
        self.assertEqual(sink.received.hexdigest(), hashlib.sha256(up).hexdigest())
        sys.stdout.write("\n    [info] 10 MiB each way at once over pipes (%s): down %.0f MiB/s"
                         " (%.3fs), up %.0f MiB/s (%.3fs) ... " % (
                             "credit" if credit else "latency control", 10 / down_time,
                             down_time, 10 / up_time, up_time))
        sys.stdout.flush()

    def test_10mb_both_directions_latency_control(self):
        self._transfer_10mb(credit=False)

    def test_10mb_both_directions_credit(self):
        self._transfer_10mb(credit=True)

    def test_200_concurrent_channels(self):
        srv = self.server(echo_handler)
        a = self.agent({})
        a.handshake()
        a.negotiate()
        a.auto_window = True
        data = {}
        for ch in range(1, 201):
            data[ch] = os.urandom(1000 + ch * 37)
            a.open_tcp(ch, "127.0.0.1", srv.port)
        for ch in range(1, 201):
            a.send_tcp(ch, data[ch][:500], credit=True)
        for ch in range(1, 201):
            a.send_tcp(ch, data[ch][500:], credit=True)
            a.send(ch, TCP_EOF)
        got = {ch: b"" for ch in data}
        open_chans = set(data)
        while open_chans:
            item = a.next()
            self.assertIsNotNone(item)
            ch, cmd, payload = item
            if ch == 0:
                continue
            if cmd == TCP_DATA:
                got[ch] += payload
            elif cmd == TCP_EOF:
                open_chans.discard(ch)
            else:
                self.fail("unexpected %s on ch%d" % (cmd_name(cmd), ch))
        for ch in data:
            self.assertEqual(got[ch], data[ch], "channel %d" % ch)


class FlowControlTest(Base):
    def test_latency_control_pauses_until_pong(self):
        blob = os.urandom(MIB)
        sink = SinkSource(blob)
        srv = self.server(sink)
        a = self.agent({"latency_buffer_size": 32768})
        a.auto_pong = False
        a.handshake()
        a.open_tcp(1, "127.0.0.1", srv.port)
        before = 0
        while True:
            ch, cmd, payload = a.next()
            if (ch, cmd) == (0, PING):
                self.assertEqual(payload, b"rttest")
                break
            self.assertEqual((ch, cmd), (1, TCP_DATA))
            before += len(payload)
        self.assertGreater(before + 7, 32768)          # PING chicken counts too
        self.assertLessEqual(before, 32768 + 65535)
        quiet = [f for f in a.poll(0.5) if f[1] == TCP_DATA]
        self.assertEqual(quiet, [], "TCP_DATA while too full")
        a.auto_pong = True                          # answers the next rttest PINGs
        a.send(0, PONG, b"rttest")
        digest, total = self.collect_tcp(a, 1)
        self.assertGreater(total, 0)
        self.assertEqual(before + total, MIB)

    def test_no_latency_control_streams_without_pong(self):
        blob = os.urandom(MIB)
        srv = self.server(SinkSource(blob))
        a = self.agent({"latency_control": False})
        a.auto_pong = False
        a.handshake()
        a.open_tcp(1, "127.0.0.1", srv.port)
        digest, total = self.collect_tcp(a, 1)
        self.assertEqual(digest, hashlib.sha256(blob).hexdigest())

    def test_credit_stops_at_window_until_window_frame(self):
        blob = os.urandom(3 * MIB)
        srv = self.server(SinkSource(blob))
        a = self.agent({"latency_buffer_size": 1000})
        a.auto_pong = False
        a.handshake()
        a.negotiate()
        a.open_tcp(1, "127.0.0.1", srv.port)
        h, total = hashlib.sha256(), 0

        def take(limit):
            nonlocal total
            while total < limit:
                ch, cmd, payload = a.next()
                if ch == 0:
                    self.assertNotEqual(payload, b"rttest", "rttest with credit active")
                    continue
                self.assertEqual((ch, cmd), (1, TCP_DATA))
                h.update(payload)
                total += len(payload)
            self.assertEqual(total, limit)
            self.assertEqual([f for f in a.poll(0.5) if f[0] == 1], [])
        take(MIB)
        a.send(1, WINDOW, struct.pack("!I", MIB // 2))
        take(MIB + MIB // 2)
        a.send(1, WINDOW, struct.pack("!I", 4 * MIB))
        digest, rest = self.collect_tcp(a, 1)
        self.assertEqual(total + rest, 3 * MIB)

    def test_data_beyond_the_granted_window_is_a_protocol_error(self):
        srv = self.server(None, backlog=0)       # never accepts: connects stay pending
        fillers = []
        for _ in range(2):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", srv.port))
            fillers.append(s)
        self.addCleanup(lambda: [s.close() for s in fillers])
        a = self.agent({})
        a.handshake()
        a.negotiate()
        a.open_tcp(1, "127.0.0.1", srv.port)
        a.send_tcp(1, b"z" * MIB)                # exactly the window: fine
        a.send(0, PING, b"ok so far")
        self.assertEqual(a.expect(0, PONG), b"ok so far")
        a.send(1, TCP_DATA, b"!")
        self.assert_fatal(a, "exceeds the granted window")


class DnsTest(Base):
    def dns_agent(self, server, host="127.0.0.1", **opts):
        options = {"to_nameserver": "%s@%d" % (host, server.port)}
        options.update(opts)
        a = self.agent(options)
        a.handshake()
        return a

    def test_query_to_nameserver(self):
        srv = self.udp_server(dns_answer)
        a = self.dns_agent(srv)
        q = dns_query(0x1234)
        a.send(11, DNS_REQ, q)
        self.assertEqual(a.expect(11, DNS_RESPONSE), dns_answer(q))
        # The channel is finished; the number is free for a new query.
        q2 = dns_query(0x4321)
        a.send(11, DNS_REQ, q2)
        self.assertEqual(a.expect(11, DNS_RESPONSE), dns_answer(q2))

    @unittest.skipUnless(HAVE_V6, "no IPv6 loopback")
    def test_query_to_ipv6_nameserver(self):
        srv = self.udp_server(dns_answer, family=socket.AF_INET6)
        a = self.dns_agent(srv, host="[::1]")
        q = dns_query(0x0606)
        a.send(12, DNS_REQ, q)
        self.assertEqual(a.expect(12, DNS_RESPONSE), dns_answer(q))

    def test_retry_after_a_lost_reply(self):
        seen = []

        def reply(data):
            seen.append(data)
            return dns_answer(data) if len(seen) >= 2 else None
        srv = self.udp_server(reply)
        a = self.dns_agent(srv, dns_timeout=2.0)
        q = dns_query(0x7777)
        a.send(13, DNS_REQ, q)
        self.assertEqual(a.expect(13, DNS_RESPONSE), dns_answer(q))
        self.assertEqual(len(seen), 2)

    def test_wrong_id_is_ignored_and_silence_forgets_the_channel(self):
        srv = self.udp_server(lambda data: b"\0\0" + data[2:])
        a = self.dns_agent(srv, dns_timeout=0.6, dns_attempts=2)
        a.send(14, DNS_REQ, dns_query(0x5555))
        self.assertEqual([f for f in a.poll(1.2) if f[0] == 14], [])
        self.assertEqual(len(srv.received), 2)
        # Forgotten after the timeout: a new query on the same channel is not a duplicate.
        a.send(14, DNS_REQ, dns_query(0x5556))
        a.send(0, PING, b"alive")
        self.assertEqual(a.expect(0, PONG), b"alive")

    def test_many_queries_in_flight(self):
        srv = self.udp_server(dns_answer)
        a = self.dns_agent(srv)
        for ch in range(100, 150):
            a.send(ch, DNS_REQ, dns_query(ch))
        got = {}
        while len(got) < 50:
            ch, cmd, payload = a.next()
            if ch == 0:
                continue
            self.assertEqual(cmd, DNS_RESPONSE)
            got[ch] = payload
        for ch in range(100, 150):
            self.assertEqual(got[ch], dns_answer(dns_query(ch)))


class UdpTest(Base):
    def test_udp_open_data_close(self):
        srv = self.udp_server(lambda d: b"pong:" + d)
        a = self.agent({})
        a.handshake()
        a.send(7, UDP_OPEN, b"2")
        a.send(7, UDP_DATA, b"127.0.0.1,%d,ping" % srv.port)
        self.assertEqual(a.expect(7, UDP_DATA), b"127.0.0.1,%d,pong:ping" % srv.port)
        a.send(7, UDP_DATA, b"127.0.0.1,%d,a,b,c" % srv.port)  # commas in the datagram
        self.assertEqual(a.expect(7, UDP_DATA), b"127.0.0.1,%d,pong:a,b,c" % srv.port)
        a.send(7, UDP_CLOSE)
        a.send(7, UDP_DATA, b"127.0.0.1,%d,ignored" % srv.port)  # closed channel: ignored
        a.send(0, PING, b"sync")
        self.assertEqual(a.expect(0, PONG), b"sync")
        a.send(7, UDP_OPEN, b"2")                            # and the number is free again
        a.send(7, UDP_DATA, b"127.0.0.1,%d,again" % srv.port)
        self.assertEqual(a.expect(7, UDP_DATA), b"127.0.0.1,%d,pong:again" % srv.port)

    @unittest.skipUnless(HAVE_V6, "no IPv6 loopback")
    def test_udp_ipv6(self):
        srv = self.udp_server(lambda d: d.upper(), family=socket.AF_INET6)
        a = self.agent({})
        a.handshake()
        a.send(8, UDP_OPEN, b"10")
        a.send(8, UDP_DATA, b"::1,%d,hello" % srv.port)
        self.assertEqual(a.expect(8, UDP_DATA), b"::1,%d,HELLO" % srv.port)

    def test_large_datagram(self):
        srv = self.udp_server(lambda d: d)
        a = self.agent({})
        a.handshake()
        a.send(9, UDP_OPEN, b"2")
        blob = os.urandom(60000)
        a.send(9, UDP_DATA, b"127.0.0.1,%d," % srv.port + blob)
        self.assertEqual(a.expect(9, UDP_DATA), b"127.0.0.1,%d," % srv.port + blob)


class HostTest(Base):
    def test_seed_hosts_are_resolved_once(self):
        a = self.agent({})
        a.handshake()
        # Numeric seeds and localhost resolve without any network traffic.
        a.send(0, HOST_REQ, b"192.0.2.7\nlocalhost\nbad name!\n198.51.100.9")
        lists = b""
        while lists.count(b"\n") < 2:
            lists += a.expect(0, HOST_LIST)
        self.assertEqual(sorted(lists.splitlines()),
                         [b"192.0.2.7,192.0.2.7", b"198.51.100.9,198.51.100.9"])


class MalformedInputTest(Base):
    def started(self, options=None):
        a = self.agent(options or {})
        a.handshake()
        return a

    def test_bad_magic(self):
        a = self.started()
        a.write(b"XX\0\1\x42\x01\0\0")
        self.assert_fatal(a, "magic")

    def test_unknown_command(self):
        a = self.started()
        a.send(0, 0x4299)
        self.assert_fatal(a, "unknown command 0x4299")

    def test_tcp_connect_garbage(self):
        for payload in (b"hello", b"2,127.0.0.1", b"2,not-an-ip,80", b"2,127.0.0.1,99999",
                        b"x,127.0.0.1,80", b"10,127.0.0.1,80", b"\xff,1,2"):
            a = self.started()
            a.send(1, TCP_CONNECT, payload)
            self.assert_fatal(a, "TCP_CONNECT")

    def test_duplicate_live_channel(self):
        srv = self.server(echo_handler)
        a = self.started()
        a.open_tcp(5, "127.0.0.1", srv.port)
        a.open_tcp(5, "127.0.0.1", srv.port)
        self.assert_fatal(a, "still live")

    def test_new_channel_on_channel_0(self):
        a = self.started()
        a.send(0, UDP_OPEN, b"2")
        self.assert_fatal(a, "control channel")

    def test_server_only_commands_from_the_daemon(self):
        a = self.started()
        a.send(0, ROUTES, b"2,10.0.0.0,8\n")
        self.assert_fatal(a, "ROUTES")

    def test_udp_data_without_prefix(self):
        a = self.started()
        a.send(3, UDP_OPEN, b"2")
        a.send(3, UDP_DATA, b"no prefix")
        self.assert_fatal(a, "UDP_DATA")

    def test_wrong_kind_of_channel(self):
        a = self.started()
        a.send(3, UDP_OPEN, b"2")
        a.send(3, TCP_DATA, b"x")
        self.assert_fatal(a, "udp channel")

    def test_bad_options(self):
        a = self.agent({"latency_buffer_size": "big"})
        self.assertEqual(a.wait(), 99)
        self.assertIn("latency_buffer_size", a.stderr_text())

    def test_data_for_unknown_channels_is_ignored(self):
        a = self.started({"verbosity": 2})
        for cmd in (TCP_DATA, TCP_EOF, TCP_STOP_SENDING, UDP_DATA, UDP_CLOSE):
            a.send(77, cmd, b"x")
        a.send(0, PING, b"fine")
        self.assertEqual(a.expect(0, PONG), b"fine")
        self.assertIn("closed or unknown channel", a.stderr_text())


class BackpressureTest(Base):
    def test_slow_daemon_stops_remote_reads(self):
        size = 48 * MIB
        blob = os.urandom(size)
        sink = SinkSource(blob)
        sent = []

        def handler(conn):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            view, total = memoryview(blob), 0
            while total < size:
                n = conn.send(view[total:total + 65536])
                total += n
                sent[:] = [total]
            conn.shutdown(socket.SHUT_WR)
            while conn.recv(65536):
                pass
        srv = self.server(handler)
        a = self.agent({"latency_control": False, "max_output_buffer": MIB})
        a.handshake()
        a.reading.clear()
        a.open_tcp(1, "127.0.0.1", srv.port)
        time.sleep(1.0)
        stalled_at = sent[0] if sent else 0
        # Bounded by the output cap plus kernel buffers (pipe, socket buffers), far below 48 MiB.
        self.assertLess(stalled_at, 24 * MIB)
        a.reading.set()
        digest, total = self.collect_tcp(a, 1)
        self.assertEqual(digest, hashlib.sha256(blob).hexdigest())
        sys.stdout.write("\n    [info] remote sender stalled after %.1f MiB ... " % (
            stalled_at / MIB))
        sys.stdout.flush()

    def test_slow_remote_socket_stops_stdin_reads_without_credit(self):
        go = threading.Event()
        sink = SinkSource(b"")

        def handler(conn):
            go.wait(WAIT * 2)
            sink(conn)
        srv = TcpServer(handler)
        self.addCleanup(srv.close)
        srv.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # before the accept
        self.addCleanup(go.set)
        a = self.agent({"max_socket_queue": MIB})
        a.handshake()
        a.open_tcp(1, "127.0.0.1", srv.port)
        blob = os.urandom(32 * MIB)
        progress = [0]
        errors = []

        def upload():
            try:
                view = memoryview(blob)
                while len(view):
                    a.send(1, TCP_DATA, bytes(view[:65535]))
                    progress[0] += min(65535, len(view))
                    view = view[65535:]
                a.send(1, TCP_EOF)
            except Exception as e:
                errors.append(e)
        t = threading.Thread(target=upload)
        t.daemon = True
        t.start()
        time.sleep(1.0)
        stalled_at = progress[0]
        self.assertLess(stalled_at, 16 * MIB)       # 1 MiB cap + socket and pipe buffers
        go.set()
        t.join(WAIT * 2)
        self.assertFalse(errors)
        self.assertTrue(sink.done.wait(WAIT * 2))
        self.assertEqual(sink.received.hexdigest(), hashlib.sha256(blob).hexdigest())
        sys.stdout.write("\n    [info] daemon writes stalled after %.1f MiB ... " % (
            stalled_at / MIB))
        sys.stdout.flush()

    def test_closed_stdout_exits_quietly(self):
        proc = subprocess.Popen([PY, AGENT, "{}"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            proc.stdout.read(len(SYNC))
            proc.stdout.close()
            try:
                proc.stdin.write(frame(0, PING, b"x" * 60000) * 20)
                proc.stdin.flush()
            except BrokenPipeError:
                pass  # the agent already left, as it should
            proc.wait(WAIT)
            err = proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for f in (proc.stdin, proc.stderr):
                try:
                    f.close()
                except OSError:
                    pass
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(err, b"")


class UdpIdleTest(Base):
    def test_idle_udp_channel_is_closed(self):
        srv = self.udp_server(lambda d: d)
        a = self.agent({"udp_idle_timeout": 0.3})
        a.handshake()
        a.send(4, UDP_OPEN, b"2")
        a.send(4, UDP_DATA, b"127.0.0.1,%d,hi" % srv.port)
        self.assertEqual(a.expect(4, UDP_DATA), b"127.0.0.1,%d,hi" % srv.port)
        time.sleep(0.8)
        a.send(4, UDP_OPEN, b"2")                   # not "still live": it was closed
        a.send(0, PING, b"alive")
        self.assertEqual(a.expect(0, PONG), b"alive")


class ParserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.m = load_agent_module()

    def test_ip_route(self):
        text = ("default via 192.0.2.1 dev eth0\n"
                "10.1.2.3/8 dev tun0 scope link\n"
                "192.0.2.0/24 dev eth0 proto kernel scope link src 192.0.2.2\n"
                "127.0.0.0/8 dev lo\n"
                "0.0.0.0/1 dev wg0\n"
                "198.51.100.7 dev eth1 scope link\n"
                "unreachable 203.0.113.0/24\n"
                "172.16/12 dev x\n"
                "10.0.0.0/8 dev tun1\n")
        self.assertEqual(self.m.parse_ip_route(text),
                         [("10.0.0.0", 8), ("192.0.2.0", 24), ("172.16.0.0", 12)])
        self.assertEqual(self.m.routes_payload([("10.0.0.0", 8), ("192.0.2.0", 24)]),
                         b"2,10.0.0.0,8\n2,192.0.2.0,24\n")

    def test_netstat(self):
        text = ("Kernel IP routing table\n"
                "Destination     Gateway         Genmask         Flags   MSS Window  irtt Iface\n"
                "0.0.0.0         192.0.2.1       0.0.0.0         UG        0 0          0 eth0\n"
                "192.0.2.0       0.0.0.0         255.255.255.0   U         0 0          0 eth0\n"
                "10.9.8.7        0.0.0.0         255.255.0.0     U         0 0          0 tun0\n")
        self.assertEqual(self.m.parse_netstat_rn(text), [("192.0.2.0", 24), ("10.9.0.0", 16)])

    def test_etc_hosts(self):
        text = ("# a comment\n127.0.0.1 localhost\n10.1.2.3  db.corp db  # the database\n"
                "fd00::5 v6only\n10.1.2.4 bad!name ok-name\n\n  10.1.2.5\tweb.corp\n"
                "not-an-ip name\n")
        self.assertEqual(self.m.parse_etc_hosts(text),
                         [("localhost", "127.0.0.1"), ("db.corp", "10.1.2.3"), ("db", "10.1.2.3"),
                          ("ok-name", "10.1.2.4"), ("web.corp", "10.1.2.5")])

    def test_resolv_conf_and_to_nameserver(self):
        self.assertEqual(self.m.parse_resolv_conf(
            "# c\nsearch x\nnameserver 10.0.0.1\nnameserver fe80::1%eth0\nnameserver\n"),
            ["10.0.0.1", "fe80::1%eth0"])
        self.assertEqual(self.m.parse_to_nameserver("10.0.0.1@0"), ("10.0.0.1", 53))
        self.assertEqual(self.m.parse_to_nameserver("10.0.0.1"), ("10.0.0.1", 53))
        self.assertEqual(self.m.parse_to_nameserver("fd00::1@5353"), ("fd00::1", 5353))
        self.assertEqual(self.m.parse_to_nameserver("[fd00::1]@5353"), ("fd00::1", 5353))
        with self.assertRaises(self.m.Fatal):
            self.m.parse_to_nameserver("10.0.0.1@x")

    def test_options(self):
        opts = self.m.parse_options('{"verbosity": 2, "future_option": 1}')
        self.assertEqual(opts["verbosity"], 2)
        self.assertEqual(opts["latency_buffer_size"], 32768)
        self.assertEqual(opts["_unknown"], ["future_option"])
        for bad in ('{"auto_nets": 1}', '{"verbosity": true}', '[1]', '{"to_nameserver": 5}'):
            with self.assertRaises(self.m.Fatal):
                self.m.parse_options(bad)


if __name__ == "__main__":
    unittest.main(verbosity=2)

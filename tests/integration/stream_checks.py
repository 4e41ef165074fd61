#!/usr/bin/env python3
# tests/integration/stream_checks.py: the ends of TCP connections whose shape matters to a
# tunnel, for tunnel_test.sh. Every wait is bounded.
#
# Servers (run in the lab's target namespace, stopped by PID):
#   serve-close HOST PORT FILE      sends FILE, then close(): a close-delimited download
#   serve-shutwr HOST PORT LOG      sends "hello\n", shutdown(SHUT_WR), reads until EOF, then
#                                   appends "got N" (bytes read) to LOG and closes
# Clients (run in the client namespace, through the tunnel):
#   read-close HOST PORT            reads to EOF without shutting down its side;
#                                   prints "SHA256 BYTES"
#   upload-echo HOST PORT FILE      sends FILE to an echo server, half-closes, reads the echo
#                                   to EOF; prints "SHA256 BYTES"
#   shutwr HOST PORT                against serve-shutwr: reads the hello, notes whether EOF
#                                   follows within 2 s, sends 1 MiB, shuts down its side, waits
#                                   for the end; prints "hello eof=yes|no sent=1048576 end=..."
#                                   or, when the send fails, "hello eof=... send-failed=ERROR"
#   hold HOST PORT N FLAG SECONDS   opens N echo connections one after another (each echoes a
#                                   line), prints "held N", waits until FLAG exists (at most
#                                   SECONDS), then asks each for one more echo within 3 s;
#                                   prints "alive A dead D"
import hashlib
import os
import socket
import socketserver
import sys
import threading
import time


def serve(host, port, handler):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET

    class Server(socketserver.ThreadingTCPServer):
        address_family = family
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 128

    with Server((host, port), handler) as server:
        server.serve_forever()


def serve_close(host, port, path):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(262144)
                    if not chunk:
                        break
                    self.request.sendall(chunk)
            self.request.close()

    serve(host, port, Handler)


def serve_shutwr(host, port, log):
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            s = self.request
            s.settimeout(30)
            s.sendall(b"hello\n")
            s.shutdown(socket.SHUT_WR)
            n = 0
            try:
                while True:
                    b = s.recv(262144)
                    if not b:
                        break
                    n += len(b)
            except OSError as e:
                n = -1
                print("read failed: %r" % e, file=sys.stderr)
            with lock, open(log, "a") as f:
                f.write("got %d\n" % n)

    serve(host, port, Handler)


def hash_to_eof(s):
    """Reads s until EOF; returns (sha256 hex, byte count)."""
    h = hashlib.sha256()
    n = 0
    while True:
        b = s.recv(262144)
        if not b:
            break
        h.update(b)
        n += len(b)
    return h.hexdigest(), n


def read_close(host, port):
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(30)
    print(*hash_to_eof(s))


def upload_echo(host, port, path):
    s = socket.create_connection((host, port), timeout=30)
    s.settimeout(30)
    err = []

    def send():
        try:
            with open(path, "rb") as f:
                while True:
                    chunk = f.read(65536)
                    if not chunk:
                        break
                    s.sendall(chunk)
            s.shutdown(socket.SHUT_WR)
        except Exception as e:
            err.append(e)

    t = threading.Thread(target=send, daemon=True)
    t.start()
    digest, n = hash_to_eof(s)
    t.join(30)
    if err or t.is_alive():
        print("sender failed: %r" % (err or "still running"), file=sys.stderr)
        return 1
    print(digest, n)
    return 0


def shutwr(host, port):
    s = socket.create_connection((host, port), timeout=10)
    s.settimeout(10)
    got = b""
    while not got.endswith(b"\n") and len(got) < 64:
        b = s.recv(64)
        if not b:
            break
        got += b
    if got != b"hello\n":
        print("no hello: %r" % got)
        return 1
    s.settimeout(2)
    eof = "no"
    try:
        if s.recv(64) == b"":
            eof = "yes"
    except socket.timeout:
        pass
    s.settimeout(10)
    data = b"x" * 1048576
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        # The other end closed the whole connection when the target half-closed.
        print("hello eof=%s send-failed=%s" % (eof, e.__class__.__name__))
        return 0
    end = "timeout"
    try:
        while True:
            b = s.recv(65536)
            if not b:
                end = "eof"
                break
    except socket.timeout:
        pass
    except ConnectionResetError:
        end = "reset"
    print("hello eof=%s sent=%d end=%s" % (eof, len(data), end))
    return 0


def echo_line(s, line):
    """Sends line on s and returns what came back, up to its length (less at EOF)."""
    s.sendall(line)
    got = b""
    while len(got) < len(line):
        b = s.recv(64)
        if not b:
            break
        got += b
    return got


def hold(host, port, n, flag, seconds):
    conns = []
    for i in range(n):
        s = socket.create_connection((host, port), timeout=10)
        s.settimeout(10)
        got = echo_line(s, b"hold %d\n" % i)
        if got != b"hold %d\n" % i:
            print("connection %d: echo %r" % (i, got))
            return 1
        conns.append(s)
    print("held %d" % n, flush=True)
    deadline = time.monotonic() + seconds
    while not os.path.exists(flag) and time.monotonic() < deadline:
        time.sleep(0.05)
    alive = dead = 0
    for i, s in enumerate(conns):
        line = b"again %d\n" % i
        try:
            s.settimeout(3)
            if echo_line(s, line) == line:
                alive += 1
            else:
                dead += 1
        except OSError:
            dead += 1
    print("alive %d dead %d" % (alive, dead))
    return 0


def main(argv):
    cmd = argv[1]
    if cmd == "serve-close":
        serve_close(argv[2], int(argv[3]), argv[4])
    elif cmd == "serve-shutwr":
        serve_shutwr(argv[2], int(argv[3]), argv[4])
    elif cmd == "read-close":
        read_close(argv[2], int(argv[3]))
    elif cmd == "upload-echo":
        return upload_echo(argv[2], int(argv[3]), argv[4])
    elif cmd == "shutwr":
        return shutwr(argv[2], int(argv[3]))
    elif cmd == "hold":
        return hold(argv[2], int(argv[3]), int(argv[4]), argv[5], float(argv[6]))
    else:
        print("unknown command %s" % cmd, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

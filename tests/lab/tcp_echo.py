#!/usr/bin/env python3
# tests/lab/tcp_echo.py: the lab target's TCP echo service (port 7), one non-blocking process.
#
#   tcp_echo.py ADDRESS PORT [LOGFILE]
#
# Why not socat (TCP-LISTEN,fork + PIPE): its listen backlog is 5, so a burst of connections is
# refused even without a tunnel, and a forked child blocks for ever writing to its own full pipe
# when the echo backs up. This server:
#   * listens with the kernel's full backlog (net.core.somaxconn) and raises its soft
#     RLIMIT_NOFILE to the hard limit, so thousands of connections can be open at once;
#   * echoes any amount: it stops reading a connection while more than MAX_PENDING bytes wait
#     to be written to it (the sender is held by TCP, not by our memory);
#   * answers a half-close by writing what is left, then shutdown(SHUT_WR), then close;
#   * drops a connection on any socket error, without disturbing the others.
# IPv6 addresses listen v6-only. SIGTERM/SIGINT stop it (exit 0). LOGFILE gets one line per
# error and a line at exit with the connection count.
import errno
import resource
import selectors
import signal
import socket
import sys

MAX_PENDING = 1 << 20   # bytes queued for one connection before we stop reading it
CHUNK = 1 << 18         # bytes per recv
ACCEPT_BURST = 256      # connections accepted per wakeup before serving the others


def log(out, text):
    if out:
        out.write(text + "\n")
        out.flush()


class Conn:
    __slots__ = ("sock", "pending", "eof", "events")

    def __init__(self, sock):
        self.sock = sock
        self.pending = bytearray()
        self.eof = False
        self.events = selectors.EVENT_READ


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write("usage: tcp_echo.py ADDRESS PORT [LOGFILE]\n")
        return 2
    address, port = argv[1], int(argv[2])
    out = open(argv[3], "a") if len(argv) == 4 else None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    lsock = socket.socket(family, socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        lsock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    lsock.bind((address, port))
    lsock.listen(65535)  # the kernel caps it at net.core.somaxconn
    lsock.setblocking(False)

    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    accepted = 0

    def close(c):
        sel.unregister(c.sock)
        c.sock.close()

    def set_events(c):
        want = 0
        if not c.eof and len(c.pending) < MAX_PENDING:
            want |= selectors.EVENT_READ
        if c.pending:
            want |= selectors.EVENT_WRITE
        if want == 0:
            # Read side done and nothing left to write: the echo is complete.
            try:
                c.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            close(c)
            return
        if want != c.events:
            c.events = want
            sel.modify(c.sock, want, c)

    def serve(c, mask):
        try:
            if mask & selectors.EVENT_WRITE and c.pending:
                n = c.sock.send(c.pending)
                del c.pending[:n]
            if mask & selectors.EVENT_READ and not c.eof and len(c.pending) < MAX_PENDING:
                data = c.sock.recv(CHUNK)
                if not data:
                    c.eof = True
                elif not c.pending:
                    # Fast path: echo at once; keep only what the socket did not take.
                    try:
                        n = c.sock.send(data)
                    except BlockingIOError:
                        n = 0
                    c.pending += memoryview(data)[n:]
                else:
                    c.pending += data
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                log(out, "connection error: %s" % e)
            close(c)
            return
        set_events(c)

    while not stopping:
        try:
            events = sel.select(1.0)
        except InterruptedError:
            continue
        for key, mask in events:
            if key.data is None:
                for _ in range(ACCEPT_BURST):
                    try:
                        s, _ = lsock.accept()
                    except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                        break
                    except OSError as e:  # EMFILE: the connection waits in the backlog
                        log(out, "accept: %s" % e)
                        break
                    s.setblocking(False)
                    accepted += 1
                    c = Conn(s)
                    sel.register(s, selectors.EVENT_READ, c)
            elif key.fileobj.fileno() >= 0:
                serve(key.data, mask)
    log(out, "stopping after %d connections" % accepted)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

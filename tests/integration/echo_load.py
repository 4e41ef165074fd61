#!/usr/bin/env python3
# tests/integration/echo_load.py: N concurrent TCP connections to an echo server, each sending
# its own distinct bytes and checking that exactly those come back.
#
#   echo_load.py HOST PORT N [--timeout SECONDS] [--max-per-proc K] [--wave W]
#
# The connections are really concurrent: every one of them is connected (and held open) before
# any sends a byte, and none is closed before all have their full echo (with --wave W, this
# holds for each group of W; the groups run one after another). Phases, with one deadline for
# the whole run:
#   1. connect all N (non-blocking);
#   2. send each connection's payload (a header naming its index, then pseudo-random bytes
#      seeded by the index; sizes vary from 1 to ~16 KiB so frames split differently), then
#      shut down the write side (half-close);
#   3. read until EOF and compare with the payload;
#   4. close all.
# Connections are spread over worker processes of at most K each (default: what the soft
# RLIMIT_NOFILE allows after raising it to the hard limit); the parent steps the workers through
# the phases together over pipes.
# Prints "ok N" and exits 0, or prints how many failed with the first reasons and exits 1.
import argparse
import os
import random
import resource
import selectors
import socket
import sys
import time

RESERVED_FDS = 64  # fds a worker keeps free for Python itself and the pipes


def payload_for(i):
    rng = random.Random(i * 7919 + 17)
    size = 1 + (i * 2654435761) % 16384
    head = b"conn %d size %d:" % (i, size)
    n = max(0, size - len(head))
    body = rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""
    return (head + body)[:size]


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class Worker:
    """Runs in a child: connections first..first+count-1, one phase per command from the parent."""

    def __init__(self, host, port, first, count, deadline):
        self.host, self.port = host, port
        self.ids = list(range(first, first + count))
        self.deadline = deadline
        self.socks = {}
        self.errors = {}

    def left(self):
        return max(0.0, self.deadline - time.monotonic())

    def connect_all(self):
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sel = selectors.DefaultSelector()
        for i in self.ids:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((self.host, self.port))
            if err not in (0, 115):  # EINPROGRESS
                self.errors[i] = "connect: %s" % os.strerror(err)
                s.close()
                continue
            self.socks[i] = s
            sel.register(s, selectors.EVENT_WRITE, i)
        pending = set(self.socks)
        while pending and self.left() > 0:
            for key, _ in sel.select(min(1.0, self.left())):
                i = key.data
                err = key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                sel.unregister(key.fileobj)
                pending.discard(i)
                if err:
                    self.errors[i] = "connect: %s" % os.strerror(err)
        for i in pending:
            self.errors[i] = "connect: timed out"
        sel.close()

    def exchange(self):
        sel = selectors.DefaultSelector()
        state = {}
        for i, s in self.socks.items():
            if i in self.errors:
                continue
            want = payload_for(i)
            state[i] = [memoryview(want), bytearray(), want]
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE, i)
        open_ = set(state)
        while open_ and self.left() > 0:
            for key, mask in sel.select(min(1.0, self.left())):
                i, s = key.data, key.fileobj
                out, got, want = state[i]
                try:
                    if mask & selectors.EVENT_WRITE and out:
                        n = s.send(out)
                        out = state[i][0] = out[n:]
                        if not out:
                            s.shutdown(socket.SHUT_WR)
                            sel.modify(s, selectors.EVENT_READ, i)
                    if mask & selectors.EVENT_READ:
                        data = s.recv(65536)
                        if data:
                            got += data
                            continue
                        sel.unregister(s)
                        open_.discard(i)
                        if out:
                            self.errors[i] = "EOF before all was sent"
                        elif bytes(got) != want:
                            self.errors[i] = "got %d bytes, want %d%s" % (
                                len(got), len(want),
                                " (different bytes)" if len(got) == len(want) else "")
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as e:
                    sel.unregister(s)
                    open_.discard(i)
                    self.errors[i] = "%s after %d bytes back" % (e, len(got))
        for i in open_:
            self.errors[i] = "timed out with %d of %d bytes back" % (
                len(state[i][1]), len(state[i][2]))
        sel.close()

    def close_all(self):
        for s in self.socks.values():
            s.close()

    def report(self):
        lines = ["%d %s" % (i, e) for i, e in sorted(self.errors.items())]
        return "%d\n%s" % (len(self.errors), "\n".join(lines[:5]))


def run_worker(args, first, count, cmd_r, res_w):
    w = Worker(args.host, args.port, first, count, time.monotonic() + args.timeout)
    steps = {b"c": w.connect_all, b"x": w.exchange, b"q": w.close_all}
    while True:
        cmd = os.read(cmd_r, 1)
        if not cmd or cmd not in steps:
            break
        steps[cmd]()
        os.write(res_w, b".")
        if cmd == b"q":
            break
    text = w.report().encode()
    os.write(res_w, b"%08d" % len(text) + text)


def read_exact(fd, n, deadline):
    buf = b""
    while len(buf) < n:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        ready = sel.select(left)
        sel.close()
        if not ready:
            return None
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def run_batch(args, first_id, n, per_proc, deadline):
    """Connections first_id..first_id+n-1, all open at once. Returns (failed, reasons)."""
    workers = []
    first = first_id
    while first < first_id + n:
        count = min(per_proc, first_id + n - first)
        cmd_r, cmd_w = os.pipe()
        res_r, res_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(cmd_w)
            os.close(res_r)
            code = 0
            try:
                run_worker(args, first, count, cmd_r, res_w)
            except BaseException as e:  # report, never hang the parent
                text = ("%d\nworker crashed: %r" % (count, e)).encode()
                os.write(res_w, b"%08d" % len(text) + text)
                code = 1
            os._exit(code)
        os.close(cmd_r)
        os.close(res_w)
        workers.append((pid, cmd_w, res_r))
        first += count

    failed = 0
    reasons = []
    for cmd in (b"c", b"x", b"q"):
        for _, cmd_w, _ in workers:
            os.write(cmd_w, cmd)
        if any(read_exact(res_r, 1, deadline) != b"." for _, _, res_r in workers):
            reasons.append("a phase did not finish in time")
            break
    for pid, cmd_w, res_r in workers:
        os.close(cmd_w)  # a worker still waiting for a command ends
        head = read_exact(res_r, 8, deadline)
        text = read_exact(res_r, int(head), deadline) if head else None
        if text is None:
            failed += 1
            reasons.append("a worker did not report (pid %d)" % pid)
            os.kill(pid, 9)
        else:
            count, _, detail = text.decode().partition("\n")
            failed += int(count)
            reasons += [d for d in detail.split("\n") if d]
        os.waitpid(pid, 0)
        os.close(res_r)
    return failed, reasons


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("n", type=int)
    p.add_argument("--timeout", type=float, default=60.0)
    p.add_argument("--max-per-proc", type=int, default=0)
    # Open at most W connections at a time (waves of W, each wave fully concurrent); the default
    # is all N at once.
    p.add_argument("--wave", type=int, default=0)
    args = p.parse_args()
    limit = raise_fd_limit()
    per_proc = args.max_per_proc or (limit - RESERVED_FDS)
    if per_proc < 1:
        print("RLIMIT_NOFILE %d is too small" % limit)
        return 1
    wave = args.wave or args.n
    deadline = time.monotonic() + args.timeout + 5
    failed = 0
    reasons = []
    for first in range(0, args.n, wave):
        f, r = run_batch(args, first, min(wave, args.n - first), per_proc, deadline)
        failed += f
        reasons += r
    if failed or reasons:
        print("%d of %d failed, e.g. %s" % (failed, args.n, "; ".join(reasons[:5])))
        return 1
    print("ok", args.n)
    return 0


if __name__ == "__main__":
    sys.exit(main())

// benchtool: the small load generator and servers behind bench/run.sh. One binary, one
// subcommand per job, so every contender is driven by exactly the same code:
//
//   benchtool serve IP PORT              epoll echo server that also holds idle connections
//                                        (raises RLIMIT_NOFILE, backlog 65535); runs until
//                                        SIGTERM
//   benchtool rtt IP PORT COUNT SIZE     COUNT ping-pongs of SIZE bytes over one connection;
//                                        prints "p50_us p99_us mean_us count"
//   benchtool connrate IP PORT SECONDS CONC   short connections (connect, 1-byte echo, close)
//                                        with CONC in flight for SECONDS; prints
//                                        "ok fail seconds per_second"
//   benchtool idle IP PORT N GOFILE MAXSECONDS  opens N connections, each proven end to end by
//                                        a 1-byte echo; prints "held K"; waits until GOFILE
//                                        exists (bounded), then prints "still K" (connections
//                                        neither closed nor reset) and exits
//   benchtool sink                       reads stdin to EOF; prints "bytes seconds mbit_s":
//                                        all bytes read, and the rate over the time after the
//                                        first 16 MiB (a warm-up; a shorter stream is timed
//                                        from its first byte)
//   benchtool source SECONDS             writes zeros to stdout for SECONDS (counted from the
//                                        first 32 MiB taken), then exits
//   benchtool delay MS HOST PORT [MAXSECONDS]  a long-link relay for ssh's ProxyCommand
//                                        (`-o ProxyCommand='benchtool delay 25 %h %p'`):
//                                        connects to HOST:PORT (numeric address) and copies
//                                        stdin -> socket and socket -> stdout, each chunk
//                                        released MS ms after it was read (MS each way, so
//                                        2*MS round trip); at most 16 MiB queued per direction
//                                        (reading pauses above that); EOF is passed on once the
//                                        queue has drained; exits when both directions are
//                                        done, on an error, or after MAXSECONDS (default 3600)
//
// Numbers go to stdout, one line; problems to stderr with exit status 1. Every loop is bounded
// by a count or a deadline. This is a measuring tool, not product code: it uses plain blocking
// or epoll code kept short, with every descriptor owned by a UniqueFd.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <deque>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/unique_fd.hpp"

using sshuttle::UniqueFd;
using Clock = std::chrono::steady_clock;

namespace {

[[noreturn]] void die(const std::string& what) {
    std::fprintf(stderr, "benchtool: %s: %s\n", what.c_str(), std::strerror(errno));
    std::exit(1);
}

double seconds_since(Clock::time_point t0) {
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

void raise_nofile() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

struct Address {
    sockaddr_storage storage{};
    socklen_t len = 0;
    const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

Address parse_address(const char* ip, const char* port_text) {
    Address a;
    int port = std::atoi(port_text);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a.storage);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
    if (::inet_pton(AF_INET, ip, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(port));
        a.len = sizeof(sockaddr_in);
    } else if (::inet_pton(AF_INET6, ip, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(port));
        a.len = sizeof(sockaddr_in6);
    } else {
        std::fprintf(stderr, "benchtool: bad address %s\n", ip);
        std::exit(1);
    }
    return a;
}

UniqueFd new_socket(const Address& a, bool nonblocking) {
    int flags = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    UniqueFd fd(::socket(a.storage.ss_family, flags, 0));
    if (!fd) die("socket");
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

// Blocking connect with a bound (SO_SNDTIMEO bounds connect on Linux).
UniqueFd connect_blocking(const Address& a, int timeout_s) {
    UniqueFd fd = new_socket(a, false);
    timeval tv{timeout_s, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (::connect(fd.get(), a.get(), a.len) != 0) die("connect");
    return fd;
}

bool read_exact(int fd, char* buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = ::read(fd, buf + got, n - got);
        if (r <= 0) return false;
        got += static_cast<size_t>(r);
    }
    return true;
}

bool write_all(int fd, const char* buf, size_t n) {
    size_t put = 0;
    while (put < n) {
        ssize_t r = ::write(fd, buf + put, n - put);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;
        put += static_cast<size_t>(r);
    }
    return true;
}

// ---- serve ---------------------------------------------------------------------------------

volatile sig_atomic_t g_stop = 0;
void on_term(int) { g_stop = 1; }

struct Conn {
    UniqueFd fd;
    std::string pending;  // echo bytes the peer has not taken yet; reading pauses meanwhile
    bool eof = false;
};

int cmd_serve(const char* ip, const char* port) {
    raise_nofile();
    struct sigaction sa{};
    sa.sa_handler = on_term;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    Address a = parse_address(ip, port);
    UniqueFd lfd = new_socket(a, true);
    int one = 1;
    ::setsockopt(lfd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(lfd.get(), a.get(), a.len) != 0) die("bind");
    if (::listen(lfd.get(), 65535) != 0) die("listen");
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep) die("epoll_create1");
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = lfd.get();
    ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, lfd.get(), &ev);
    std::unordered_map<int, Conn> conns;
    std::array<epoll_event, 256> events{};
    std::vector<char> buf(256 * 1024);
    auto set_interest = [&](int fd, uint32_t what) {
        epoll_event e{};
        e.events = what;
        e.data.fd = fd;
        ::epoll_ctl(ep.get(), EPOLL_CTL_MOD, fd, &e);
    };
    while (!g_stop) {
        int n = ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), 500);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("epoll_wait");
        for (int i = 0; i < n; ++i) {
            int fd = events[static_cast<size_t>(i)].data.fd;
            if (fd == lfd.get()) {
                for (int k = 0; k < 256; ++k) {  // bounded accept burst per wakeup
                    UniqueFd c(::accept4(lfd.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
                    if (!c) break;
                    ::setsockopt(c.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    epoll_event e{};
                    e.events = EPOLLIN;
                    e.data.fd = c.get();
                    ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, c.get(), &e);
                    int key = c.get();
                    conns[key] = Conn{std::move(c), {}, false};
                }
                continue;
            }
            auto it = conns.find(fd);
            if (it == conns.end()) continue;
            Conn& c = it->second;
            bool close_it = false;
            if (!c.pending.empty()) {
                ssize_t w = ::write(fd, c.pending.data(), c.pending.size());
                if (w > 0) c.pending.erase(0, static_cast<size_t>(w));
                if (w < 0 && errno != EAGAIN) close_it = true;
            } else {
                ssize_t r = ::read(fd, buf.data(), buf.size());
                if (r == 0) {
                    c.eof = true;
                } else if (r < 0) {
                    if (errno != EAGAIN) close_it = true;
                } else {
                    ssize_t w = ::write(fd, buf.data(), static_cast<size_t>(r));
                    if (w < 0 && errno != EAGAIN) close_it = true;
                    size_t done = w > 0 ? static_cast<size_t>(w) : 0;
                    if (done < static_cast<size_t>(r)) c.pending.assign(buf.data() + done, static_cast<size_t>(r) - done);
                }
            }
            if (!close_it && c.eof && c.pending.empty()) close_it = true;
            if (close_it) {
                conns.erase(it);  // closing removes it from the epoll set
            } else {
                set_interest(fd, c.pending.empty() ? EPOLLIN : EPOLLOUT);
            }
        }
    }
    return 0;
}

// ---- rtt -----------------------------------------------------------------------------------

int cmd_rtt(const char* ip, const char* port, long count, long size) {
    if (count < 10 || size < 1 || size > 65536) {
        std::fprintf(stderr, "benchtool: rtt needs COUNT >= 10 and 1 <= SIZE <= 65536\n");
        return 1;
    }
    Address a = parse_address(ip, port);
    UniqueFd fd = connect_blocking(a, 10);
    std::vector<char> out(static_cast<size_t>(size), 'x'), in(static_cast<size_t>(size));
    const long warmup = std::min(100L, count / 10);
    std::vector<double> us;
    us.reserve(static_cast<size_t>(count));
    for (long i = 0; i < warmup + count; ++i) {
        auto t0 = Clock::now();
        if (!write_all(fd.get(), out.data(), out.size()) || !read_exact(fd.get(), in.data(), in.size())) {
            std::fprintf(stderr, "benchtool: rtt: connection lost after %ld round trips\n", i);
            return 1;
        }
        if (i >= warmup) us.push_back(seconds_since(t0) * 1e6);
    }
    std::vector<double> sorted = us;
    std::sort(sorted.begin(), sorted.end());
    auto pct = [&](double p) { return sorted[std::min(sorted.size() - 1, static_cast<size_t>(p * static_cast<double>(sorted.size())))]; };
    double sum = 0;
    for (double v : us) sum += v;
    std::printf("%.1f %.1f %.1f %zu\n", pct(0.50), pct(0.99), sum / static_cast<double>(us.size()), us.size());
    return 0;
}

// ---- connrate ------------------------------------------------------------------------------

// One short connection's progress: connecting -> sent the byte -> got it back.
struct Short {
    UniqueFd fd;
    bool sent = false;
    Clock::time_point started;
};

int cmd_connrate(const char* ip, const char* port, double seconds, int conc) {
    if (conc < 1 || conc > 4096 || seconds <= 0) {
        std::fprintf(stderr, "benchtool: connrate needs SECONDS > 0 and 1 <= CONC <= 4096\n");
        return 1;
    }
    raise_nofile();
    Address a = parse_address(ip, port);
    UniqueFd ep(::epoll_create1(EPOLL_CLOEXEC));
    if (!ep) die("epoll_create1");
    std::unordered_map<int, Short> live;
    long ok = 0, fail = 0;
    auto t0 = Clock::now();
    const auto per_conn_limit = std::chrono::seconds(10);
    auto start_one = [&] {
        UniqueFd fd = new_socket(a, true);
        int r = ::connect(fd.get(), a.get(), a.len);
        if (r != 0 && errno != EINPROGRESS) {
            ++fail;
            return;
        }
        epoll_event e{};
        e.events = EPOLLOUT;
        e.data.fd = fd.get();
        ::epoll_ctl(ep.get(), EPOLL_CTL_ADD, fd.get(), &e);
        int key = fd.get();
        live[key] = Short{std::move(fd), false, Clock::now()};
    };
    std::array<epoll_event, 256> events{};
    // Bounded: new connections stop at the deadline; the drain stops 10 s later at most.
    while (true) {
        bool open = seconds_since(t0) < seconds;
        if (!open && live.empty()) break;
        if (seconds_since(t0) > seconds + 10) break;
        while (open && static_cast<int>(live.size()) < conc) start_one();
        int n = ::epoll_wait(ep.get(), events.data(), static_cast<int>(events.size()), 100);
        for (int i = 0; i < n; ++i) {
            int fd = events[static_cast<size_t>(i)].data.fd;
            auto it = live.find(fd);
            if (it == live.end()) continue;
            Short& s = it->second;
            uint32_t got = events[static_cast<size_t>(i)].events;
            bool done = false, bad = false;
            if (!s.sent) {
                int err = 0;
                socklen_t len = sizeof err;
                ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                if (err != 0 || (got & (EPOLLERR | EPOLLHUP))) {
                    bad = true;
                } else if (::write(fd, "x", 1) == 1) {
                    s.sent = true;
                    epoll_event e{};
                    e.events = EPOLLIN;
                    e.data.fd = fd;
                    ::epoll_ctl(ep.get(), EPOLL_CTL_MOD, fd, &e);
                } else {
                    bad = true;
                }
            } else {
                char c = 0;
                ssize_t r = ::read(fd, &c, 1);
                if (r == 1) done = true;
                else if (!(r < 0 && errno == EAGAIN)) bad = true;
            }
            if (done || bad) {
                done ? ++ok : ++fail;
                live.erase(it);
            }
        }
        // Connections stuck longer than the limit count as failures (a lost SYN, a dead peer).
        auto now = Clock::now();
        for (auto it = live.begin(); it != live.end();) {
            if (now - it->second.started > per_conn_limit) {
                ++fail;
                it = live.erase(it);
            } else {
                ++it;
            }
        }
    }
    double el = seconds_since(t0);
    std::printf("%ld %ld %.3f %.1f\n", ok, fail, el, static_cast<double>(ok) / el);
    return 0;
}

// ---- idle ----------------------------------------------------------------------------------

int cmd_idle(const char* ip, const char* port, long n, const char* gofile, double max_s) {
    if (n < 1 || n > 19000) {
        std::fprintf(stderr, "benchtool: idle needs 1 <= N <= 19000 (one process)\n");
        return 1;
    }
    raise_nofile();
    Address a = parse_address(ip, port);
    auto t0 = Clock::now();
    std::vector<UniqueFd> held;
    held.reserve(static_cast<size_t>(n));
    long failed = 0;
    // Connect in batches of 64 so a burst does not outrun the listener's accept loop; each
    // connection is proven end to end by a 1-byte echo before it counts as held.
    const long batch = 64;
    for (long base = 0; base < n && seconds_since(t0) < max_s; base += batch) {
        std::vector<UniqueFd> fds;
        for (long i = base; i < std::min(n, base + batch); ++i) {
            UniqueFd fd = new_socket(a, true);
            int r = ::connect(fd.get(), a.get(), a.len);
            if (r != 0 && errno != EINPROGRESS) {
                ++failed;
                continue;
            }
            fds.push_back(std::move(fd));
        }
        // Wait (bounded) until every connect has finished: a SYN dropped by a full accept
        // queue is retransmitted after 1 s, 3 s, ... and still counts if it gets through.
        std::vector<pollfd> p;
        for (auto& fd : fds) p.push_back({fd.get(), POLLOUT, 0});
        std::vector<short> ready(fds.size(), 0);
        size_t pending = fds.size();
        auto connect_deadline = Clock::now() + std::chrono::seconds(10);
        while (pending > 0 && Clock::now() < connect_deadline) {
            if (::poll(p.data(), p.size(), 200) <= 0) continue;
            for (size_t i = 0; i < p.size(); ++i) {
                if (p[i].fd < 0 || !p[i].revents) continue;
                ready[i] = p[i].revents;
                p[i].fd = -1;
                --pending;
            }
        }
        std::vector<UniqueFd> sent;
        for (size_t i = 0; i < fds.size(); ++i) {
            int err = 0;
            socklen_t len = sizeof err;
            ::getsockopt(fds[i].get(), SOL_SOCKET, SO_ERROR, &err, &len);
            if ((ready[i] & POLLOUT) && err == 0 && ::write(fds[i].get(), "i", 1) == 1)
                sent.push_back(std::move(fds[i]));
            else
                ++failed;
        }
        std::vector<pollfd> q;
        for (auto& fd : sent) q.push_back({fd.get(), POLLIN, 0});
        auto deadline = Clock::now() + std::chrono::seconds(10);
        std::vector<bool> got(sent.size(), false);
        size_t have = 0;
        while (have < sent.size() && Clock::now() < deadline) {
            if (::poll(q.data(), q.size(), 200) <= 0) continue;
            for (size_t i = 0; i < q.size(); ++i) {
                if (got[i] || !q[i].revents) continue;
                char c = 0;
                if (::read(q[i].fd, &c, 1) == 1) {
                    got[i] = true;
                    q[i].fd = -1;  // poll ignores negative fds
                    ++have;
                } else {
                    got[i] = false;
                    q[i].fd = -1;
                    ++failed;
                    sent[i].reset();
                }
            }
        }
        for (size_t i = 0; i < sent.size(); ++i) {
            if (got[i]) held.push_back(std::move(sent[i]));
            else if (sent[i]) ++failed;
        }
    }
    std::printf("held %zu failed %ld seconds %.2f\n", held.size(), failed, seconds_since(t0));
    std::fflush(stdout);
    struct stat st{};
    while (::stat(gofile, &st) != 0 && seconds_since(t0) < max_s + 120)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    // Still held: no EOF, error or data pending on the connection.
    std::vector<pollfd> p;
    for (auto& fd : held) p.push_back({fd.get(), POLLIN | POLLRDHUP, 0});
    ::poll(p.data(), p.size(), 0);
    long still = 0;
    for (auto& x : p) still += x.revents == 0 ? 1 : 0;
    std::printf("still %ld\n", still);
    return 0;
}

// ---- sink / source -------------------------------------------------------------------------

// The rate is measured after a warm-up of kSinkWarmup bytes: the first bytes through a fresh ssh
// connection come while it is still busy starting (and on a busy machine that phase is slow),
// which is not the stream's rate. A stream shorter than that is timed from its first byte.
constexpr long long kSinkWarmup = 16LL << 20;

int cmd_sink() {
    std::vector<char> buf(1 << 20);
    long long total = 0, at_warm = 0;
    Clock::time_point t0, t_warm;
    bool warm = false;
    for (;;) {
        ssize_t r = ::read(0, buf.data(), buf.size());
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        if (total == 0) t0 = Clock::now();
        total += r;
        if (!warm && total >= kSinkWarmup) {
            warm = true;
            t_warm = Clock::now();
            at_warm = total;
        }
    }
    // Warm and enough after it (a quarter of the warm-up) to time: from the warm-up on.
    bool from_warm = warm && total - at_warm >= kSinkWarmup / 4;
    double el = total ? seconds_since(from_warm ? t_warm : t0) : 0.0;
    long long timed = from_warm ? total - at_warm : total;
    std::printf("%lld %.3f %.1f\n", total, el,
                el > 0 ? static_cast<double>(timed) * 8 / el / 1e6 : 0.0);
    return 0;
}

int cmd_source(double seconds) {
    ::signal(SIGPIPE, SIG_IGN);
    std::vector<char> buf(1 << 20, 0);
    // The clock starts once the first 32 MiB are taken: the consumer (ssh) may still be
    // connecting, and that time is not part of the stream (ssh takes a MiB or more from its
    // stdin before its session is up, so the first MiB is not enough).
    for (int i = 0; i < 32; ++i)
        if (!write_all(1, buf.data(), buf.size())) return 1;
    auto t0 = Clock::now();
    while (seconds_since(t0) < seconds)
        if (!write_all(1, buf.data(), buf.size())) return 1;
    return 0;
}

// ---- delay ---------------------------------------------------------------------------------

// One direction of the relay: bytes read from `in` wait in a queue of timestamped chunks and
// are written to `out` once their release time has come. Non-blocking on both ends, driven by
// ppoll in cmd_delay.
struct DelayChunk {
    Clock::time_point release;
    std::vector<char> data;
    size_t off = 0;
};

struct DelayDir {
    int in = -1;
    int out = -1;
    bool out_is_socket = false;
    std::deque<DelayChunk> queue;
    size_t queued = 0;    // bytes in the queue not written yet
    bool in_eof = false;  // read returned 0 (or an error): no more input
    bool done = false;    // EOF passed on (or output failed)
    static constexpr size_t kMaxQueued = 16u << 20;
    bool wants_read() const { return !in_eof && queued < kMaxQueued; }
    bool released(Clock::time_point now) const {
        return !queue.empty() && queue.front().release <= now;
    }
};

void set_nonblocking(int fd) {
    int fl = ::fcntl(fd, F_GETFL);
    if (fl >= 0) ::fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

// Reads what is there (a bounded number of reads per wakeup); EOF and errors end the input.
void delay_read(DelayDir& d, std::chrono::milliseconds delay, std::vector<char>& buf) {
    for (int k = 0; k < 16 && d.wants_read(); ++k) {
        ssize_t r = ::read(d.in, buf.data(), buf.size());
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return;
        if (r <= 0) {
            d.in_eof = true;
            return;
        }
        DelayChunk c;
        c.release = Clock::now() + delay;
        c.data.assign(buf.data(), buf.data() + r);
        d.queued += static_cast<size_t>(r);
        d.queue.push_back(std::move(c));
        if (static_cast<size_t>(r) < buf.size()) return;  // drained for now
    }
}

// Writes the released chunks until the output would block; false if the output failed.
bool delay_write(DelayDir& d, Clock::time_point now) {
    while (d.released(now)) {
        DelayChunk& c = d.queue.front();
        ssize_t w = ::write(d.out, c.data.data() + c.off, c.data.size() - c.off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0 && errno == EAGAIN) return true;
        if (w <= 0) return false;
        c.off += static_cast<size_t>(w);
        d.queued -= static_cast<size_t>(w);
        if (c.off == c.data.size()) d.queue.pop_front();
    }
    return true;
}

int cmd_delay(long ms, const char* host, const char* port, double max_s) {
    if (ms < 0 || ms > 10000 || max_s <= 0) {
        std::fprintf(stderr, "benchtool: delay needs 0 <= MS <= 10000 and MAXSECONDS > 0\n");
        return 1;
    }
    ::signal(SIGPIPE, SIG_IGN);
    Address a = parse_address(host, port);
    UniqueFd sock = connect_blocking(a, 10);
    timeval none{0, 0};  // connect_blocking's timeouts do not apply to the relay's traffic
    ::setsockopt(sock.get(), SOL_SOCKET, SO_SNDTIMEO, &none, sizeof none);
    ::setsockopt(sock.get(), SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
    set_nonblocking(sock.get());
    set_nonblocking(0);
    set_nonblocking(1);
    const auto delay = std::chrono::milliseconds(ms);
    std::array<DelayDir, 2> dirs{};
    dirs[0].in = 0;  // up: stdin -> socket
    dirs[0].out = sock.get();
    dirs[0].out_is_socket = true;
    dirs[1].in = sock.get();  // down: socket -> stdout
    dirs[1].out = 1;
    std::vector<char> buf(256 * 1024);
    auto t0 = Clock::now();
    // Bounded by MAXSECONDS; each turn waits in ppoll for input, output room or the next release.
    while (seconds_since(t0) < max_s) {
        auto now = Clock::now();
        for (DelayDir& d : dirs) {
            if (d.done) continue;
            if (!delay_write(d, now)) return 0;  // the reader went away: nothing more to do
            if (d.in_eof && d.queue.empty()) {
                if (d.out_is_socket)
                    ::shutdown(d.out, SHUT_WR);
                else
                    ::close(d.out);
                d.done = true;
            }
        }
        if (dirs[0].done && dirs[1].done) return 0;
        // stdin, stdout and the socket (once, with the events of both directions).
        std::array<pollfd, 3> p{};
        p[0] = {0, 0, 0};
        p[1] = {1, 0, 0};
        p[2] = {sock.get(), 0, 0};
        if (dirs[0].wants_read() && !dirs[0].done) p[0].events |= POLLIN;
        if (dirs[1].released(now) && !dirs[1].done) p[1].events |= POLLOUT;
        if (dirs[1].wants_read() && !dirs[1].done) p[2].events |= POLLIN;
        if (dirs[0].released(now) && !dirs[0].done) p[2].events |= POLLOUT;
        auto next = now + std::chrono::seconds(1);
        for (DelayDir& d : dirs)
            if (!d.done && !d.queue.empty() && !d.released(now))
                next = std::min(next, d.queue.front().release);
        auto wait_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(next - now).count();
        timespec ts{static_cast<time_t>(wait_ns / 1000000000),
                    static_cast<long>(wait_ns % 1000000000)};
        for (pollfd& x : p)
            if (x.events == 0) x.fd = -1;  // ppoll ignores negative fds
        int n = ::ppoll(p.data(), p.size(), &ts, nullptr);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) die("ppoll");
        // A hang-up or error on an fd whose events are only POLLOUT means the reader is gone.
        if ((p[1].revents & (POLLERR | POLLHUP)) && !(p[1].revents & POLLOUT)) return 0;
        if (p[0].revents) delay_read(dirs[0], delay, buf);
        if (p[2].revents & (POLLIN | POLLHUP | POLLERR)) delay_read(dirs[1], delay, buf);
    }
    std::fprintf(stderr, "benchtool: delay: stopped after %.0f s (MAXSECONDS)\n", max_s);
    return 0;
}

int usage() {
    std::fputs("usage: benchtool serve IP PORT | rtt IP PORT COUNT SIZE | connrate IP PORT SECONDS CONC |\n"
               "       idle IP PORT N GOFILE MAXSECONDS | sink | source SECONDS |\n"
               "       delay MS HOST PORT [MAXSECONDS]\n",
               stderr);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage();
    std::string cmd = argv[1];
    if (cmd == "serve" && argc == 4) return cmd_serve(argv[2], argv[3]);
    if (cmd == "rtt" && argc == 6) return cmd_rtt(argv[2], argv[3], std::atol(argv[4]), std::atol(argv[5]));
    if (cmd == "connrate" && argc == 6)
        return cmd_connrate(argv[2], argv[3], std::atof(argv[4]), std::atoi(argv[5]));
    if (cmd == "idle" && argc == 7)
        return cmd_idle(argv[2], argv[3], std::atol(argv[4]), argv[5], std::atof(argv[6]));
    if (cmd == "sink" && argc == 2) return cmd_sink();
    if (cmd == "source" && argc == 3) return cmd_source(std::atof(argv[2]));
    if (cmd == "delay" && (argc == 5 || argc == 6))
        return cmd_delay(std::atol(argv[2]), argv[3], argv[4],
                         argc == 6 ? std::atof(argv[5]) : 3600.0);
    return usage();
}

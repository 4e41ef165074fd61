#include "daemon/tcp_diag.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"

using namespace sshuttle;
using namespace sshuttle::daemon;

namespace {

// A loopback TCP connection: the accepted end (what sshuttled hands to ssh) and the client.
struct Loopback {
    UniqueFd accepted, client;
    Loopback() {
        UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(listener);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(listener.get(), 1) == 0);
        socklen_t len = sizeof sa;
        REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len) == 0);
        client.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(::connect(client.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        accepted.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        REQUIRE(accepted);
    }
};

void send_all(int fd, std::size_t n) {
    std::string data(n, 'x');
    REQUIRE(::send(fd, data.data(), data.size(), 0) == static_cast<ssize_t>(n));
}
void recv_all(int fd, std::size_t n) {
    std::string buf(n, '\0');
    std::size_t got = 0;
    while (got < n) {
        ssize_t r = ::recv(fd, buf.data() + got, n - got, 0);
        REQUIRE(r > 0);
        got += static_cast<std::size_t>(r);
    }
}

}  // namespace

TEST_CASE("sock_diag reports the byte counters of exactly the sockets asked for") {
    Loopback a, b;
    auto ida = tcp_socket_id(a.accepted.get());
    auto idb = tcp_socket_id(b.accepted.get());
    REQUIRE(ida);
    REQUIRE(idb);
    std::uint64_t ca = ida->cookie, cb = idb->cookie;
    REQUIRE(ca != 0);
    CHECK(ca != cb);
    send_all(a.client.get(), 300);    // the application sends
    recv_all(a.accepted.get(), 300);
    send_all(a.accepted.get(), 1000); // the tunnel answers
    recv_all(a.client.get(), 1000);
    // The ACK of the 1000 bytes comes at once on loopback; allow the kernel a moment.
    TcpCounters got;
    for (int i = 0; i < 100; ++i) {
        auto counters = read_tcp_counters({*ida});
        REQUIRE(counters);
        CHECK(counters->count(cb) == 0);  // not asked for
        REQUIRE(counters->count(ca) == 1);
        got = counters->at(ca);
        if (got.acked == 1000) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    CHECK(got.received == 300);
    CHECK(got.acked == 1000);
    // A socket that is gone is simply absent.
    a.accepted.reset();
    a.client.reset();
    auto after = read_tcp_counters({*ida});
    REQUIRE(after);
    CHECK(after->count(ca) == 0);
    auto none = read_tcp_counters({});
    REQUIRE(none);
    CHECK(none->empty());
}

TEST_CASE("sock_diag lookups: many sockets in batches, IPv6 too, the cookie must match") {
    std::vector<Loopback> conns(300);  // more than one batch
    std::vector<TcpSocketId> ids;
    for (auto& c : conns) {
        send_all(c.client.get(), 7);
        recv_all(c.accepted.get(), 7);
        auto id = tcp_socket_id(c.accepted.get());
        REQUIRE(id);
        ids.push_back(*id);
    }
    auto got = read_tcp_counters(ids);
    REQUIRE(got);
    CHECK(got->size() == conns.size());
    for (const auto& id : ids) CHECK(got->at(id.cookie).received == 7);
    // Same addresses, another cookie (a socket that took the place of a gone one): not it.
    TcpSocketId stale = ids.front();
    stale.cookie ^= 0x5a5a;
    auto none = read_tcp_counters({stale});
    REQUIRE(none);
    CHECK(none->empty());
    // IPv6 loopback, where the machine has it.
    UniqueFd l6(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in6 sa{};
    sa.sin6_family = AF_INET6;
    sa.sin6_addr = in6addr_loopback;
    if (l6 && ::bind(l6.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0) {
        REQUIRE(::listen(l6.get(), 1) == 0);
        socklen_t len = sizeof sa;
        REQUIRE(::getsockname(l6.get(), reinterpret_cast<sockaddr*>(&sa), &len) == 0);
        UniqueFd c(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
        REQUIRE(::connect(c.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        UniqueFd a(::accept4(l6.get(), nullptr, nullptr, SOCK_CLOEXEC));
        send_all(c.get(), 11);
        recv_all(a.get(), 11);
        auto id = tcp_socket_id(a.get());
        REQUIRE(id);
        auto v6 = read_tcp_counters({*id});
        REQUIRE(v6);
        REQUIRE(v6->count(id->cookie) == 1);
        CHECK(v6->at(id->cookie).received == 11);
    }
}

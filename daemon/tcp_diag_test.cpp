#include "daemon/tcp_diag.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <thread>

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
    std::uint64_t ca = socket_cookie(a.accepted.get());
    std::uint64_t cb = socket_cookie(b.accepted.get());
    REQUIRE(ca != 0);
    REQUIRE(cb != 0);
    CHECK(ca != cb);
    send_all(a.client.get(), 300);    // the application sends
    recv_all(a.accepted.get(), 300);
    send_all(a.accepted.get(), 1000); // the tunnel answers
    recv_all(a.client.get(), 1000);
    // The ACK of the 1000 bytes comes at once on loopback; allow the kernel a moment.
    TcpCounters got;
    for (int i = 0; i < 100; ++i) {
        auto counters = read_tcp_counters({ca});
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
    auto after = read_tcp_counters({ca});
    REQUIRE(after);
    CHECK(after->count(ca) == 0);
    auto none = read_tcp_counters({});
    REQUIRE(none);
    CHECK(none->empty());
}

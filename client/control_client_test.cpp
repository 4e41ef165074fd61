#include "client/control_client.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::client;

namespace {

// A one-connection server in a thread: reads one message, answers with `replies`, closes.
struct OneShotServer {
    std::string dir;
    std::string path;
    UniqueFd listen_fd;
    std::thread thread;
    std::string received;

    explicit OneShotServer(std::string replies) {
        char tmpl[] = "/tmp/sshuttle-client-test.XXXXXX";
        dir = ::mkdtemp(tmpl);
        path = dir + "/t.sock";
        listen_fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::memcpy(sa.sun_path, path.data(), path.size());
        REQUIRE(::bind(listen_fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(listen_fd.get(), 1) == 0);
        thread = std::thread([this, replies] {
            UniqueFd c(::accept4(listen_fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
            char buf[4096];
            while (received.find('\0') == std::string::npos) {
                ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
                if (n <= 0) break;
                received.append(buf, static_cast<std::size_t>(n));
            }
            (void)!::send(c.get(), replies.data(), replies.size(), MSG_NOSIGNAL);
        });
    }
    ~OneShotServer() {
        thread.join();
        ::unlink(path.c_str());
        ::rmdir(dir.c_str());
    }
};

}  // namespace

TEST_CASE("control client: nothing listening is NotFound") {
    auto c = ControlClient::connect("/tmp/sshuttle-client-test-no-such-dir/x.sock");
    REQUIRE_FALSE(c);
    CHECK(c.error().code == Errc::NotFound);
}

TEST_CASE("control client: a call and a stream of replies until the server closes") {
    using namespace std::string_literals;
    OneShotServer server(
        "{\"parameters\":{\"n\":1},\"continues\":true}\0"
        "{\"parameters\":{\"n\":2}}\0"s);
    auto c = ControlClient::connect(server.path);
    REQUIRE(c);
    auto r = c->call("io.sshuttle.Tunnel.Watch", true);
    REQUIRE(r);
    CHECK(r->continues);
    CHECK(r->parameters["n"] == 1);
    auto r2 = c->next();
    REQUIRE(r2);
    CHECK_FALSE(r2->continues);
    auto end = c->next();
    REQUIRE_FALSE(end);
    CHECK(end.error().message == "connection closed");
    CHECK(server.received.find("\"method\":\"io.sshuttle.Tunnel.Watch\"") != std::string::npos);
    CHECK(server.received.find("\"more\":true") != std::string::npos);
}

TEST_CASE("control client: error replies are described with their reason") {
    proto::Reply r;
    r.error = "io.sshuttle.Tunnel.PermissionDenied";
    r.parameters = {{"reason", "only uid 1000 may"}};
    CHECK(describe_error(r) == "only uid 1000 may (io.sshuttle.Tunnel.PermissionDenied)");
    r.parameters = {{"method", "x.Y"}};
    r.error = "org.varlink.service.MethodNotFound";
    CHECK(describe_error(r) == R"(org.varlink.service.MethodNotFound {"method":"x.Y"})");
}

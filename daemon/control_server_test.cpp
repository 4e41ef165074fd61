#include "daemon/control_server.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include <doctest/doctest.h>

#include "proto/control.hpp"

using namespace sshuttle;
using namespace sshuttle::daemon;
using nlohmann::json;

namespace {

struct TempDir {
    std::string path;
    TempDir() {
        char tmpl[] = "/tmp/sshuttle-control-test.XXXXXX";
        path = ::mkdtemp(tmpl);
    }
    ~TempDir() {
        std::string cmd = "rm -rf '" + path + "'";
        (void)!std::system(cmd.c_str());
    }
};

UniqueFd connect_to(const std::string& path) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::memcpy(sa.sun_path, path.data(), path.size());
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) return UniqueFd();
    return fd;
}

void send_text(int fd, std::string_view text, bool nul = true) {
    std::string s(text);
    if (nul) s.push_back('\0');
    REQUIRE(::send(fd, s.data(), s.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(s.size()));
}

// A test fixture: one server on its own loop. Everything is driven from this thread: the test
// writes to its blocking client socket, then runs the loop until a reply (or EOF) is readable.
struct Fixture {
    TempDir dir;
    std::string path = dir.path + "/sshuttle/t.sock";
    EventPtr event;
    int counter = 0;
    int stops = 0;
    std::unique_ptr<ControlServer> server;

    Fixture() {
        sd_event* e = nullptr;
        REQUIRE(sd_event_new(&e) >= 0);
        event.reset(e);
        server = std::make_unique<ControlServer>(
            event.get(), ControlServer::Handlers{[this] {
                                                     return json{{"counter", counter}};
                                                 },
                                                 [this] { ++stops; }});
        auto r = server->listen(path);
        REQUIRE(r);
    }

    // The next message from the server (without its NUL); "EOF" when it closed the connection,
    // nullopt when nothing came within ~5 s.
    std::optional<std::string> read_message(int fd, std::string& pending) {
        for (int i = 0; i < 500; ++i) {
            std::size_t nul = pending.find('\0');
            if (nul != std::string::npos) {
                std::string msg = pending.substr(0, nul);
                pending.erase(0, nul + 1);
                return msg;
            }
            sd_event_run(event.get(), 10'000);
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 0) == 1) {
                char buf[4096];
                ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (n == 0) return std::string("EOF");
                if (n > 0) pending.append(buf, static_cast<std::size_t>(n));
            }
        }
        return std::nullopt;
    }

    proto::Reply call(int fd, const std::string& text) {
        send_text(fd, text);
        std::string pending;
        auto msg = read_message(fd, pending);
        REQUIRE(msg);
        auto reply = proto::parse_reply(*msg);
        REQUIRE(reply);
        return *reply;
    }
};

}  // namespace

TEST_CASE("control socket: directory 0700, socket 0600, removed with the server") {
    Fixture f;
    struct stat st {};
    REQUIRE(::stat((f.dir.path + "/sshuttle").c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0700);
    REQUIRE(::stat(f.path.c_str(), &st) == 0);
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 0777) == 0600);
    f.server.reset();
    CHECK(::access(f.path.c_str(), F_OK) != 0);
}

TEST_CASE("control socket: Status answers; unknown methods and parameters are named errors") {
    Fixture f;
    UniqueFd c = connect_to(f.path);
    REQUIRE(c);
    f.counter = 7;
    auto r = f.call(c.get(), R"({"method":"io.sshuttle.Tunnel.Status"})");
    CHECK_FALSE(r.is_error());
    CHECK(r.parameters["counter"] == 7);

    r = f.call(c.get(), R"({"method":"io.sshuttle.Tunnel.Explode"})");
    CHECK(r.error == kErrorMethodNotFound);
    CHECK(r.parameters["method"] == "io.sshuttle.Tunnel.Explode");

    r = f.call(c.get(), R"({"method":"io.sshuttle.Tunnel.Status","parameters":{"verbose":true}})");
    CHECK(r.error == kErrorInvalidParameter);
    CHECK(r.parameters["parameter"] == "verbose");

    r = f.call(c.get(), R"({"method":"io.sshuttle.Tunnel.Watch"})");
    CHECK(r.error == kErrorExpectedMore);

    // The connection survived all of that.
    r = f.call(c.get(), R"({"method":"io.sshuttle.Tunnel.Status"})");
    CHECK(r.parameters["counter"] == 7);
}

TEST_CASE("control socket: malformed input gets an error and a disconnect, the server lives on") {
    const std::string bad[] = {
        "not json",
        R"({"method":"io.sshuttle.Tunnel.Status","bogus":1})",
        R"([1,2,3])",
        R"({"method":"nodots"})",
        "{\"method\":\"io.sshuttle.Tunnel.Status\",\"parameters\":{\"x\":\"\xff\"}}",
        R"({"method":"io.sshuttle.Tunnel.Status","parameters":[]})",
    };
    Fixture f;
    for (const std::string& text : bad) {
        CAPTURE(text);
        UniqueFd c = connect_to(f.path);
        REQUIRE(c);
        send_text(c.get(), text);
        std::string pending;
        auto msg = f.read_message(c.get(), pending);
        REQUIRE(msg);
        auto reply = proto::parse_reply(*msg);
        REQUIRE(reply);
        CHECK(reply->error == kErrorProtocol);
        CHECK(f.read_message(c.get(), pending) == std::optional<std::string>("EOF"));
    }
    // A message that never ends: refused once it passes the cap.
    UniqueFd c = connect_to(f.path);
    std::string big(proto::kMaxControlMessage + 10, 'x');
    send_text(c.get(), big, false);
    std::string pending;
    auto msg = f.read_message(c.get(), pending);
    REQUIRE(msg);
    CHECK(proto::parse_reply(*msg)->error == kErrorProtocol);
    UniqueFd ok = connect_to(f.path);
    CHECK(f.call(ok.get(), R"({"method":"io.sshuttle.Tunnel.Status"})").parameters["counter"] == 0);
}

TEST_CASE("control socket: Watch streams changes until the tunnel stops") {
    Fixture f;
    UniqueFd c = connect_to(f.path);
    send_text(c.get(), R"({"method":"io.sshuttle.Tunnel.Watch","more":true})");
    std::string pending;
    auto first = f.read_message(c.get(), pending);
    REQUIRE(first);
    auto r1 = proto::parse_reply(*first);
    REQUIRE(r1);
    CHECK(r1->continues);
    CHECK(r1->parameters["counter"] == 0);
    f.counter = 1;
    auto second = f.read_message(c.get(), pending);
    REQUIRE(second);
    auto r2 = proto::parse_reply(*second);
    REQUIRE(r2);
    CHECK(r2->continues);
    CHECK(r2->parameters["counter"] == 1);
    f.counter = 2;
    f.server->finish_watchers();
    auto last = f.read_message(c.get(), pending);
    REQUIRE(last);
    auto r3 = proto::parse_reply(*last);
    REQUIRE(r3);
    CHECK_FALSE(r3->continues);
    CHECK(r3->parameters["counter"] == 2);
    CHECK(f.read_message(c.get(), pending) == std::optional<std::string>("EOF"));
}

TEST_CASE("control socket: Stop replies and asks the tunnel to stop; oneway gets no reply") {
    Fixture f;
    UniqueFd c = connect_to(f.path);
    auto r = f.call(c.get(), R"({"method":"io.sshuttle.Tunnel.Stop"})");
    CHECK_FALSE(r.is_error());
    CHECK(f.stops == 1);
    send_text(c.get(), R"({"method":"io.sshuttle.Tunnel.Stop","oneway":true})");
    send_text(c.get(), R"({"method":"io.sshuttle.Tunnel.Status"})");
    std::string pending;
    auto msg = f.read_message(c.get(), pending);
    REQUIRE(msg);
    CHECK(
        proto::parse_reply(*msg)->parameters.contains("counter"));  // the Status, not a Stop reply
    CHECK(f.stops == 2);
}

TEST_CASE("control socket: a live socket is not taken over, a stale one is replaced") {
    Fixture f;
    CHECK(control_socket_answers(f.path));
    ControlServer second(f.event.get(), {[] { return json::object(); }, [] {}});
    auto r = second.listen(f.path);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("already answers") != std::string::npos);
    // Leave a stale socket file behind (a crashed daemon), then start anew on it.
    std::string stale = f.dir.path + "/sshuttle/stale.sock";
    {
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::memcpy(sa.sun_path, stale.data(), stale.size());
        REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    }
    CHECK_FALSE(control_socket_answers(stale));
    ControlServer third(f.event.get(), {[] { return json::object(); }, [] {}});
    CHECK(third.listen(stale));
    CHECK(control_socket_answers(stale));
}

TEST_CASE("control socket: another uid is refused with a clear error and disconnected") {
    if (::geteuid() != 0) {
        MESSAGE("skipped: needs root to setuid() a child to nobody");
        return;
    }
    Fixture f;
    // Open the file-mode gate so the child reaches the SO_PEERCRED check behind it.
    REQUIRE(::chmod((f.dir.path).c_str(), 0755) == 0);
    REQUIRE(::chmod((f.dir.path + "/sshuttle").c_str(), 0755) == 0);
    REQUIRE(::chmod(f.path.c_str(), 0666) == 0);
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        // Child: nobody. Exit 0 only for a PermissionDenied error followed by EOF.
        if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(10);
        UniqueFd c = connect_to(f.path);
        if (!c) ::_exit(11);
        std::string call = R"({"method":"io.sshuttle.Tunnel.Stop"})";
        call.push_back('\0');
        (void)!::send(c.get(), call.data(), call.size(), MSG_NOSIGNAL);
        std::string got;
        char buf[4096];
        for (int i = 0; i < 100; ++i) {
            pollfd p{c.get(), POLLIN, 100};
            if (::poll(&p, 1, 100) != 1) continue;
            ssize_t n = ::recv(c.get(), buf, sizeof buf, 0);
            if (n <= 0) break;
            got.append(buf, static_cast<std::size_t>(n));
        }
        if (got.empty() || got.back() != '\0') ::_exit(12);
        got.pop_back();
        auto reply = proto::parse_reply(got);
        if (!reply || reply->error != kErrorPermissionDenied) ::_exit(13);
        ::_exit(reply->parameters.value("uid", 0) == 65534 ? 0 : 14);
    }
    int status = 0;
    for (int i = 0; i < 1000; ++i) {  // ~10 s
        sd_event_run(f.event.get(), 10'000);
        if (::waitpid(pid, &status, WNOHANG) == pid) break;
    }
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(f.stops == 0);  // the refused Stop did nothing
}

TEST_CASE("default control socket places") {
    CHECK(*default_control_socket("corp", 1000, "", "/run/user/1000") ==
          "/run/user/1000/sshuttle/corp.sock");
    CHECK(*default_control_socket("corp", 0, "", "/run/user/0") == "/run/sshuttle/corp.sock");
    CHECK(*default_control_socket("corp", 990, "/run/sshuttle:/run/x", "") ==
          "/run/sshuttle/corp.sock");
    CHECK_FALSE(default_control_socket("corp", 1000, "", ""));
    CHECK_FALSE(default_control_socket("../x", 1000, "", "/run/user/1000"));
}

TEST_CASE("status parameters carry the tunnel's numbers") {
    proto::TunnelOptions o;
    o.subnets.push_back({*Subnet::parse("10.0.0.0/8"), {}});
    StatusInfo info{"corp", "u@h", &o, 0, 1'000'000, 42};
    TunnelStats s;
    s.state = TunnelStats::State::Connected;
    s.channels_open = 3;
    s.bytes_in = 100;
    s.bytes_out = 200;
    s.listening = {"127.0.0.1:12300"};
    json j = status_parameters(info, s, 61'000'000);
    CHECK(j["name"] == "corp");
    CHECK(j["state"] == "connected");
    CHECK(j["method"] == "auto");
    CHECK(j["subnets"][0] == "10.0.0.0/8");
    CHECK(j["uptime"] == 60);
    CHECK(j["started"] == "1970-01-01T00:00:00Z");
    CHECK(j["channels_open"] == 3);
    CHECK(j["bytes_in"] == 100);
    CHECK(j["bytes_out"] == 200);
    CHECK(j["dns_port"].is_null());
    CHECK(j["pid"] == 42);
}

TEST_CASE("control place: explicit name or socket, else the first free derived name") {
    TempDir dir;
    proto::TunnelOptions o;
    auto p = choose_control_place(o, "gw", 1000, "", dir.path);
    REQUIRE(p);
    CHECK(p->name == "gw");
    CHECK(p->path == dir.path + "/sshuttle/gw.sock");
    // A tunnel named gw already answers: the derived name moves on; an explicit one does not.
    EventPtr event;
    sd_event* e = nullptr;
    REQUIRE(sd_event_new(&e) >= 0);
    event.reset(e);
    ControlServer running(event.get(), {[] { return json::object(); }, [] {}});
    REQUIRE(running.listen(p->path));
    auto next = choose_control_place(o, "gw", 1000, "", dir.path);
    REQUIRE(next);
    CHECK(next->name == "gw-2");
    o.name = "gw";
    CHECK(choose_control_place(o, "ignored", 1000, "", dir.path)->path == p->path);
    o.control_socket = "/tmp/x.sock";
    CHECK(choose_control_place(o, "ignored", 1000, "", "")->path == "/tmp/x.sock");
}

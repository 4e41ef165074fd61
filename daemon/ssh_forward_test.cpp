// SshForwarder against a fake ControlMaster: a unix socket served by a thread that speaks
// PROTOCOL.mux the way OpenSSH's mux.c does (hello first, the request read exactly, then two
// descriptors each in its own message), so the whole exchange runs over real sockets.
#include "daemon/ssh_forward.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.hpp"
#include "proto/ssh_mux.hpp"

using namespace sshuttle;
using namespace sshuttle::daemon;
namespace mux = sshuttle::proto::sshmux;

namespace {

using Bytes = std::vector<std::uint8_t>;

void put_u32(Bytes& b, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}
void put_str(Bytes& b, std::string_view s) {
    put_u32(b, static_cast<std::uint32_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
}
Bytes packet(const Bytes& body) {
    Bytes p;
    put_u32(p, static_cast<std::uint32_t>(body.size()));
    p.insert(p.end(), body.begin(), body.end());
    return p;
}
std::uint32_t get_u32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

bool read_exact(int fd, std::uint8_t* buf, std::size_t n) {
    while (n > 0) {
        ssize_t r = ::read(fd, buf, n);
        if (r <= 0) return false;
        buf += r;
        n -= static_cast<std::size_t>(r);
    }
    return true;
}

Bytes read_packet(int fd) {
    std::uint8_t head[4];
    if (!read_exact(fd, head, 4)) return {};
    Bytes body(get_u32(head));
    if (!read_exact(fd, body.data(), body.size())) return {};
    return body;
}

int receive_fd(int sock) {
    char byte = 0;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    if (::recvmsg(sock, &msg, 0) != 1) return -1;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    if (!cm || cm->cmsg_type != SCM_RIGHTS) return -1;
    int fd = -1;
    std::memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

enum class Answer { Open, Fail, Deny, Silent, BadVersion };

// One fake master serving one control connection, then keeping it as told.
struct FakeMaster {
    std::string dir;
    std::string path;
    UniqueFd listener;
    // What the master saw.
    std::string host;
    std::uint32_t port = 0;
    std::uint32_t version = 0;
    UniqueFd got_in, got_out;  // the two descriptors received
    UniqueFd control;          // the accepted control connection, kept open

    FakeMaster() {
        char templ[] = "/tmp/sshuttle-fwd-test-XXXXXX";
        REQUIRE(::mkdtemp(templ) != nullptr);
        dir = templ;
        path = dir + "/m0";
        listener.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        std::strcpy(sa.sun_path, path.c_str());
        REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
        REQUIRE(::listen(listener.get(), 128) == 0);
    }
    ~FakeMaster() {
        ::unlink(path.c_str());
        ::rmdir(dir.c_str());
    }

    // Serves one request the way mux.c does (blocking; run in a thread).
    void serve(Answer answer) {
        control.reset(::accept4(listener.get(), nullptr, nullptr, SOCK_CLOEXEC));
        if (!control) return;
        int fd = control.get();
        Bytes hello;
        put_u32(hello, mux::kMsgHello);
        put_u32(hello, answer == Answer::BadVersion ? 3 : 4);
        put_str(hello, "info");
        put_str(hello, "0");
        Bytes out = packet(hello);
        if (::write(fd, out.data(), out.size()) != static_cast<ssize_t>(out.size())) return;
        Bytes h = read_packet(fd);
        if (h.size() < 8 || get_u32(h.data()) != mux::kMsgHello) return;
        version = get_u32(h.data() + 4);
        Bytes req = read_packet(fd);
        if (req.size() < 12 || get_u32(req.data()) != mux::kNewStdioFwd) return;
        std::uint32_t rid = get_u32(req.data() + 4);
        std::size_t pos = 8;
        pos += 4 + get_u32(req.data() + pos);  // reserved
        std::uint32_t hlen = get_u32(req.data() + pos);
        host.assign(reinterpret_cast<const char*>(req.data() + pos + 4), hlen);
        pos += 4 + hlen;
        port = get_u32(req.data() + pos);
        got_in.reset(receive_fd(fd));
        got_out.reset(receive_fd(fd));
        Bytes reply;
        switch (answer) {
            case Answer::Open:
                put_u32(reply, mux::kSessionOpened);
                put_u32(reply, rid);
                put_u32(reply, 5);
                break;
            case Answer::Fail:
            case Answer::Deny:
                put_u32(reply, answer == Answer::Fail ? mux::kFailure : mux::kPermissionDenied);
                put_u32(reply, rid);
                put_str(reply, "Session open refused by peer");
                got_in.reset();  // a refusing master closes its copies
                got_out.reset();
                break;
            case Answer::Silent:
            case Answer::BadVersion:
                return;
        }
        out = packet(reply);
        (void)::write(fd, out.data(), out.size());
    }
};

struct Loop {
    EventPtr event;
    Loop() {
        sd_event* raw = nullptr;
        REQUIRE(sd_event_new(&raw) >= 0);
        event.reset(raw);
    }
    // Runs the loop until pred() holds (at most ~5 s).
    template <class Pred>
    bool run_until(Pred pred) {
        for (int i = 0; i < 500; ++i) {
            if (pred()) return true;
            REQUIRE(sd_event_run(event.get(), 10'000) >= 0);
        }
        return pred();
    }
};

// A connected TCP-like pair: the "captured" socket we hand over, and the application's end.
struct AppPair {
    UniqueFd captured, app;
    AppPair() {
        auto p = make_socketpair(true);
        REQUIRE(p);
        captured = std::move(p->first);
        app = std::move(p->second);
    }
};

// True when fd and app are the two ends of one connection: bytes written to fd reach app.
bool same_connection(int fd, int app) {
    const char msg[] = "ping";
    if (::write(fd, msg, 4) != 4) return false;
    char buf[8] = {};
    for (int i = 0; i < 100; ++i) {
        ssize_t n = ::recv(app, buf, sizeof buf, MSG_DONTWAIT);
        if (n == 4) return std::string(buf, 4) == "ping";
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
}

}  // namespace

TEST_CASE("the forward lifecycle is a pure function of state and event") {
    using S = ForwardState;
    using E = ForwardEvent;
    CHECK(next_forward_state(S::Requested, E::Opened) == S::Open);
    CHECK(next_forward_state(S::Requested, E::Refused) == S::Failed);
    CHECK(next_forward_state(S::Requested, E::Broken) == S::Failed);
    CHECK(next_forward_state(S::Requested, E::TimedOut) == S::Failed);
    CHECK(next_forward_state(S::Open, E::Broken) == S::Closed);
    CHECK_FALSE(next_forward_state(S::Open, E::Opened));
    CHECK_FALSE(next_forward_state(S::Open, E::Refused));
    CHECK_FALSE(next_forward_state(S::Open, E::TimedOut));
    for (E e : {E::Opened, E::Refused, E::Broken, E::TimedOut}) {
        CHECK_FALSE(next_forward_state(S::Failed, e));
        CHECK_FALSE(next_forward_state(S::Closed, e));
    }
}

TEST_CASE("an opened forward hands the very socket to the master and counts until it closes") {
    Loop loop;
    FakeMaster master;
    std::vector<SshForwarder::Failure> failures;
    SshForwarder fwd(loop.event.get(), 1024, [&](SshForwarder::Failure f) { failures.push_back(std::move(f)); });
    fwd.add_master(master.path);
    CHECK_FALSE(fwd.pick());  // not up yet
    fwd.set_up(0);
    REQUIRE(fwd.pick() == 0u);
    AppPair conn;
    std::thread t([&] { master.serve(Answer::Open); });
    fwd.forward(0, std::move(conn.captured), *IpAddress::parse("fd00::2"), 8080);
    CHECK(fwd.opening() == 1);
    REQUIRE(loop.run_until([&] { return fwd.channels() == 1; }));
    t.join();
    CHECK(failures.empty());
    CHECK(master.version == 4);
    CHECK(master.host == "fd00::2");
    CHECK(master.port == 8080);
    REQUIRE(master.got_in);
    REQUIRE(master.got_out);
    CHECK(same_connection(master.got_in.get(), conn.app.get()));
    CHECK(same_connection(master.got_out.get(), conn.app.get()));
    // Our copy is closed: once the master drops both of its copies the application sees EOF.
    master.got_in.reset();
    master.got_out.reset();
    char c;
    CHECK(::recv(conn.app.get(), &c, 1, MSG_DONTWAIT) == 0);
    auto stats = fwd.stats();
    CHECK(stats[0].opened == 1);
    CHECK(stats[0].channels == 1);
    // The master closes the control connection when the channel ends.
    master.control.reset();
    REQUIRE(loop.run_until([&] { return fwd.channels() == 0; }));
    CHECK(fwd.stats()[0].opened == 1);
    CHECK(failures.empty());
}

TEST_CASE("a refused or denied forward gives the untouched socket back with the reason") {
    for (Answer answer : {Answer::Fail, Answer::Deny}) {
        CAPTURE(static_cast<int>(answer));
        Loop loop;
        FakeMaster master;
        std::vector<SshForwarder::Failure> failures;
        SshForwarder fwd(loop.event.get(), 1024,
                         [&](SshForwarder::Failure f) { failures.push_back(std::move(f)); });
        fwd.add_master(master.path);
        fwd.set_up(0);
        AppPair conn;
        std::thread t([&] { master.serve(answer); });
        fwd.forward(0, std::move(conn.captured), *IpAddress::parse("10.1.2.3"), 81);
        REQUIRE(loop.run_until([&] { return !failures.empty(); }));
        t.join();
        REQUIRE(failures.size() == 1);
        CHECK(failures[0].port == 81);
        CHECK(failures[0].ip == *IpAddress::parse("10.1.2.3"));
        CHECK(failures[0].error.message.find("Session open refused by peer") != std::string::npos);
        CHECK(failures[0].error.code ==
              (answer == Answer::Fail ? Errc::Backend : Errc::PermissionDenied));
        REQUIRE(failures[0].client);
        CHECK(same_connection(failures[0].client.get(), conn.app.get()));
        CHECK(fwd.channels() == 0);
        CHECK(fwd.opening() == 0);
        CHECK(fwd.stats()[0].failed == 1);
    }
}

TEST_CASE("a master that never answers is timed out, and one of another version is refused") {
    Loop loop;
    FakeMaster master;
    std::vector<SshForwarder::Failure> failures;
    SshForwarder fwd(loop.event.get(), 1024, [&](SshForwarder::Failure f) { failures.push_back(std::move(f)); });
    fwd.set_open_timeout(100'000);
    fwd.add_master(master.path);
    fwd.set_up(0);
    AppPair conn;
    std::thread t([&] { master.serve(Answer::Silent); });
    fwd.forward(0, std::move(conn.captured), *IpAddress::parse("10.1.2.3"), 22);
    t.join();
    REQUIRE(loop.run_until([&] { return !failures.empty(); }));
    CHECK(failures[0].error.code == Errc::Timeout);
    CHECK(failures[0].client);

    FakeMaster old;
    SshForwarder fwd2(loop.event.get(), 1024, [&](SshForwarder::Failure f) { failures.push_back(std::move(f)); });
    fwd2.add_master(old.path);
    fwd2.set_up(0);
    AppPair conn2;
    std::thread t2([&] { old.serve(Answer::BadVersion); });
    fwd2.forward(0, std::move(conn2.captured), *IpAddress::parse("10.1.2.3"), 22);
    t2.join();
    REQUIRE(loop.run_until([&] { return failures.size() == 2; }));
    CHECK(failures[1].error.code == Errc::Protocol);
    CHECK(failures[1].error.message.find("version 3") != std::string::npos);
}

TEST_CASE("no master listening: the failure comes from the loop, not from inside forward()") {
    Loop loop;
    std::vector<SshForwarder::Failure> failures;
    SshForwarder fwd(loop.event.get(), 1024, [&](SshForwarder::Failure f) { failures.push_back(std::move(f)); });
    fwd.add_master("/nonexistent-sshuttle-test/m0");
    fwd.set_up(0);
    AppPair conn;
    fwd.forward(0, std::move(conn.captured), *IpAddress::parse("10.0.0.1"), 80);
    CHECK(failures.empty());
    REQUIRE(loop.run_until([&] { return !failures.empty(); }));
    CHECK(failures[0].error.sys_errno == ENOENT);
    CHECK(failures[0].client);
}

TEST_CASE("pick() takes the least loaded master that is up and under its descriptor budget") {
    Loop loop;
    FakeMaster listening;  // accepts nothing: requests stay in flight
    // 64 reserved + 3 per forward: a limit of 70 leaves room for 2 forwards per master.
    SshForwarder fwd(loop.event.get(), 70, [](SshForwarder::Failure) {});
    fwd.add_master("/nonexistent-sshuttle-test/m0");
    fwd.add_master("/nonexistent-sshuttle-test/m1");
    fwd.add_master(listening.path);
    CHECK_FALSE(fwd.pick());
    CHECK_FALSE(fwd.any_up());
    fwd.set_up(1);
    fwd.set_up(2);
    CHECK(fwd.pick() == 1u);
    fwd.set_gone(1);
    CHECK(fwd.pick() == 2u);
    fwd.set_up(1);  // gone stays gone
    CHECK(fwd.pick() == 2u);
    // Forwards in flight count against the budget: two to master 2, then none left.
    AppPair a, b;
    fwd.forward(2, std::move(a.captured), *IpAddress::parse("10.0.0.1"), 80);
    CHECK(fwd.opening() == 1);
    CHECK(fwd.pick() == 2u);
    fwd.forward(2, std::move(b.captured), *IpAddress::parse("10.0.0.1"), 80);
    CHECK(fwd.opening() == 2);
    CHECK_FALSE(fwd.pick());
    // At its budget a master is not "saturated with opens": callers go to the agent instead
    // of waiting.
    CHECK_FALSE(fwd.opens_saturated());
}

TEST_CASE("a master takes at most max_channels forwards, whatever its descriptors allow") {
    Loop loop;
    FakeMaster listening;
    SshForwarder fwd(loop.event.get(), 100'000, [](SshForwarder::Failure) {});
    fwd.set_max_channels(2);
    fwd.add_master(listening.path);
    fwd.set_up(0);
    AppPair a, b;
    fwd.forward(0, std::move(a.captured), *IpAddress::parse("10.0.0.1"), 80);
    REQUIRE(fwd.pick() == 0u);
    fwd.forward(0, std::move(b.captured), *IpAddress::parse("10.0.0.1"), 80);
    CHECK_FALSE(fwd.pick());
    CHECK_FALSE(fwd.opens_saturated());  // full, not busy: new connections take the agent
}

TEST_CASE("opens in flight are bounded per master: saturated at kMaxOpening") {
    Loop loop;
    FakeMaster listening;
    SshForwarder fwd(loop.event.get(), 100'000, [](SshForwarder::Failure) {});
    fwd.add_master(listening.path);
    fwd.set_up(0);
    std::vector<AppPair> conns(SshForwarder::kMaxOpening);
    for (auto& c : conns) {
        REQUIRE(fwd.pick() == 0u);
        CHECK_FALSE(fwd.opens_saturated());
        fwd.forward(0, std::move(c.captured), *IpAddress::parse("10.0.0.1"), 80);
    }
    CHECK(fwd.opening() == SshForwarder::kMaxOpening);
    CHECK(fwd.opens_saturated());
    CHECK_FALSE(fwd.pick());
}

TEST_CASE("a control directory is private, short enough for ssh, and removed with its sockets") {
    std::string path;
    {
        auto dir = ControlDir::create("", "");
        REQUIRE(dir);
        path = dir->path();
        CHECK(path.rfind("/tmp/sshuttle-ssh-", 0) == 0);
        struct stat st {};
        REQUIRE(::stat(path.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0700);
        CHECK(dir->socket_path(1) == path + "/m1");
        // A leftover file (an ssh killed while binding) does not keep the directory.
        FILE* f = std::fopen((path + "/m0.tmp").c_str(), "w");
        REQUIRE(f);
        std::fclose(f);
    }
    struct stat st {};
    CHECK(::stat(path.c_str(), &st) != 0);
    // A parent whose path is too long for ssh's control socket is skipped.
    auto dir = ControlDir::create("/" + std::string(120, 'x'), "");
    REQUIRE(dir);
    CHECK(dir->path().rfind("/tmp/", 0) == 0);
}

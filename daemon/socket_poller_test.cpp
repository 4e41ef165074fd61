// SocketPoller on real socketpairs and a private sd-event loop, stepped by hand.
#include "daemon/socket_poller.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <functional>
#include <memory>
#include <vector>

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::daemon;

namespace {

EventPtr new_loop() {
    sd_event* raw = nullptr;
    REQUIRE(sd_event_new(&raw) >= 0);
    return EventPtr(raw);
}

// A socket whose other end has written one byte it never takes back: readable for good
// (level-triggered), the way a socket in CLOSE-WAIT stays readable until someone reads it.
struct ReadySocket final : SocketPoller::Client {
    UniqueFd mine;
    UniqueFd peer;
    SocketPoller::Registration reg;
    int calls = 0;
    std::uint32_t last = 0;
    std::function<void()> on_call;
    void on_poll(std::uint32_t revents) override {
        ++calls;
        last = revents;
        if (on_call) on_call();
    }
};

std::vector<std::unique_ptr<ReadySocket>> ready_sockets(SocketPoller& poller, int n) {
    std::vector<std::unique_ptr<ReadySocket>> v;
    for (int i = 0; i < n; ++i) {
        auto s = std::make_unique<ReadySocket>();
        auto pair = make_socketpair(true);
        REQUIRE(pair);
        s->mine = std::move(pair->first);
        s->peer = std::move(pair->second);
        REQUIRE(::write(s->peer.get(), "x", 1) == 1);
        auto reg = poller.add(s->mine.get(), s.get());
        REQUIRE(reg);
        s->reg = std::move(*reg);
        REQUIRE(s->reg.set_events(EPOLLIN));
        v.push_back(std::move(s));
    }
    return v;
}

int total_calls(const std::vector<std::unique_ptr<ReadySocket>>& v) {
    int n = 0;
    for (const auto& s : v) n += s->calls;
    return n;
}

}  // namespace

TEST_CASE("poller: one dispatch serves at most a batch, and every ready socket before any twice") {
    EventPtr loop = new_loop();
    SocketPoller poller(loop.get());
    REQUIRE(poller.start(0));
    const int n = 2 * SocketPoller::kBatch + SocketPoller::kBatch / 2;
    auto sockets = ready_sockets(poller, n);
    CHECK(poller.size() == static_cast<std::size_t>(n));
    CHECK(poller.armed() == static_cast<std::size_t>(n));
    // Nobody reads: every socket stays ready. Each loop turn is one dispatch of one batch.
    for (int turn = 1; turn <= 3; ++turn) {
        REQUIRE(sd_event_run(loop.get(), 0) > 0);
        CHECK(total_calls(sockets) == turn * SocketPoller::kBatch);
    }
    // After three batches (more than n calls) each socket had its first turn, none a third.
    for (const auto& s : sockets) {
        CHECK(s->calls >= 1);
        CHECK(s->calls <= 2);
        CHECK(s->last == EPOLLIN);
    }
}

TEST_CASE("poller: other sources of the loop get their turn while thousands of sockets stay ready") {
    EventPtr loop = new_loop();
    SocketPoller poller(loop.get());
    REQUIRE(poller.start(0));
    auto sockets = ready_sockets(poller, 3000);
    // Another source at the same priority (as the control socket or a listener): a pipe made
    // readable now must be dispatched within a couple of loop turns, not after 3,000 of them.
    int pipe_fds[2];
    REQUIRE(::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) == 0);
    UniqueFd rd(pipe_fds[0]), wr(pipe_fds[1]);
    int pipe_calls = 0;
    sd_event_source* raw = nullptr;
    REQUIRE(sd_event_add_io(
                loop.get(), &raw, rd.get(), EPOLLIN,
                [](sd_event_source*, int fd, uint32_t, void* p) -> int {
                    char c;
                    (void)::read(fd, &c, 1);
                    ++*static_cast<int*>(p);
                    return 0;
                },
                &pipe_calls) >= 0);
    EventSourcePtr pipe_source(raw);
    REQUIRE(sd_event_run(loop.get(), 0) > 0);  // the poller's first batch
    REQUIRE(::write(wr.get(), "p", 1) == 1);
    for (int turn = 0; turn < 3 && pipe_calls == 0; ++turn) REQUIRE(sd_event_run(loop.get(), 0) > 0);
    CHECK(pipe_calls == 1);
    CHECK(total_calls(sockets) <= 3 * SocketPoller::kBatch);
}

TEST_CASE("poller: a socket with no events is out of the set, hung up or not") {
    EventPtr loop = new_loop();
    SocketPoller poller(loop.get());
    REQUIRE(poller.start(0));
    auto sockets = ready_sockets(poller, 1);
    ReadySocket& s = *sockets[0];
    s.peer.reset();  // hung up: EPOLLHUP would be reported whatever the mask
    REQUIRE(s.reg.set_events(0));
    CHECK(poller.armed() == 0);
    CHECK(sd_event_run(loop.get(), 0) == 0);
    CHECK(s.calls == 0);
    // Armed again, it reports what it has: data, end of file and the hang-up.
    REQUIRE(s.reg.set_events(EPOLLIN));
    CHECK(poller.armed() == 1);
    REQUIRE(sd_event_run(loop.get(), 0) > 0);
    CHECK(s.calls == 1);
    CHECK((s.last & EPOLLIN) != 0);
    CHECK((s.last & EPOLLHUP) != 0);
    // A mask without EPOLLOUT never reports EPOLLOUT.
    CHECK((s.last & EPOLLOUT) == 0);
}

TEST_CASE("poller: events fetched for a socket removed earlier in the same batch are dropped") {
    EventPtr loop = new_loop();
    SocketPoller poller(loop.get());
    REQUIRE(poller.start(0));
    auto sockets = ready_sockets(poller, 2);
    ReadySocket& a = *sockets[0];
    ReadySocket& b = *sockets[1];
    // Whichever runs first closes the other (as a channel that ends another's connection).
    // Its slot is taken at once by a new registration, which must not get the stale event.
    ReadySocket newcomer;
    auto pair = make_socketpair(true);
    REQUIRE(pair);
    newcomer.mine = std::move(pair->first);
    newcomer.peer = std::move(pair->second);
    auto close_and_reuse = [&](ReadySocket& other) {
        other.reg.reset();
        other.mine.reset();
        auto reg = poller.add(newcomer.mine.get(), &newcomer);
        REQUIRE(reg);
        newcomer.reg = std::move(*reg);
        REQUIRE(newcomer.reg.set_events(EPOLLIN | EPOLLOUT));  // writable: ready at once
    };
    a.on_call = [&] { close_and_reuse(b); };
    b.on_call = [&] { close_and_reuse(a); };
    REQUIRE(sd_event_run(loop.get(), 0) > 0);
    CHECK(a.calls + b.calls == 1);
    CHECK(newcomer.calls == 0);  // its turn is the next dispatch
    CHECK(poller.size() == 2);
    a.on_call = b.on_call = nullptr;
    REQUIRE(sd_event_run(loop.get(), 0) > 0);
    CHECK(newcomer.calls == 1);
    CHECK(newcomer.last == EPOLLOUT);
}

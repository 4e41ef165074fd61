// Mux (and TcpChannel) against a fake peer on a socketpair: the peer speaks sshuttle's frames
// through proto/, the way the remote side would, and the test steps the sd-event loop by hand.
#include "daemon/mux.hpp"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <vector>

#include <doctest/doctest.h>

#include "daemon/tcp_channel.hpp"
#include "proto/mux_decoder.hpp"

using namespace sshuttle;
using namespace sshuttle::daemon;
using proto::Command;

namespace {

struct Frame {
    std::uint16_t channel;
    Command command;
    std::string payload;
};

constexpr std::string_view kBootstrap = "BOOTSTRAP-BYTES\n";
constexpr std::string_view kOurAnswer = "sshuttle-ext1-ok credit connect-error";

// A channel that only records what it is given.
class RecordingChannel final : public Channel {
public:
    explicit RecordingChannel(std::vector<Frame>& log) : log_(log) {}
    void on_frame(Command command, proto::ByteView payload) override {
        log_.push_back({0, command, std::string(proto::as_chars(payload))});
    }

private:
    std::vector<Frame>& log_;
};

// A channel that holds the mux's input on its first frame, as a TcpChannel with a slow reader.
class HoldingChannel final : public Channel {
public:
    explicit HoldingChannel(Mux& mux) : mux_(mux) {}
    void on_frame(Command, proto::ByteView) override { mux_.hold_input(); }

private:
    Mux& mux_;
};

class Harness {
public:
    explicit Harness(MuxOptions options = {}) {
        sd_event* raw = nullptr;
        REQUIRE(sd_event_new(&raw) >= 0);
        event_.reset(raw);
        auto pair = make_socketpair(true);
        REQUIRE(pair);
        peer_ = std::move(pair->second);
        Mux::Callbacks cb;
        cb.on_ready = [this] { ++ready_calls; };
        cb.on_failure = [this](const Error& e) {
            failure = e;
            if (destroy_on_failure) mux.reset();
        };
        cb.on_routes = [this](std::string_view r) { routes = std::string(r); };
        mux = std::make_unique<Mux>(event_.get(), std::move(pair->first), options, std::move(cb));
        REQUIRE(mux->start(std::string(kBootstrap)));
    }
    ~Harness() { mux.reset(); }  // its event sources go before the loop

    sd_event* event() { return event_.get(); }

    // Runs the loop until it has nothing to do, and collects what the mux wrote.
    void pump(int rounds = 200) {
        for (int i = 0; i < rounds; ++i) {
            int r = sd_event_run(event_.get(), 0);
            REQUIRE(r >= 0);
            bool got = read_peer();
            if (r == 0 && !got) break;
        }
    }

    // Everything the mux wrote so far and nobody took yet (the bootstrap phase).
    std::string take_raw() {
        std::string s(raw_.begin(), raw_.end());
        raw_.clear();
        return s;
    }

    void write_raw(std::string_view bytes) {
        for (int i = 0; i < 10000 && !bytes.empty(); ++i) {
            ssize_t n = ::write(peer_.get(), bytes.data(), bytes.size());
            if (n > 0) {
                bytes.remove_prefix(static_cast<std::size_t>(n));
                continue;
            }
            REQUIRE(errno == EAGAIN);
            pump(1);
        }
        REQUIRE(bytes.empty());
    }

    void send(std::uint16_t channel, Command command, std::string_view payload = {}) {
        std::vector<std::uint8_t> out;
        REQUIRE(proto::append_frame(out, channel, command, proto::as_bytes(payload)));
        write_raw(proto::as_chars(proto::ByteView(out.data(), out.size())));
    }

    // Decodes what the mux wrote since the sync header into frames and returns them.
    std::vector<Frame> frames() {
        pump();
        return take_frames();
    }

    // One loop turn without reading what the mux wrote (a peer that is slow to read).
    int step() {
        int r = sd_event_run(event_.get(), 0);
        REQUIRE(r >= 0);
        return r;
    }

    // Takes at most max bytes of what the mux wrote (take_frames() decodes them).
    void read_peer_at_most(std::size_t max) {
        std::uint8_t buf[65536];
        while (max > 0) {
            ssize_t n = ::read(peer_.get(), buf, std::min(max, sizeof buf));
            if (n <= 0) return;
            raw_.insert(raw_.end(), buf, buf + n);
            max -= static_cast<std::size_t>(n);
        }
    }

    // The frames in what was read from the mux so far, without running the loop.
    std::vector<Frame> take_frames() {
        std::vector<Frame> out;
        std::size_t pos = 0;
        while (pos < raw_.size()) {
            std::size_t n = std::min(decoder_.space(), raw_.size() - pos);
            REQUIRE(decoder_.feed(proto::ByteView(raw_.data() + pos, n)));
            pos += n;
            drain_decoder(out);
        }
        raw_.clear();
        drain_decoder(out);
        return out;
    }

    // Start, sync header, and the extension answer of a stock peer (echo) or ours.
    void handshake(bool our_agent) {
        pump();
        REQUIRE(take_raw() == kBootstrap);
        write_raw(proto::kSyncHeader);
        auto f = frames();
        REQUIRE(f.size() == 2);
        CHECK(f[0].command == Command::Ping);
        CHECK(f[0].payload == "chicken");
        CHECK(f[1].command == Command::Ping);
        CHECK(f[1].payload == kExtensionOffer);
        send(0, Command::Pong, our_agent ? kOurAnswer : kExtensionOffer);
        pump();
        REQUIRE(mux);
        REQUIRE(mux->ready());
    }

    std::unique_ptr<Mux> mux;
    int ready_calls = 0;
    std::optional<Error> failure;
    std::string routes;
    bool destroy_on_failure = false;

private:
    bool read_peer() {
        bool got = false;
        std::uint8_t buf[65536];
        for (;;) {
            ssize_t n = ::read(peer_.get(), buf, sizeof buf);
            if (n <= 0) return got;
            raw_.insert(raw_.end(), buf, buf + n);
            got = true;
        }
    }
    void drain_decoder(std::vector<Frame>& out) {
        for (;;) {
            auto f = decoder_.next();
            REQUIRE(f);
            if (!*f) return;
            out.push_back({(*f)->channel, (*f)->command, std::string(proto::as_chars((*f)->payload))});
        }
    }

    EventPtr event_;
    UniqueFd peer_;
    std::vector<std::uint8_t> raw_;
    proto::FrameDecoder decoder_{1 << 20};
};

std::size_t data_bytes(const std::vector<Frame>& frames, std::uint16_t channel) {
    std::size_t n = 0;
    for (const Frame& f : frames)
        if (f.channel == channel && f.command == Command::TcpData) n += f.payload.size();
    return n;
}

bool has(const std::vector<Frame>& frames, std::uint16_t channel, Command command) {
    for (const Frame& f : frames)
        if (f.channel == channel && f.command == command) return true;
    return false;
}

// A TcpChannel on `id` whose application end is returned (the channel gets the other end).
UniqueFd open_tcp_channel(Harness& h, std::uint16_t id) {
    auto pair = make_socketpair(true);
    REQUIRE(pair);
    auto channel = std::make_unique<TcpChannel>(*h.mux, id, std::move(pair->first));
    REQUIRE(channel->start());
    h.mux->send(id, Command::TcpConnect, proto::as_bytes("2,10.0.0.1,80"));
    h.mux->attach(id, std::move(channel));
    return std::move(pair->second);
}

// Writes up to n bytes of pattern into fd (non-blocking); returns how many were taken.
std::size_t write_some(int fd, std::size_t n, char fill) {
    std::string chunk(std::min<std::size_t>(n, 65536), fill);
    std::size_t total = 0;
    while (total < n) {
        ssize_t w = ::send(fd, chunk.data(), std::min(chunk.size(), n - total), MSG_NOSIGNAL);
        if (w <= 0) break;
        total += static_cast<std::size_t>(w);
    }
    return total;
}

std::string read_all_available(int fd) {
    std::string s;
    char buf[65536];
    for (;;) {
        ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n <= 0) return s;
        s.append(buf, static_cast<std::size_t>(n));
    }
}

}  // namespace

TEST_CASE("mux writes only the bootstrap until the sync header, and skips a banner before it") {
    Harness h;
    h.pump();
    CHECK(h.take_raw() == kBootstrap);
    // A login banner and half of the header: still nothing but the bootstrap goes out.
    h.write_raw("Welcome to the server\n");
    h.write_raw(proto::kSyncHeader.substr(0, 7));
    h.pump();
    CHECK(h.take_raw().empty());
    CHECK_FALSE(h.mux->ready());
    // The rest of the header with the server's first frames behind it in the same write.
    std::vector<std::uint8_t> rest(proto::kSyncHeader.begin() + 7, proto::kSyncHeader.end());
    REQUIRE(proto::append_frame(rest, 0, Command::Ping, proto::as_bytes("chicken")));
    REQUIRE(proto::append_frame(rest, 0, Command::Routes, proto::as_bytes("2,10.0.0.0,8\n")));
    h.write_raw(proto::as_chars(proto::ByteView(rest.data(), rest.size())));
    auto f = h.frames();
    REQUIRE(f.size() == 3);
    CHECK(f[0].payload == "chicken");                  // our PING
    CHECK(f[1].payload == kExtensionOffer);            // the extension offer
    CHECK(f[2].command == Command::Pong);              // the answer to the server's PING
    CHECK(f[2].payload == "chicken");
    CHECK(h.routes == "2,10.0.0.0,8\n");
    CHECK_FALSE(h.failure);
}

TEST_CASE("a wrong sync header fails the session with the bytes quoted") {
    Harness h;
    h.pump();
    h.write_raw(std::string_view("\0\0SSHUTTLE0002", 14));
    h.pump();
    REQUIRE(h.failure);
    CHECK(h.failure->code == Errc::Protocol);
    CHECK(h.failure->message.find("SSHUTTLE0002") != std::string::npos);
}

TEST_CASE("every PING is answered with a PONG of the same payload") {
    Harness h;
    h.handshake(false);
    const std::string binary("a\0b\xff\n", 5);
    h.send(0, Command::Ping, binary);
    h.send(0, Command::Ping, "");
    h.send(0, Command::Ping, std::string(65535, 'x'));
    std::vector<Frame> f;
    // (The big PONG also fills the latency window: an rttest PING follows it, as upstream.)
    for (Frame& fr : h.frames())
        if (fr.command == Command::Pong) f.push_back(std::move(fr));
    REQUIRE(f.size() == 3);
    CHECK(f[0].payload == binary);
    CHECK(f[1].payload.empty());
    CHECK(f[2].payload == std::string(65535, 'x'));
    CHECK_FALSE(h.failure);
}

TEST_CASE("extension negotiation: a stock peer's echo means no extensions, ours turns them on") {
    SUBCASE("stock server echoes the offer") {
        Harness h;
        h.handshake(false);
        CHECK(h.ready_calls == 1);
        CHECK_FALSE(h.mux->credit_enabled());
        CHECK_FALSE(h.mux->connect_error_enabled());
    }
    SUBCASE("our agent accepts both") {
        Harness h;
        h.handshake(true);
        CHECK(h.ready_calls == 1);
        CHECK(h.mux->credit_enabled());
        CHECK(h.mux->connect_error_enabled());
    }
    SUBCASE("our agent accepting only connect-error") {
        Harness h;
        h.pump();
        h.take_raw();
        h.write_raw(proto::kSyncHeader);
        h.frames();
        h.send(0, Command::Pong, "sshuttle-ext1-ok connect-error");
        h.pump();
        REQUIRE(h.mux->ready());
        CHECK_FALSE(h.mux->credit_enabled());
        CHECK(h.mux->connect_error_enabled());
    }
    SUBCASE("no TCP data may flow before the answer; a later PONG does not renegotiate") {
        Harness h;
        h.pump();
        h.take_raw();
        h.write_raw(proto::kSyncHeader);
        h.frames();
        CHECK_FALSE(h.mux->ready());
        CHECK(h.mux->may_send_data(1) == 0);
        h.send(0, Command::Pong, "chicken");  // the answer to PING chicken settles nothing
        h.pump();
        CHECK_FALSE(h.mux->ready());
        h.send(0, Command::Pong, kExtensionOffer);
        h.send(0, Command::Pong, kOurAnswer);  // too late: negotiation is over
        h.pump();
        CHECK(h.ready_calls == 1);
        CHECK_FALSE(h.mux->credit_enabled());
        CHECK(h.mux->may_send_data(1) > 0);
    }
}

TEST_CASE("a TCP channel sends TCP_CONNECT, then its data, then TCP_EOF, and half-closes") {
    for (bool ours : {false, true}) {
        CAPTURE(ours);
        Harness h;
        h.handshake(ours);
        std::uint16_t id = h.mux->allocate_channel();
        REQUIRE(id == 1);
        UniqueFd app = open_tcp_channel(h, id);
        REQUIRE(::send(app.get(), "hello", 5, MSG_NOSIGNAL) == 5);
        REQUIRE(::shutdown(app.get(), SHUT_WR) == 0);
        auto f = h.frames();
        REQUIRE(f.size() == 3);
        CHECK(f[0].channel == id);
        CHECK(f[0].command == Command::TcpConnect);
        CHECK(f[0].payload == "2,10.0.0.1,80");
        CHECK(f[1].command == Command::TcpData);
        CHECK(f[1].payload == "hello");
        CHECK(f[2].command == Command::TcpEof);
        CHECK(h.mux->channel_count() == 1);  // the other direction is still open
        // The reply, then the peer's EOF: the application reads it all, then end of file.
        h.send(id, Command::TcpData, "world");
        h.send(id, Command::TcpEof);
        h.pump();
        CHECK(read_all_available(app.get()) == "world");
        char c;
        CHECK(::recv(app.get(), &c, 1, MSG_DONTWAIT) == 0);
        CHECK(h.mux->channel_count() == 0);  // both directions done: the id is free again
        CHECK(h.mux->allocate_channel() == 2);  // and ids still go round, not back to 1
        CHECK_FALSE(h.failure);
    }
}

TEST_CASE("TCP_STOP_SENDING stops reading; a vanished application gets TCP_STOP_SENDING sent") {
    Harness h;
    h.handshake(false);
    UniqueFd app = open_tcp_channel(h, h.mux->allocate_channel());
    h.frames();
    h.send(1, Command::TcpStopSending);
    h.pump();
    (void)::send(app.get(), "late", 4, MSG_NOSIGNAL);  // EPIPE or buffered: never forwarded
    auto f = h.frames();
    CHECK_FALSE(has(f, 1, Command::TcpData));
    app.reset();  // the application closes: writing to it fails
    h.send(1, Command::TcpData, "for nobody");
    f = h.frames();
    CHECK(has(f, 1, Command::TcpStopSending));
    CHECK(h.mux->channel_count() == 0);
    CHECK_FALSE(h.failure);
}

TEST_CASE("protocol errors fail the session, not the process; stray data is ignored") {
    SUBCASE("bad magic") {
        Harness h;
        h.handshake(false);
        h.write_raw("XX\0\0\x42\x01\0\0");
        h.pump();
        REQUIRE(h.failure);
        CHECK(h.failure->code == Errc::Protocol);
        CHECK(h.failure->message.find("magic") != std::string::npos);
    }
    SUBCASE("unknown command") {
        Harness h;
        h.handshake(false);
        h.write_raw(std::string_view("SS\0\x05\x43\0\0\0", 8));
        h.pump();
        REQUIRE(h.failure);
        CHECK(h.failure->code == Errc::Protocol);
        CHECK(h.failure->message.find("unknown mux command") != std::string::npos);
    }
    SUBCASE("data for an unknown channel is ignored and the session goes on") {
        Harness h;
        h.handshake(false);
        h.send(77, Command::TcpData, "who?");
        h.send(77, Command::TcpEof);
        h.send(0, Command::Ping, "still there");
        auto f = h.frames();
        REQUIRE(f.size() == 1);
        CHECK(f[0].payload == "still there");
        CHECK_FALSE(h.failure);
    }
    SUBCASE("a control command on a data channel (check_channel), live channel or not") {
        for (std::uint16_t ch : {1, 9}) {
            CAPTURE(ch);
            Harness h;
            h.handshake(false);
            std::vector<Frame> log;
            h.mux->attach(h.mux->allocate_channel(), std::make_unique<RecordingChannel>(log));
            h.send(ch, Command::Ping, "x");
            h.pump();
            REQUIRE(h.failure);
            CHECK(h.failure->code == Errc::Protocol);
            CHECK(h.failure->message.find("belongs on the control channel") != std::string::npos);
            CHECK(log.empty());
        }
    }
    SUBCASE("a data command on the control channel (check_channel)") {
        Harness h;
        h.handshake(false);
        h.send(0, Command::TcpEof);
        h.pump();
        REQUIRE(h.failure);
        CHECK(h.failure->code == Errc::Protocol);
        CHECK(h.failure->message.find("TCP_EOF on the control channel") != std::string::npos);
    }
    SUBCASE("the server opening a channel") {
        Harness h;
        h.handshake(false);
        h.send(5, Command::TcpConnect, "2,10.0.0.1,22");
        h.pump();
        REQUIRE(h.failure);
        CHECK(h.failure->code == Errc::Protocol);
        CHECK(h.failure->message.find("only the client opens channels") != std::string::npos);
    }
    SUBCASE("WINDOW from a stock peer") {
        Harness h;
        h.handshake(false);
        std::vector<Frame> log;
        h.mux->attach(h.mux->allocate_channel(), std::make_unique<RecordingChannel>(log));
        h.send(1, Command::Window, std::string("\0\0\1\0", 4));
        h.pump();
        REQUIRE(h.failure);
        CHECK(h.failure->code == Errc::Protocol);
    }
    SUBCASE("a failure found in the deferred pass may destroy the mux in its callback") {
        Harness h;
        h.handshake(false);
        h.destroy_on_failure = true;
        h.mux->attach(h.mux->allocate_channel(), std::make_unique<HoldingChannel>(*h.mux));
        // One write: the channel's frame holds the input, the bad bytes wait in the decoder.
        std::vector<std::uint8_t> bytes;
        REQUIRE(proto::append_frame(bytes, 1, Command::TcpData, proto::as_bytes("hold")));
        for (char c : std::string_view("XX\0\0\x42\x01\0\0", 8)) bytes.push_back(static_cast<std::uint8_t>(c));
        h.write_raw(proto::as_chars(proto::ByteView(bytes.data(), bytes.size())));
        h.pump();
        CHECK_FALSE(h.failure);  // held: the bad frame is not parsed yet
        h.mux->release_input();  // the deferred pass parses, fails, and the owner drops the mux
        h.pump();
        REQUIRE(h.failure);
        CHECK_FALSE(h.mux);
    }
}

TEST_CASE("credit: at most the window is sent until WINDOW returns it") {
    Harness h;
    h.handshake(true);
    UniqueFd app = open_tcp_channel(h, h.mux->allocate_channel());
    const std::size_t total = Mux::kInitialCredit + Mux::kInitialCredit / 2;
    std::size_t written = 0;
    std::size_t received = 0;
    // Until nothing moves any more: the socket buffer fills up behind the spent window.
    for (int round = 0, idle = 0; round < 2000 && idle < 5; ++round) {
        std::size_t w = write_some(app.get(), total - written, 'd');
        std::size_t r = data_bytes(h.frames(), 1);
        written += w;
        received += r;
        idle = (w == 0 && r == 0) ? idle + 1 : 0;
    }
    CHECK(written < total);
    CHECK(received == Mux::kInitialCredit);
    // Returning half the window lets exactly that much more through.
    std::uint32_t inc = Mux::kInitialCredit / 2;
    const char be[4] = {static_cast<char>(inc >> 24), static_cast<char>(inc >> 16),
                        static_cast<char>(inc >> 8), static_cast<char>(inc)};
    h.send(1, Command::Window, std::string_view(be, 4));
    for (int round = 0; round < 2000 && (written < total || received < total); ++round) {
        written += write_some(app.get(), total - written, 'd');
        received += data_bytes(h.frames(), 1);
    }
    CHECK(written == total);
    CHECK(received == total);
    CHECK_FALSE(h.failure);
}

TEST_CASE("credit: received data is acknowledged with WINDOW once half the window is written") {
    Harness h;
    h.handshake(true);
    UniqueFd app = open_tcp_channel(h, h.mux->allocate_channel());
    h.frames();
    const std::string chunk(60000, 'p');
    std::size_t sent = 0;
    std::size_t read = 0;
    std::uint64_t returned = 0;
    while (sent < Mux::kInitialCredit - chunk.size()) {
        h.send(1, Command::TcpData, chunk);
        sent += chunk.size();
        h.pump();
        read += read_all_available(app.get()).size();
        for (const Frame& f : h.frames()) {
            if (f.command != Command::Window) continue;
            REQUIRE(f.payload.size() == 4);
            auto p = reinterpret_cast<const unsigned char*>(f.payload.data());
            returned += (std::uint64_t{p[0]} << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
        }
    }
    h.pump();
    read += read_all_available(app.get()).size();
    CHECK(read == sent);
    CHECK(returned >= Mux::kInitialCredit / 2);  // batched: at least one WINDOW by now
    CHECK(returned <= read);                     // never credit for bytes not yet written out
    CHECK_FALSE(h.failure);
}

TEST_CASE("credit: a peer overrunning its window loses its channel, not the session") {
    Harness h;
    h.handshake(true);
    UniqueFd app = open_tcp_channel(h, h.mux->allocate_channel());
    h.frames();
    // The application does not read: nothing is acknowledged, the window runs out.
    const std::string chunk(65535, 'o');
    for (std::size_t sent = 0; sent <= Mux::kInitialCredit; sent += chunk.size())
        h.send(1, Command::TcpData, chunk);
    auto f = h.frames();
    CHECK(has(f, 1, Command::TcpEof));
    CHECK(has(f, 1, Command::TcpStopSending));
    CHECK(h.mux->channel_count() == 0);
    h.send(0, Command::Ping, "ok");
    f = h.frames();
    CHECK(has(f, 0, Command::Pong));
    CHECK_FALSE(h.failure);
}

TEST_CASE("channels parked on a full output are not watched; a drain wakes only what fits") {
    // Many connections that sent their data and half-closed (CLOSE-WAIT: readable for good),
    // behind a peer that reads slowly. Parked channels must not stay armed in the poller, and a
    // drain must wake the parked ones oldest first only while the output has room, not all of
    // them at once (issue 10: waking all re-armed thousands of sockets that could not send).
    Harness h;
    h.handshake(true);
    constexpr int kChannels = 60;
    constexpr std::size_t kEach = 60000;  // taken in one recv (below kMaxPayload)
    std::vector<UniqueFd> apps;
    std::vector<std::uint16_t> ids;
    for (int i = 0; i < kChannels; ++i) {
        ids.push_back(h.mux->allocate_channel());
        apps.push_back(open_tcp_channel(h, ids.back()));
        REQUIRE(write_some(apps.back().get(), kEach, static_cast<char>('A' + i % 26)) == kEach);
        REQUIRE(::shutdown(apps.back().get(), SHUT_WR) == 0);
    }
    for (int t = 0; t < 1000 && h.step() > 0; ++t) {
    }
    CHECK(h.mux->waiting_count() > kChannels / 2);
    CHECK(h.mux->poller().armed() == 0);

    const std::size_t room = Mux::kOutputHighWater / kEach + 2;
    std::size_t max_armed = 0;
    std::vector<std::size_t> got(kChannels, 0);
    int eofs = 0;
    bool exact = true;
    for (int round = 0; round < 2000 && eofs < kChannels; ++round) {
        h.read_peer_at_most(128 * 1024);
        for (int t = 0; t < 50 && h.step() > 0; ++t)
            max_armed = std::max(max_armed, h.mux->poller().armed());
        for (const Frame& f : h.take_frames()) {
            if (f.channel == 0 || f.channel > kChannels) continue;
            const std::size_t i = f.channel - ids.front();
            if (f.command == Command::TcpData) {
                exact &= f.payload == std::string(f.payload.size(), static_cast<char>('A' + i % 26));
                got[i] += f.payload.size();
            } else if (f.command == Command::TcpEof) {
                exact &= got[i] == kEach;  // the end of file after all of the data
                ++eofs;
            }
        }
    }
    CHECK(eofs == kChannels);
    CHECK(exact);
    CHECK(got == std::vector<std::size_t>(kChannels, kEach));
    CHECK(max_armed <= room);
    CHECK(h.mux->waiting_count() == 0);
    CHECK_FALSE(h.failure);
}

TEST_CASE("latency control with a stock peer: no TCP_DATA between PING rttest and its PONG") {
    Harness h;
    h.handshake(false);
    UniqueFd app = open_tcp_channel(h, h.mux->allocate_channel());
    h.frames();
    REQUIRE(write_some(app.get(), 100000, 'l') > 40000);
    auto f = h.frames();
    std::size_t before = 0;
    bool rttest = false;
    for (const Frame& fr : f) {
        if (fr.command == Command::Ping && fr.payload == "rttest") {
            CHECK_FALSE(rttest);  // only one until the PONG
            rttest = true;
        } else if (fr.command == Command::TcpData) {
            CHECK_FALSE(rttest);  // nothing after the PING
            before += fr.payload.size();
        }
    }
    REQUIRE(rttest);
    CHECK(before > 32768);
    // Control frames are not throttled while waiting.
    h.send(0, Command::Ping, "p");
    f = h.frames();
    REQUIRE(f.size() == 1);
    CHECK(f[0].command == Command::Pong);
    // The PONG opens the window again.
    h.send(0, Command::Pong, "rttest");
    f = h.frames();
    CHECK(data_bytes(f, 1) > 0);
    CHECK_FALSE(h.failure);
}

TEST_CASE("CONNECT_ERROR resets the application's connection instead of a clean end of file") {
    // A real TCP connection on loopback: only TCP can show a reset.
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener);
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    socklen_t len = sizeof sa;
    REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&sa), &len) == 0);
    REQUIRE(::listen(listener.get(), 1) == 0);
    UniqueFd app(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(::connect(app.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
    UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    REQUIRE(accepted);

    Harness h;
    h.handshake(true);
    std::uint16_t id = h.mux->allocate_channel();
    auto channel = std::make_unique<TcpChannel>(*h.mux, id, std::move(accepted));
    REQUIRE(channel->start());
    h.mux->attach(id, std::move(channel));
    // What our agent sends when the remote connect is refused.
    h.send(id, Command::ConnectError, "111,Connection refused");
    h.send(id, Command::TcpEof);
    h.send(id, Command::TcpStopSending);
    h.pump();
    CHECK(h.mux->channel_count() == 0);
    char c;
    errno = 0;
    ssize_t n = ::recv(app.get(), &c, 1, 0);
    CHECK(n == -1);
    CHECK(errno == ECONNRESET);
    CHECK_FALSE(h.failure);
}

#include "proto/mux_decoder.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "proto/testing.hpp"

using namespace sshuttle;
using namespace sshuttle::proto;
using namespace sshuttle::proto::testing;
using namespace std::string_literals;

namespace {

struct Frame {
    std::uint16_t channel;
    Command command;
    std::string payload;
    friend bool operator==(const Frame&, const Frame&) = default;
};

// A reproducible mix of frames: every command, channels 0..65535, payload sizes from 0 up to
// max_size (and exactly max_size once).
std::vector<Frame> make_frames(int count, std::size_t max_size, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<Frame> frames;
    for (int i = 0; i < count; ++i) {
        Frame f;
        f.channel = static_cast<std::uint16_t>(rng());
        f.command = static_cast<Command>(kFirstUpstreamCommand + rng() % kUpstreamCommandCount);
        const std::size_t size = i == 0 ? max_size : rng() % (max_size + 1);
        for (std::size_t k = 0; k < size; ++k) f.payload += static_cast<char>(rng());
        frames.push_back(std::move(f));
    }
    return frames;
}

std::vector<std::uint8_t> encode(const std::vector<Frame>& frames) {
    std::vector<std::uint8_t> out;
    for (const Frame& f : frames)
        REQUIRE(append_frame(out, f.channel, f.command, as_bytes(f.payload)));
    return out;
}

// Drains every complete frame; fails the test on a decoder error.
void drain(FrameDecoder& decoder, std::vector<Frame>& got) {
    for (;;) {
        auto next = decoder.next();
        REQUIRE(next);
        if (!next->has_value()) return;
        got.push_back(Frame{(*next)->channel, (*next)->command, string_of((*next)->payload)});
    }
}

// Feeds the stream in chunks of the given sizes (the last chunk takes the rest).
std::vector<Frame> decode_in_chunks(const std::vector<std::uint8_t>& stream,
                                    const std::vector<std::size_t>& cuts) {
    FrameDecoder decoder;
    std::vector<Frame> got;
    std::size_t at = 0;
    for (std::size_t cut : cuts) {
        REQUIRE(decoder.feed(ByteView(stream).subspan(at, cut - at)));
        drain(decoder, got);
        at = cut;
    }
    REQUIRE(decoder.feed(ByteView(stream).subspan(at)));
    drain(decoder, got);
    CHECK(decoder.buffered() == 0);
    return got;
}

Error decode_error(std::string_view stream, FrameDecoder decoder = FrameDecoder()) {
    REQUIRE(decoder.feed(as_bytes(stream)));
    for (;;) {
        auto next = decoder.next();
        if (!next) return next.error();
        REQUIRE(next->has_value());
    }
}

}  // namespace

TEST_CASE("a stream split at every byte boundary decodes like the whole stream") {
    const auto frames = make_frames(40, 90, 1);
    const auto stream = encode(frames);
    REQUIRE(decode_in_chunks(stream, {}) == frames);
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        CAPTURE(cut);
        REQUIRE(decode_in_chunks(stream, {cut}) == frames);
    }
}

TEST_CASE("a stream fed byte by byte decodes like the whole stream") {
    const auto frames = make_frames(30, 300, 2);
    const auto stream = encode(frames);
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < stream.size(); ++i) cuts.push_back(i);
    CHECK(decode_in_chunks(stream, cuts) == frames);
}

TEST_CASE("full-size frames in random chunks decode intact across buffer compactions") {
    const auto frames = make_frames(20, kMaxPayload, 3);
    const auto stream = encode(frames);
    std::mt19937 rng(4);
    std::vector<std::size_t> cuts;
    for (std::size_t at = 0;;) {
        at += 1 + rng() % 70000;
        if (at >= stream.size()) break;
        cuts.push_back(at);
    }
    CHECK(decode_in_chunks(stream, cuts) == frames);
}

TEST_CASE("prepare and commit read straight into the buffer and decode the same frames") {
    const auto frames = make_frames(60, 20000, 5);
    const auto stream = encode(frames);
    FrameDecoder decoder;
    std::vector<Frame> got;
    std::mt19937 rng(6);
    std::size_t at = 0;
    while (at < stream.size()) {
        auto area = decoder.prepare();
        REQUIRE(area.size() >= std::min(decoder.space(), kMaxFrameSize));
        // A short "read", as from a socket.
        const std::size_t n = std::min(
            {area.size(), stream.size() - at, static_cast<std::size_t>(1 + rng() % 50000)});
        std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(at), n, area.begin());
        decoder.commit(n);
        at += n;
        drain(decoder, got);
    }
    CHECK(got == frames);
}

TEST_CASE("a truncated header waits for more bytes without error or frame") {
    std::vector<std::uint8_t> stream;
    REQUIRE(append_frame(stream, 1, Command::TcpEof, {}));
    FrameDecoder decoder;
    for (std::size_t i = 0; i + 1 < kHeaderSize; ++i) {
        REQUIRE(decoder.feed(ByteView(stream).subspan(i, 1)));
        auto next = decoder.next();
        REQUIRE(next);
        CHECK_FALSE(next->has_value());
    }
    REQUIRE(decoder.feed(ByteView(stream).subspan(kHeaderSize - 1)));
    auto next = decoder.next();
    REQUIRE(next);
    REQUIRE(next->has_value());
    CHECK((*next)->command == Command::TcpEof);
    CHECK((*next)->payload.empty());
}

TEST_CASE("a truncated payload waits for more bytes") {
    FrameDecoder decoder;
    REQUIRE(decoder.feed(as_bytes("SS\x00\x01\x42\x06\x00\x05hel"s)));
    auto partial = decoder.next();
    REQUIRE(partial);
    CHECK_FALSE(partial->has_value());
    REQUIRE(decoder.feed(as_bytes("lo")));
    auto whole = decoder.next();
    REQUIRE(whole);
    REQUIRE(whole->has_value());
    CHECK(string_of((*whole)->payload) == "hello");
}

TEST_CASE("bad magic fails the decoder with the bytes it got") {
    const Error e = decode_error("\0A\x00\x01\x42\x06\x00\x00"s);
    CHECK(e.code == Errc::Protocol);
    CHECK(e.message == "bad mux frame magic: expected 'SS', got '\\x00A'");
}

TEST_CASE("bad magic is reported once its two bytes are in, after the good frames") {
    FrameDecoder decoder;
    REQUIRE(decoder.feed(as_bytes("SS\x00\x01\x42\x01\x00\x00X"s)));
    auto ping = decoder.next();
    REQUIRE(ping);
    REQUIRE(ping->has_value());
    CHECK((*ping)->command == Command::Ping);
    auto wait = decoder.next();
    REQUIRE(wait);
    CHECK_FALSE(wait->has_value());
    REQUIRE(decoder.feed(as_bytes("S")));
    auto bad = decoder.next();
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message == "bad mux frame magic: expected 'SS', got 'XS'");
}

TEST_CASE("an unknown command is a named error with its channel") {
    const Error e = decode_error("SS\x00\x05\x43\x00\x00\x00"s);
    CHECK(e.code == Errc::Protocol);
    CHECK(e.message == "unknown mux command 0x4300 on channel 5");
}

TEST_CASE("a payload over the decoder's limit is TooLarge as soon as the header arrives") {
    FrameDecoder decoder(FrameDecoder::kDefaultBufferLimit, 1000);
    REQUIRE(decoder.feed(as_bytes("SS\x00\x02\x42\x06\x03\xe8"s)));  // 1000: allowed
    REQUIRE(decoder.feed(std::vector<std::uint8_t>(1000, 'a')));
    auto ok_frame = decoder.next();
    REQUIRE(ok_frame);
    REQUIRE(ok_frame->has_value());
    CHECK((*ok_frame)->payload.size() == 1000);

    REQUIRE(decoder.feed(as_bytes("SS\x00\x02\x42\x06\x03\xe9"s)));  // 1001, no payload yet
    auto e = decoder.next();
    REQUIRE_FALSE(e);
    CHECK(e.error().code == Errc::TooLarge);
    CHECK(e.error().message ==
          "TCP_DATA frame on channel 2 announces 1001 payload bytes, more than the limit of 1000");
}

TEST_CASE("after an error the decoder stays failed") {
    FrameDecoder decoder;
    REQUIRE(decoder.feed(as_bytes("XX")));
    auto first = decoder.next();
    REQUIRE_FALSE(first);
    CHECK(decoder.failed());
    auto again = decoder.next();
    REQUIRE_FALSE(again);
    CHECK(again.error().message == first.error().message);
    auto feed = decoder.feed(as_bytes("SS\x00\x01\x42\x01\x00\x00"s));
    REQUIRE_FALSE(feed);
    CHECK(feed.error().message == first.error().message);
}

TEST_CASE("feeding beyond the buffer cap is TooLarge and buffered frames stay readable") {
    // The smallest buffer: one header plus a 100-byte payload.
    FrameDecoder decoder(0, 100);
    CHECK(decoder.buffer_limit() == kHeaderSize + 100);
    std::vector<std::uint8_t> stream;
    REQUIRE(append_frame(stream, 1, Command::TcpData, std::vector<std::uint8_t>(50, 'a')));
    REQUIRE(append_frame(stream, 2, Command::TcpData, std::vector<std::uint8_t>(20, 'b')));
    REQUIRE(decoder.feed(stream));  // 86 of 108 bytes
    CHECK(decoder.space() == 22);

    auto over = decoder.feed(std::vector<std::uint8_t>(23, 'S'));
    REQUIRE_FALSE(over);
    CHECK(over.error().code == Errc::TooLarge);
    CHECK(over.error().message ==
          "mux input of 23 bytes does not fit the decoder buffer (22 of 108 bytes free)");
    CHECK_FALSE(decoder.failed());

    std::vector<Frame> got;
    drain(decoder, got);
    REQUIRE(got.size() == 2);
    CHECK(got[0].payload == std::string(50, 'a'));
    CHECK(got[1].payload == std::string(20, 'b'));
    CHECK(decoder.space() == 108);
    std::vector<std::uint8_t> big;
    REQUIRE(append_frame(big, 3, Command::TcpData, std::vector<std::uint8_t>(100, 'c')));
    REQUIRE(decoder.feed(big));
    drain(decoder, got);
    CHECK(got.size() == 3);
}

TEST_CASE("decoding allocates nothing per frame") {
    const auto frames = make_frames(500, 3000, 7);
    const auto stream = encode(frames);
    FrameDecoder decoder;
    std::size_t total = 0;
    std::size_t count = 0;
    const long before = testing::allocation_count();
    for (std::size_t at = 0; at < stream.size();) {
        const std::size_t n = std::min<std::size_t>(4096, stream.size() - at);
        if (!decoder.feed(ByteView(stream).subspan(at, n))) break;
        at += n;
        for (;;) {
            auto next = decoder.next();
            if (!next || !next->has_value()) break;
            total += (*next)->payload.size();
            ++count;
        }
    }
    const long allocations = testing::allocation_count() - before;
    CHECK(allocations == 0);
    CHECK(count == frames.size());
    CHECK(total > 0);
}

TEST_CASE("encoding into a reserved buffer allocates nothing per frame") {
    std::vector<std::uint8_t> out;
    out.reserve(1 << 20);
    const std::vector<std::uint8_t> payload(2048, 'p');
    const long before = testing::allocation_count();
    bool all_ok = true;
    for (int i = 0; i < 400; ++i) {
        all_ok = all_ok && append_frame(out, 1, Command::TcpData, payload).has_value();
        const std::size_t at = begin_frame(out, 2, Command::TcpData);
        out.resize(out.size() + 100);
        all_ok = all_ok && end_frame(out, at).has_value();
    }
    const long allocations = testing::allocation_count() - before;
    CHECK(all_ok);
    CHECK(allocations == 0);
}

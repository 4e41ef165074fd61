#include "proto/control_decoder.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace sshuttle;
using namespace sshuttle::proto;
using namespace std::string_literals;

namespace {

// Feeds the stream split at the given offsets and collects every message.
std::vector<std::string> messages_of(const std::string& stream, std::vector<std::size_t> cuts,
                                     ControlDecoder decoder = ControlDecoder()) {
    cuts.push_back(stream.size());
    std::vector<std::string> got;
    std::size_t at = 0;
    for (std::size_t cut : cuts) {
        REQUIRE(decoder.feed(std::string_view(stream).substr(at, cut - at)));
        at = cut;
        for (;;) {
            auto next = decoder.next();
            REQUIRE(next);
            if (!next->has_value()) break;
            got.emplace_back(**next);
        }
    }
    return got;
}

const std::string kTwo =
    "{\"method\":\"io.sshuttle.Daemon.Status\"}\0{\"method\":\"io.sshuttle.Daemon.Stop\"}\0"s;
const std::vector<std::string> kTwoMessages = {"{\"method\":\"io.sshuttle.Daemon.Status\"}",
                                               "{\"method\":\"io.sshuttle.Daemon.Stop\"}"};

}  // namespace

TEST_CASE("two messages in one feed come out one by one") {
    CHECK(messages_of(kTwo, {}) == kTwoMessages);
}

TEST_CASE("messages split at every byte boundary come out whole") {
    for (std::size_t cut = 0; cut <= kTwo.size(); ++cut) {
        CAPTURE(cut);
        CHECK(messages_of(kTwo, {cut}) == kTwoMessages);
    }
    std::vector<std::size_t> every;
    for (std::size_t i = 1; i < kTwo.size(); ++i) every.push_back(i);
    CHECK(messages_of(kTwo, every) == kTwoMessages);
}

TEST_CASE("a message without its NUL waits") {
    ControlDecoder decoder;
    REQUIRE(decoder.feed("{\"method\":"));
    auto next = decoder.next();
    REQUIRE(next);
    CHECK_FALSE(next->has_value());
    CHECK(decoder.buffered() == 10);
}

TEST_CASE("more than the limit without a NUL is TooLarge at once and final") {
    ControlDecoder decoder(16);
    REQUIRE(decoder.feed(std::string(16, 'x')));
    auto over = decoder.feed("y");
    REQUIRE_FALSE(over);
    CHECK(over.error().code == Errc::TooLarge);
    CHECK(over.error().message == "control message longer than 16 bytes without a terminating NUL");
    CHECK(decoder.failed());
    auto next = decoder.next();
    REQUIRE_FALSE(next);
    CHECK(next.error().code == Errc::TooLarge);
}

TEST_CASE("a complete message longer than the limit is TooLarge") {
    ControlDecoder decoder(16);
    REQUIRE(decoder.feed(std::string(17, 'x') + "\0"s));
    auto next = decoder.next();
    REQUIRE_FALSE(next);
    CHECK(next.error().message == "control message of 17 bytes is longer than the limit of 16");
}

TEST_CASE("a message exactly at the limit is accepted") {
    CHECK(messages_of(std::string(16, 'x') + "\0"s, {}, ControlDecoder(16)) ==
          std::vector<std::string>{std::string(16, 'x')});
}

TEST_CASE("an empty message is returned as such, for the parser to reject") {
    CHECK(messages_of("\0"s, {}) == std::vector<std::string>{""});
}

TEST_CASE("a long stream of small messages does not grow the buffer") {
    ControlDecoder decoder;
    const std::string message = "{\"method\":\"a.b\"}\0"s;
    for (int i = 0; i < 10000; ++i) {
        REQUIRE(decoder.feed(message));
        auto next = decoder.next();
        REQUIRE(next);
        REQUIRE(next->has_value());
    }
    CHECK(decoder.buffered() == 0);
}

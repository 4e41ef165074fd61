#include "proto/sync_scanner.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proto/mux_decoder.hpp"
#include "proto/mux_frame.hpp"
#include "proto/testing.hpp"

using namespace sshuttle;
using namespace sshuttle::proto;
using namespace sshuttle::proto::testing;
using namespace std::string_literals;

namespace {

// What a server's stdout looks like: optional login noise, the sync header, then the first
// frames (upstream's startup: PING "chicken" and an empty ROUTES, §2.6).
std::string server_output(const std::string& noise) {
    std::vector<std::uint8_t> frames;
    REQUIRE(append_frame(frames, 0, Command::Ping, as_bytes("chicken")));
    REQUIRE(append_frame(frames, 0, Command::Routes, as_bytes("2,192.0.2.0,24\n")));
    return noise + std::string(kSyncHeader) + string_of(frames);
}

struct Outcome {
    bool done = false;
    std::size_t garbage = 0;
    std::vector<std::string> frames;  // "PING chicken", ...
};

// Feeds the output in two pieces split at cut; what follows the header goes to a decoder.
Outcome run(const std::string& output, std::size_t cut) {
    SyncScanner scanner;
    FrameDecoder decoder;
    Outcome outcome;
    for (ByteView piece : {as_bytes(output).first(cut), as_bytes(output).subspan(cut)}) {
        if (!scanner.done()) {
            auto progress = scanner.feed(piece);
            REQUIRE(progress);
            if (!progress->done) {
                CHECK(progress->consumed == piece.size());
                continue;
            }
            piece = piece.subspan(progress->consumed);
        }
        REQUIRE(decoder.feed(piece));
        for (;;) {
            auto next = decoder.next();
            REQUIRE(next);
            if (!next->has_value()) break;
            outcome.frames.push_back(std::string(command_name((*next)->command)) + " " +
                                     string_of((*next)->payload));
        }
    }
    outcome.done = scanner.done();
    outcome.garbage = scanner.garbage();
    return outcome;
}

const std::vector<std::string> kStartupFrames = {"PING chicken", "ROUTES 2,192.0.2.0,24\n"};

Error scan_error(const std::string& output, SyncScanner scanner = SyncScanner()) {
    auto progress = scanner.feed(as_bytes(output));
    REQUIRE_FALSE(progress);
    return progress.error();
}

}  // namespace

TEST_CASE("the bare sync header is consumed exactly and the frames after it are handed back") {
    const std::string output = server_output("");
    SyncScanner scanner;
    auto progress = scanner.feed(as_bytes(output));
    REQUIRE(progress);
    CHECK(progress->done);
    CHECK(progress->consumed == kSyncHeader.size());
    CHECK(run(output, output.size()).frames == kStartupFrames);
}

TEST_CASE("NUL-free output before the header is skipped, as sshuttle's client does") {
    const std::string banner = "Welcome to lab-server!\nLast login: Mon from 10.0.0.1\r\n";
    const Outcome outcome = run(server_output(banner), 0);
    CHECK(outcome.done);
    CHECK(outcome.garbage == banner.size());
    CHECK(outcome.frames == kStartupFrames);
}

TEST_CASE("output between the two NULs is skipped too (upstream reads to the second NUL)") {
    const std::string output = "motd\0between\0SSHUTTLE0001"s;
    SyncScanner scanner;
    auto progress = scanner.feed(as_bytes(output));
    REQUIRE(progress);
    CHECK(progress->done);
    CHECK(progress->consumed == output.size());
    CHECK(scanner.garbage() == 4 + 7);
}

TEST_CASE("the header split at every byte, with noise before it, gives the same frames") {
    const std::string output = server_output("rc: hello\n");
    for (std::size_t cut = 0; cut <= output.size(); ++cut) {
        CAPTURE(cut);
        const Outcome outcome = run(output, cut);
        CHECK(outcome.done);
        CHECK(outcome.frames == kStartupFrames);
    }
}

TEST_CASE("the header fed byte by byte is found at the right byte") {
    const std::string output = server_output("x");
    SyncScanner scanner;
    std::size_t at = 0;
    for (; at < output.size(); ++at) {
        auto progress = scanner.feed(as_bytes(output).subspan(at, 1));
        REQUIRE(progress);
        if (progress->done) {
            CHECK(progress->consumed == 1);
            break;
        }
    }
    CHECK(at == 1 + kSyncHeader.size() - 1);
    auto after = scanner.feed(as_bytes("more"));
    REQUIRE(after);
    CHECK(after->done);
    CHECK(after->consumed == 0);
}

TEST_CASE("a wrong header is a Protocol error quoting the escaped bytes") {
    const Error e = scan_error("\0\0SSHUTTLE0002"s);
    CHECK(e.code == Errc::Protocol);
    CHECK(e.message ==
          "expected server init string '\\x00\\x00SSHUTTLE0001', got '\\x00\\x00SSHUTTLE0002'");
}

TEST_CASE("a wrong header after noise names both what followed the NULs and the noise") {
    const Error e = scan_error("bash: python3: command not found\n\0\0Traceback (m"s);
    CHECK(e.code == Errc::Protocol);
    CHECK(e.message ==
          "expected server init string '\\x00\\x00SSHUTTLE0001', got 'Traceback (m' after two "
          "NULs and 33 bytes of other output beginning 'bash: python3: command not "
          "found\\n\\x00\\x00Traceback (m'");
}

TEST_CASE("too much output before the header is TooLarge") {
    SyncScanner scanner(100);
    auto under = scanner.feed(as_bytes(std::string(100, 'y')));
    REQUIRE(under);
    CHECK_FALSE(under->done);
    auto over = scanner.feed(as_bytes("y"));
    REQUIRE_FALSE(over);
    CHECK(over.error().code == Errc::TooLarge);
    CHECK(over.error().message.find("no server init string after 100 bytes of output from the "
                                    "remote, which began 'yyyy") == 0);
}

TEST_CASE("errors are final") {
    SyncScanner scanner;
    REQUIRE_FALSE(scanner.feed(as_bytes("\0\0NOTSSHUTTLE1"s)));
    auto again = scanner.feed(as_bytes("\0\0SSHUTTLE0001"s));
    REQUIRE_FALSE(again);
    CHECK(again.error().message.find("expected server init string") == 0);
}

TEST_CASE("eof_error says what the remote wrote before the stream ended") {
    SyncScanner scanner;
    CHECK(scanner.eof_error().message ==
          "the ssh session ended before the server init string; the remote wrote nothing");
    REQUIRE(scanner.feed(as_bytes("bash: python3: command not found\n")));
    CHECK(scanner.eof_error().message ==
          "the ssh session ended before the server init string; the remote wrote 'bash: "
          "python3: command not found\\n'");
}

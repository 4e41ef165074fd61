#include "proto/mux_frame.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "proto/mux_decoder.hpp"
#include "proto/testing.hpp"

using namespace sshuttle;
using namespace sshuttle::proto;
using namespace sshuttle::proto::testing;
using namespace std::string_literals;

namespace {

struct CommandRow {
    Command command;
    std::uint16_t value;
    const char* name;
    bool control;
};

// The table from sshuttle-upstream.md §2.5, written out independently of mux_frame.hpp.
const CommandRow kCommands[] = {
    {Command::Exit, 0x4200, "EXIT", true},
    {Command::Ping, 0x4201, "PING", true},
    {Command::Pong, 0x4202, "PONG", true},
    {Command::TcpConnect, 0x4203, "TCP_CONNECT", false},
    {Command::TcpStopSending, 0x4204, "TCP_STOP_SENDING", false},
    {Command::TcpEof, 0x4205, "TCP_EOF", false},
    {Command::TcpData, 0x4206, "TCP_DATA", false},
    {Command::Routes, 0x4207, "ROUTES", true},
    {Command::HostReq, 0x4208, "HOST_REQ", true},
    {Command::HostList, 0x4209, "HOST_LIST", true},
    {Command::DnsReq, 0x420a, "DNS_REQ", false},
    {Command::DnsResponse, 0x420b, "DNS_RESPONSE", false},
    {Command::UdpOpen, 0x420c, "UDP_OPEN", false},
    {Command::UdpData, 0x420d, "UDP_DATA", false},
    {Command::UdpClose, 0x420e, "UDP_CLOSE", false},
    // Ours (docs/EXTENSIONS.md).
    {Command::Window, 0x4280, "WINDOW", false},
    {Command::ConnectError, 0x4281, "CONNECT_ERROR", false},
};

}  // namespace

TEST_CASE("the header is 'SS', channel, command, payload size, all big-endian") {
    std::vector<std::uint8_t> out;
    REQUIRE(append_frame(out, 0x0102, Command::TcpData, as_bytes("hello")));
    CHECK(string_of(out) == "SS\x01\x02\x42\x06\x00\x05hello"s);
}

TEST_CASE("the sync header is two NULs and SSHUTTLE0001") {
    CHECK(kSyncHeader == "\0\0SSHUTTLE0001"s);
    CHECK(kHeaderSize == 8);
    CHECK(kMaxPayload == 65535);
}

TEST_CASE("every command has its upstream wire value, name and channel kind") {
    CHECK(std::size(kCommands) == kUpstreamCommandCount + 2);
    for (const auto& row : kCommands) {
        CAPTURE(row.name);
        CHECK(static_cast<std::uint16_t>(row.command) == row.value);
        CHECK(command_name(row.command) == row.name);
        CHECK(is_known_command(row.value));
        CHECK(is_control_command(row.command) == row.control);
    }
    CHECK_FALSE(is_known_command(0x41ff));
    CHECK_FALSE(is_known_command(0x420f));
    CHECK_FALSE(is_known_command(0x427f));
    CHECK_FALSE(is_known_command(0x4282));
    CHECK_FALSE(is_upstream_command(0x4280));
    CHECK(command_name(static_cast<Command>(0x4300)) == "UNKNOWN");
}

TEST_CASE("every command round-trips through append_frame and the decoder") {
    std::vector<std::uint8_t> out;
    std::uint16_t channel = 0;
    for (const auto& row : kCommands) {
        const std::string payload = std::string(row.name) + " payload";
        REQUIRE(append_frame(out, channel++, row.command, as_bytes(payload)));
    }
    FrameDecoder decoder;
    REQUIRE(decoder.feed(out));
    channel = 0;
    for (const auto& row : kCommands) {
        CAPTURE(row.name);
        auto frame = decoder.next();
        REQUIRE(frame);
        REQUIRE(frame->has_value());
        CHECK((*frame)->channel == channel++);
        CHECK((*frame)->command == row.command);
        CHECK(string_of((*frame)->payload) == std::string(row.name) + " payload");
    }
    auto end = decoder.next();
    REQUIRE(end);
    CHECK_FALSE(end->has_value());
}

TEST_CASE(
    "append_frame takes a 65535-byte payload and rejects 65536, leaving the buffer as it was") {
    std::vector<std::uint8_t> out = {1, 2, 3};
    const std::vector<std::uint8_t> max(kMaxPayload, 0xab);
    REQUIRE(append_frame(out, 7, Command::TcpData, max));
    CHECK(out.size() == 3 + kHeaderSize + kMaxPayload);
    CHECK(out[3 + 6] == 0xff);
    CHECK(out[3 + 7] == 0xff);

    const std::vector<std::uint8_t> too_big(kMaxPayload + 1, 0xab);
    const std::size_t before = out.size();
    auto r = append_frame(out, 7, Command::TcpData, too_big);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == sshuttle::Errc::TooLarge);
    CHECK(r.error().message ==
          "TCP_DATA payload of 65536 bytes does not fit a mux frame (at most 65535)");
    CHECK(out.size() == before);
}

TEST_CASE("append_header announces a payload the caller appends in pieces") {
    std::vector<std::uint8_t> out;
    append_header(out, 3, Command::UdpData, 12);
    const std::string prefix = "1.2.3.4,53,";
    out.insert(out.end(), prefix.begin(), prefix.end());
    out.push_back('x');
    CHECK(string_of(out) ==
          "SS\x00\x03\x42\x0d\x00\x0c"
          "1.2.3.4,53,x"s);
}

TEST_CASE("write_header fills a reserved slot once the payload size is known") {
    // The read-after-header pattern: reserve, read the payload in place, then write the header.
    std::vector<std::uint8_t> out(kHeaderSize + 4);
    out[8] = 'd';
    out[9] = 'a';
    out[10] = 't';
    out[11] = 'a';
    write_header(std::span<std::uint8_t, kHeaderSize>(out.data(), kHeaderSize), 9, Command::TcpData,
                 4);
    CHECK(string_of(out) ==
          "SS\x00\x09\x42\x06\x00\x04"
          "data"s);
}

TEST_CASE("begin_frame and end_frame patch the size of a payload produced in place") {
    std::vector<std::uint8_t> out = {'x'};
    const std::size_t at = begin_frame(out, 1, Command::TcpData);
    CHECK(at == 1);
    out.resize(out.size() + 3, 'z');
    REQUIRE(end_frame(out, at));
    CHECK(string_of(out) == "xSS\x00\x01\x42\x06\x00\x03zzz"s);
}

TEST_CASE("end_frame removes a frame whose payload grew past 65535 bytes") {
    std::vector<std::uint8_t> out = {'x'};
    const std::size_t at = begin_frame(out, 1, Command::DnsReq);
    out.resize(out.size() + kMaxPayload + 1);
    auto r = end_frame(out, at);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == sshuttle::Errc::TooLarge);
    CHECK(r.error().message.find("DNS_REQ payload of 65536 bytes") == 0);
    CHECK(out.size() == 1);
}

TEST_CASE("parse_header names bad magic and unknown commands") {
    const auto parse = [](std::string_view text) {
        return parse_header(
            std::span<const std::uint8_t, kHeaderSize>(as_bytes(text).data(), kHeaderSize));
    };
    auto good = parse("SS\x00\x05\x42\x01\x01\x00"s);
    REQUIRE(good);
    CHECK(good->channel == 5);
    CHECK(good->command == Command::Ping);
    CHECK(good->payload_size == 256);

    auto magic = parse("\0ASSSSSS"s);
    REQUIRE_FALSE(magic);
    CHECK(magic.error().code == sshuttle::Errc::Protocol);
    CHECK(magic.error().message == "bad mux frame magic: expected 'SS', got '\\x00A'");

    auto unknown = parse("SS\x00\x05\x43\x00\x00\x00"s);
    REQUIRE_FALSE(unknown);
    CHECK(unknown.error().message == "unknown mux command 0x4300 on channel 5");
}

TEST_CASE("check_channel keeps control commands on channel 0 and the rest off it") {
    CHECK(check_channel(Command::Ping, 0));
    CHECK(check_channel(Command::TcpData, 4));
    auto routes = check_channel(Command::Routes, 4);
    REQUIRE_FALSE(routes);
    CHECK(routes.error().message == "ROUTES on channel 4, but it belongs on the control channel 0");
    auto connect = check_channel(Command::TcpConnect, 0);
    REQUIRE_FALSE(connect);
    CHECK(connect.error().message == "TCP_CONNECT on the control channel 0");
}

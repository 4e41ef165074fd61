#include "proto/mux_messages.hpp"

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

IpAddress ip(const char* text) {
    return *IpAddress::parse(text);
}

// The payload append_payload() writes for a message.
template <class T>
std::string payload_of(const T& message) {
    std::vector<std::uint8_t> out;
    REQUIRE(message.append_payload(out));
    return string_of(out);
}

template <class T>
T parsed(std::string_view payload) {
    auto r = T::parse(as_bytes(payload));
    REQUIRE_MESSAGE(r, r.error().message);
    return *r;
}

const std::string kDnsQuery =
    "\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07"
    "example\x03org\x00\x00\x01\x00\x01"s;

const std::string kHttp = "GET / HTTP/1.1\r\n\0\xff"s;

// One example of every command, as the daemon would send it.
std::vector<Message> one_of_each() {
    return {
        Exit{},
        Ping{as_bytes("chicken")},
        Pong{as_bytes("rttest")},
        TcpConnect{ip("10.1.2.3"), 443},
        TcpStopSending{},
        TcpEof{},
        TcpData{as_bytes(kHttp)},
        Routes{{Route{ip("192.0.2.0"), 24}, Route{ip("fd00::"), 64}}},
        HostReq{{"seed1", "seed-2.example"}},
        HostList{{HostEntry{"db.internal", ip("10.0.0.5")}, HostEntry{"web_1", ip("10.0.0.6")}}},
        DnsReq{as_bytes(kDnsQuery)},
        DnsResponse{as_bytes(kDnsQuery)},
        UdpOpen{Family::V6},
        UdpData{ip("fd00::53"), 53, as_bytes(kDnsQuery)},
        UdpClose{},
        Window{1048576},
        ConnectError{111, "Connection refused"},
    };
}

}  // namespace

TEST_CASE("every typed message round-trips through a frame, the decoder and parse_message") {
    const auto messages = one_of_each();
    REQUIRE(messages.size() == kUpstreamCommandCount + 2);
    std::vector<std::uint8_t> stream;
    std::uint16_t channel = 0;
    for (const Message& m : messages) REQUIRE(append_message(stream, channel++, m));

    FrameDecoder decoder;
    REQUIRE(decoder.feed(stream));
    channel = 0;
    for (const Message& sent : messages) {
        CAPTURE(command_name(message_command(sent)));
        auto frame = decoder.next();
        REQUIRE(frame);
        REQUIRE(frame->has_value());
        CHECK((*frame)->channel == channel++);
        CHECK((*frame)->command == message_command(sent));
        auto received = parse_message((*frame)->command, (*frame)->payload);
        REQUIRE_MESSAGE(received, received.error().message);
        CHECK(received->index() == sent.index());
        // Serialising what was parsed gives the same bytes: nothing lost, nothing invented.
        std::vector<std::uint8_t> again;
        REQUIRE(append_message(again, 0, *received));
        CHECK(string_of(ByteView(again).subspan(kHeaderSize)) == string_of((*frame)->payload));
    }
}

TEST_CASE("TCP_CONNECT is family,ip,port with Linux family numbers") {
    CHECK(payload_of(TcpConnect{ip("10.1.2.3"), 443}) == "2,10.1.2.3,443");
    CHECK(payload_of(TcpConnect{ip("fd00::5"), 22}) == "10,fd00::5,22");
    const auto v4 = parsed<TcpConnect>("2,127.0.0.1,40123");
    CHECK(v4.dst == ip("127.0.0.1"));
    CHECK(v4.port == 40123);
    const auto port0 = parsed<TcpConnect>("2,127.0.0.1,0");
    CHECK(port0.port == 0);
}

TEST_CASE("TCP_CONNECT takes another OS's AF_INET6 number as IPv6, as the Python server does") {
    for (const char* family : {"10", "30", "28", "24", "99"}) {
        CAPTURE(family);
        const auto m = parsed<TcpConnect>(std::string(family) + ",fd00::5,22");
        CHECK(m.dst == ip("fd00::5"));
    }
    CHECK(parsed<TcpConnect>("02,10.0.0.1,0080").port == 80);  // Python's int() allows zeros
}

TEST_CASE("ROUTES is one family,ip,width line per route and may be empty") {
    CHECK(payload_of(Routes{}).empty());
    CHECK(parsed<Routes>("").routes.empty());
    CHECK(payload_of(Routes{{Route{ip("192.0.2.0"), 24}}}) == "2,192.0.2.0,24\n");
    const auto r = parsed<Routes>("2,10.0.0.0,8\n\n10,fd00::,64\n2,0.0.0.0,0");
    REQUIRE(r.routes.size() == 3);
    CHECK(r.routes[0].network == ip("10.0.0.0"));
    CHECK(r.routes[0].width == 8);
    CHECK(r.routes[1].network == ip("fd00::"));
    CHECK(r.routes[1].width == 64);
    CHECK(r.routes[2].width == 0);
}

TEST_CASE("HOST_REQ joins names with newlines and HOST_LIST writes name,ip lines") {
    CHECK(payload_of(HostReq{{"seed1", "seed2"}}) == "seed1\nseed2");
    CHECK(payload_of(HostReq{}).empty());
    CHECK(parsed<HostReq>("seed1\nseed2\n").hostnames ==
          std::vector<std::string>{"seed1", "seed2"});
    CHECK(payload_of(HostList{{HostEntry{"a.b", ip("1.2.3.4")}}}) == "a.b,1.2.3.4\n");
    const auto list = parsed<HostList>("a.b,1.2.3.4\nc-d,5.6.7.8");  // last newline optional
    REQUIRE(list.hosts.size() == 2);
    CHECK(list.hosts[1].name == "c-d");
    CHECK(list.hosts[1].ip == ip("5.6.7.8"));
    CHECK(parsed<HostList>("").hosts.empty());
}

TEST_CASE("UDP_OPEN and UDP_DATA carry the family number and ip,port, before the datagram") {
    CHECK(payload_of(UdpOpen{Family::V4}) == "2");
    CHECK(payload_of(UdpOpen{Family::V6}) == "10");
    CHECK(parsed<UdpOpen>("2").family == Family::V4);
    CHECK(parsed<UdpOpen>("30").family == Family::V6);
    CHECK(payload_of(UdpData{ip("127.0.0.1"), 52896, as_bytes("ping")}) == "127.0.0.1,52896,ping");
    const auto d = parsed<UdpData>("fd00::1,53,a,b,c");  // commas in the datagram are data
    CHECK(d.ip == ip("fd00::1"));
    CHECK(d.port == 53);
    CHECK(string_of(d.datagram) == "a,b,c");
    CHECK(parsed<UdpData>("10.0.0.1,7,").datagram.empty());
}

TEST_CASE("raw payloads are views into the frame, not copies") {
    const std::string payload = "hello";
    CHECK(parsed<TcpData>(payload).data.data() == as_bytes(payload).data());
    CHECK(parsed<Ping>(payload).data.data() == as_bytes(payload).data());
    const std::string udp = "1.2.3.4,5,xyz";
    CHECK(parsed<UdpData>(udp).datagram.data() == as_bytes(udp).data() + 10);
}

TEST_CASE("the extensions' payloads: a 4-byte window increment and errno,message") {
    CHECK(payload_of(Window{0x01020304}) == "\x01\x02\x03\x04");
    CHECK(parsed<Window>("\x7f\xff\xff\xff").increment == kMaxWindowIncrement);
    CHECK(payload_of(ConnectError{111, "Connection refused"}) == "111,Connection refused");
    const auto e = parsed<ConnectError>("113,No route to host, really");
    CHECK(e.error_number == 113);
    CHECK(e.message == "No route to host, really");
    CHECK(parsed<ConnectError>("1,").message.empty());
}

TEST_CASE("EXIT ignores its payload, as upstream does") {
    CHECK(Exit::parse(as_bytes("whatever")).has_value());
}

TEST_CASE("malformed payloads give named errors quoting the bad text") {
    struct Case {
        Command command;
        std::string payload;
        Errc code;
        std::string message;  // a part of the expected message
    };
    const std::string long_name(254, 'a');
    std::string many_names;
    for (std::size_t i = 0; i <= kMaxHostNames; ++i) many_names += "h\n";
    const std::vector<Case> cases = {
        {Command::TcpConnect, "", Errc::Protocol,
         "TCP_CONNECT payload '': expected '<family>,<ip>,<port>'"},
        {Command::TcpConnect, "2,10.0.0.1", Errc::Protocol, "expected '<family>,<ip>,<port>'"},
        {Command::TcpConnect, "2,10.0.0.1,80,1", Errc::Protocol, "expected '<family>,<ip>,<port>'"},
        {Command::TcpConnect, "x,10.0.0.1,80", Errc::Protocol,
         "address family 'x' is not a number"},
        {Command::TcpConnect, "-2,10.0.0.1,80", Errc::Protocol,
         "address family '-2' is not a number"},
        {Command::TcpConnect, "2,fd00::1,80", Errc::Protocol,
         "'fd00::1' is not an IPv4 address (family 2)"},
        {Command::TcpConnect, "10,10.0.0.1,80", Errc::Protocol,
         "'10.0.0.1' is not an IPv6 address"},
        {Command::TcpConnect, "2,10.0.0.1,65536", Errc::Protocol,
         "port '65536' is not a number in 0..65535"},
        {Command::TcpConnect, "2,10.0.0.1, 80", Errc::Protocol, "port ' 80' is not a number"},
        {Command::TcpConnect, "2,10.0.0.1,", Errc::Protocol, "port '' is not a number"},
        {Command::TcpConnect, "2,host.example,80", Errc::Protocol,
         "'host.example' is not an IPv4 address"},
        {Command::TcpConnect, "10,[::1],80", Errc::Protocol, "'[::1]' is not an IPv6 address"},
        {Command::TcpConnect, "2,10.0.0.1\n,80", Errc::Protocol,
         "TCP_CONNECT payload '2,10.0.0.1\\n,80'"},
        {Command::TcpStopSending, "x", Errc::Protocol,
         "TCP_STOP_SENDING payload must be empty, got 1 bytes 'x'"},
        {Command::TcpEof, "\0"s, Errc::Protocol,
         "TCP_EOF payload must be empty, got 1 bytes '\\x00'"},
        {Command::UdpClose, "bye", Errc::Protocol, "UDP_CLOSE payload must be empty"},
        {Command::Routes, "2,10.0.0.0\n", Errc::Protocol,
         "ROUTES payload '2,10.0.0.0': expected '<family>,<ip>,<width>'"},
        {Command::Routes, "2,10.0.0.0,33\n", Errc::Protocol,
         "width '33' is not a prefix length for IPv4"},
        {Command::Routes, "10,fd00::,129\n", Errc::Protocol,
         "width '129' is not a prefix length for IPv6"},
        {Command::Routes, "2,10.0.0.0,8\n2,10.0.0.0,-1\n", Errc::Protocol,
         "ROUTES payload '2,10.0.0.0,-1': width '-1'"},
        {Command::Routes, "2,10.0.0.0/8,8\n", Errc::Protocol,
         "'10.0.0.0/8' is not an IPv4 address"},
        {Command::Routes, "2,10.0.0.0,8\r\n", Errc::Protocol, "width '8\\r'"},
        {Command::HostReq, "good\nbad name", Errc::Protocol,
         "HOST_REQ payload 'bad name': not a host name"},
        {Command::HostReq, long_name, Errc::Protocol, "HOST_REQ payload 'aaaa"},
        {Command::HostReq, many_names, Errc::TooLarge,
         "HOST_REQ payload names more than 4096 hosts"},
        {Command::HostList, "host1\n", Errc::Protocol,
         "HOST_LIST payload 'host1': expected '<name>,<ipv4>'"},
        {Command::HostList, "host1,fd00::1\n", Errc::Protocol, "'fd00::1' is not an IPv4 address"},
        {Command::HostList, "bad/name,10.0.0.1\n", Errc::Protocol, "'bad/name' is not a host name"},
        {Command::HostList, "h,10.0.0.1,extra\n", Errc::Protocol, "expected '<name>,<ipv4>'"},
        {Command::UdpOpen, "", Errc::Protocol, "UDP_OPEN payload '': not an address family number"},
        {Command::UdpOpen, "AF_INET", Errc::Protocol, "UDP_OPEN payload 'AF_INET'"},
        {Command::UdpOpen, "123456", Errc::Protocol, "UDP_OPEN payload '123456'"},
        {Command::UdpData, "10.0.0.1,53", Errc::Protocol,
         "expected '<ip>,<port>,' before the datagram"},
        {Command::UdpData, "10.0.0.1:53,x,", Errc::Protocol, "'10.0.0.1:53' is not an IP address"},
        {Command::UdpData, "10.0.0.1,99999,data", Errc::Protocol,
         "port '99999' is not a number in 0..65535"},
        {Command::UdpData, std::string(60, '1') + ",53,x", Errc::Protocol,
         "expected '<ip>,<port>,'"},
        {Command::Window, "\0\0\1"s, Errc::Protocol,
         "WINDOW payload '\\x00\\x00\\x01': expected a 4-byte increment, got 3 bytes"},
        {Command::Window, "\0\0\0\0"s, Errc::Protocol, "increment 0 is not in 1..2147483647"},
        {Command::Window, "\x80\0\0\0"s, Errc::Protocol, "increment 2147483648 is not"},
        {Command::ConnectError, "Connection refused", Errc::Protocol,
         "expected '<errno>,<message>'"},
        {Command::ConnectError, "0,Success", Errc::Protocol,
         "errno '0' is not a number in 1..65535"},
        {Command::ConnectError, "111,bad\nline", Errc::Protocol,
         "the message is not printable ASCII"},
        {Command::ConnectError, "111," + std::string(300, 'x'), Errc::TooLarge,
         "CONNECT_ERROR payload of 304 bytes"},
    };
    CHECK(cases.size() >= 25);
    for (const Case& c : cases) {
        CAPTURE(command_name(c.command));
        CAPTURE(c.payload);
        auto r = parse_message(c.command, as_bytes(c.payload));
        REQUIRE_FALSE(r);
        CHECK(r.error().code == c.code);
        CHECK_MESSAGE(r.error().message.find(c.message) != std::string::npos, r.error().message);
        CHECK(r.error().message.find(command_name(c.command)) == 0);
        CHECK(r.error().message.size() < 300);  // quoted text is truncated
    }
}

TEST_CASE("serialising refuses what upstream's client would crash on") {
    std::vector<std::uint8_t> out = {'x'};
    auto v6 = append_message(out, 0, HostList{{HostEntry{"h", ip("fd00::1")}}});
    REQUIRE_FALSE(v6);
    CHECK(v6.error().message == "HOST_LIST: fd00::1 for h is not IPv4");
    auto name = append_message(out, 0, HostList{{HostEntry{"bad name", ip("10.0.0.1")}}});
    REQUIRE_FALSE(name);
    CHECK(name.error().code == Errc::InvalidArgument);
    auto seed = append_message(out, 0, HostReq{{"ok", "a\nb"}});
    REQUIRE_FALSE(seed);
    CHECK(seed.error().message.find("HOST_REQ: 'a\\nb' is not a host name") == 0);
    auto width = append_message(out, 0, Routes{{Route{ip("10.0.0.0"), 33}}});
    REQUIRE_FALSE(width);
    CHECK(width.error().message == "ROUTES: prefix width 33 is out of range for IPv4");
    CHECK(out.size() == 1);  // nothing left behind by a failed message
}

TEST_CASE("a message too big for one frame is TooLarge and leaves the buffer unchanged") {
    HostReq req;
    for (int i = 0; i < 400; ++i) req.hostnames.push_back(std::string(200, 'n'));
    std::vector<std::uint8_t> out = {'x'};
    auto r = append_message(out, 0, req);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::TooLarge);
    CHECK(out.size() == 1);
}

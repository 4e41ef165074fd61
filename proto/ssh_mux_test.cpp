#include "proto/ssh_mux.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace sshuttle;
using namespace sshuttle::proto;
using namespace sshuttle::proto::sshmux;

namespace {

using Bytes = std::vector<std::uint8_t>;

void u32(Bytes& b, std::uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) b.push_back(static_cast<std::uint8_t>(v >> shift));
}
void str(Bytes& b, std::string_view s) {
    u32(b, static_cast<std::uint32_t>(s.size()));
    b.insert(b.end(), s.begin(), s.end());
}
// A packet with its length in front.
Bytes packet(const Bytes& body) {
    Bytes p;
    u32(p, static_cast<std::uint32_t>(body.size()));
    p.insert(p.end(), body.begin(), body.end());
    return p;
}

// What OpenSSH 9.2's master sends first: version 4 and the "info" extension.
Bytes master_hello() {
    Bytes body;
    u32(body, kMsgHello);
    u32(body, 4);
    str(body, "info");
    str(body, "0");
    return packet(body);
}

}  // namespace

TEST_CASE("the hello is MUX_MSG_HELLO version 4 without extensions, byte for byte") {
    Bytes want = {0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 4};
    CHECK(encode_hello() == want);
}

TEST_CASE("a stdio forward carries the request id, an empty reserved string, host and a u32 port") {
    auto p = encode_stdio_fwd(7, "fd00::2", 443);
    REQUIRE(p);
    Bytes body;
    u32(body, kNewStdioFwd);
    u32(body, 7);
    str(body, "");
    str(body, "fd00::2");
    u32(body, 443);
    CHECK(*p == packet(body));
}

TEST_CASE("a stdio forward refuses an empty or oversized host, a NUL and port 0") {
    CHECK_FALSE(encode_stdio_fwd(1, "", 80));
    CHECK_FALSE(encode_stdio_fwd(1, std::string(256, 'a'), 80));
    CHECK(encode_stdio_fwd(1, std::string(255, 'a'), 80));
    CHECK_FALSE(encode_stdio_fwd(1, std::string("a\0b", 3), 80));
    CHECK_FALSE(encode_stdio_fwd(1, "10.0.0.1", 0));
    CHECK_FALSE(encode_stdio_fwd(1, "10.0.0.1", 65536));
}

TEST_CASE("the reader returns the master's hello, then a session opened, from one stream") {
    ReplyReader r;
    Bytes stream = master_hello();
    Bytes opened;
    u32(opened, kSessionOpened);
    u32(opened, 7);
    u32(opened, 3);
    auto p = packet(opened);
    stream.insert(stream.end(), p.begin(), p.end());
    r.feed(stream);
    auto hello = r.next();
    REQUIRE(hello);
    REQUIRE(*hello);
    CHECK((*hello)->kind == Reply::Kind::Hello);
    CHECK((*hello)->value == 4);
    auto session = r.next();
    REQUIRE(session);
    REQUIRE(*session);
    CHECK((*session)->kind == Reply::Kind::SessionOpened);
    CHECK((*session)->request_id == 7);
    CHECK((*session)->value == 3);
    auto none = r.next();
    REQUIRE(none);
    CHECK_FALSE(*none);
    CHECK(r.buffered() == 0);
}

TEST_CASE("the reader waits for a packet split at every byte") {
    Bytes body;
    u32(body, kFailure);
    u32(body, 9);
    str(body, "Session open refused by peer");
    Bytes stream = packet(body);
    ReplyReader r;
    for (std::size_t i = 0; i + 1 < stream.size(); ++i) {
        r.feed(ByteView(&stream[i], 1));
        auto none = r.next();
        REQUIRE(none);
        CHECK_FALSE(*none);
    }
    r.feed(ByteView(&stream.back(), 1));
    auto failure = r.next();
    REQUIRE(failure);
    REQUIRE(*failure);
    CHECK((*failure)->kind == Reply::Kind::Failure);
    CHECK((*failure)->request_id == 9);
    CHECK((*failure)->reason == "Session open refused by peer");
}

TEST_CASE("permission denied and unknown types parse; unknown types are Other") {
    Bytes denied;
    u32(denied, kPermissionDenied);
    u32(denied, 2);
    str(denied, "Permission denied");
    auto d = parse_reply(denied);
    REQUIRE(d);
    CHECK(d->kind == Reply::Kind::PermissionDenied);
    CHECK(d->reason == "Permission denied");
    Bytes other;
    u32(other, kAlive);
    u32(other, 1);
    u32(other, 1234);
    auto o = parse_reply(other);
    REQUIRE(o);
    CHECK(o->kind == Reply::Kind::Other);
    CHECK(o->type == kAlive);
}

TEST_CASE("malformed packets are protocol errors, never reads past the end") {
    struct Case {
        const char* what;
        Bytes body;
    };
    std::vector<Case> cases;
    cases.push_back({"empty", {}});
    cases.push_back({"short type", {0, 0, 1}});
    {
        Bytes b;
        u32(b, kMsgHello);
        cases.push_back({"hello without version", b});
        u32(b, 4);
        u32(b, 10);  // extension name of 10 bytes, none there
        cases.push_back({"hello with a cut extension", b});
    }
    {
        Bytes b;
        u32(b, kMsgHello);
        u32(b, 4);
        str(b, "info");  // a name without a value
        cases.push_back({"hello with an extension name only", b});
    }
    {
        Bytes b;
        u32(b, kSessionOpened);
        u32(b, 1);
        cases.push_back({"session opened without session id", b});
    }
    {
        Bytes b;
        u32(b, kFailure);
        u32(b, 1);
        u32(b, 0xffffffff);  // reason length beyond the packet
        cases.push_back({"failure with a huge reason length", b});
    }
    for (const Case& c : cases) {
        CAPTURE(c.what);
        auto r = parse_reply(c.body);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::Protocol);
    }
}

TEST_CASE("the reader refuses lengths below 4 and above the cap") {
    for (std::uint32_t len : {0u, 3u, static_cast<std::uint32_t>(kMaxPacket + 1), 0xffffffffu}) {
        CAPTURE(len);
        ReplyReader r;
        Bytes b;
        u32(b, len);
        r.feed(b);
        auto next = r.next();
        REQUIRE_FALSE(next);
        CHECK(next.error().code == Errc::Protocol);
    }
}

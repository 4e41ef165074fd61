#include "common/ip_address.hpp"

#include <doctest/doctest.h>

using namespace sshuttle;

TEST_CASE("IpAddress parses canonical v4 and v6 literals") {
    auto a = IpAddress::parse("10.1.2.3");
    REQUIRE(a);
    CHECK(a->is_v4());
    CHECK(a->to_string() == "10.1.2.3");
    auto b = IpAddress::parse("FD00:0::5");
    REQUIRE(b);
    CHECK(b->is_v6());
    CHECK(b->to_string() == "fd00::5");
}

TEST_CASE("IpAddress::parse rejects the loose and the malformed") {
    for (const char* bad : {"", "10.1", "10.256.0.0", "1.2.3.4 ", "[::1]", "::1/128", "0x0a.0.0.1",
                            "fd00::g", "localhost", "1.2.3.4.5"}) {
        CAPTURE(bad);
        auto r = IpAddress::parse(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidArgument);
        CHECK(r.error().message.find("is not an IP address") != std::string::npos);
    }
}

TEST_CASE("masked clears host bits for both families") {
    CHECK(IpAddress::parse("10.1.2.3")->masked(8).to_string() == "10.0.0.0");
    CHECK(IpAddress::parse("10.1.2.3")->masked(20).to_string() == "10.1.0.0");
    CHECK(IpAddress::parse("10.1.2.3")->masked(0).to_string() == "0.0.0.0");
    CHECK(IpAddress::parse("10.1.2.3")->masked(32).to_string() == "10.1.2.3");
    CHECK(IpAddress::parse("fd00:1234:5678::1")->masked(20).to_string() == "fd00:1000::");
}

TEST_CASE("loopback and unspecified") {
    CHECK(IpAddress::parse("127.0.0.5")->is_loopback());
    CHECK(IpAddress::parse("::1")->is_loopback());
    CHECK_FALSE(IpAddress::parse("10.0.0.1")->is_loopback());
    CHECK(IpAddress::parse("0.0.0.0")->is_unspecified());
    CHECK(IpAddress::parse("::")->is_unspecified());
}

TEST_CASE("sockaddr round trip, v4-mapped peers become IPv4") {
    auto ip = *IpAddress::parse("fd00::7");
    SockAddr sa = make_sockaddr(ip, 12300);
    auto back = from_sockaddr(sa.get(), sa.len);
    REQUIRE(back);
    CHECK(back->first == ip);
    CHECK(back->second == 12300);
    auto mapped = *IpAddress::parse("::ffff:10.0.0.9");
    SockAddr sm = make_sockaddr(mapped, 80);
    auto m = from_sockaddr(sm.get(), sm.len);
    REQUIRE(m);
    CHECK(m->first.is_v4());
    CHECK(m->first.to_string() == "10.0.0.9");
}

TEST_CASE("addresses order by family then bytes") {
    CHECK(*IpAddress::parse("10.0.0.1") < *IpAddress::parse("10.0.0.2"));
    CHECK(*IpAddress::parse("255.0.0.1") < *IpAddress::parse("::1"));
}

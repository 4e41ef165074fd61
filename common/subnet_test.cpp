#include "common/subnet.hpp"

#include <arpa/inet.h>
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "common/resolver.hpp"

using namespace sshuttle;

namespace {

IpAddress addr(const char* text) {
    auto parsed = IpAddress::parse(text);
    REQUIRE_MESSAGE(parsed, text);
    return *parsed;
}

SubnetPort entry(const char* address, int width, std::uint16_t first = 0, std::uint16_t last = 0) {
    return SubnetPort{Subnet(addr(address), width), PortRange{first, last}};
}

// Answers from a table and records every question, so tests can also prove that a literal
// never reached the resolver. No test in this file does real DNS.
struct FakeResolver {
    std::map<std::string, std::vector<IpAddress>, std::less<>> names;
    std::vector<std::string> asked;

    Resolver get() {
        return [this](std::string_view host) -> Result<std::vector<IpAddress>> {
            asked.emplace_back(host);
            auto it = names.find(host);
            if (it == names.end())
                return Error(Errc::NotFound, "Unable to resolve address: " + std::string(host));
            return it->second;
        };
    }
};

FakeResolver make_fake() {
    FakeResolver fake;
    fake.names["example.com"] = {addr("2606:2800:220:1:248:1893:25c8:1946"), addr("93.184.216.34")};
    fake.names["multi.example"] = {addr("10.0.0.2"), addr("10.0.0.1"), addr("10.0.0.2"),
                                   addr("10.9.9.9")};
    fake.names["v6only.example"] = {addr("fd00::1"), addr("fd00::2")};
    fake.names["*.corp.example"] = {addr("172.16.5.4")};
    fake.names["localhost"] = {addr("::1"), addr("127.0.0.1")};
    fake.names["empty.example"] = {};
    fake.names["under_score.example"] = {addr("10.7.7.7")};
    return fake;
}

// The one entry `text` must parse to.
SubnetPort parse_one(const char* text, FakeResolver& fake) {
    auto parsed = parse_subnetport(text, fake.get());
    REQUIRE_MESSAGE(parsed, text << ": " << parsed.error().message);
    REQUIRE_MESSAGE(parsed->size() == 1, text);
    return parsed->front();
}

SubnetPort parse_one(const char* text) {
    FakeResolver fake = make_fake();
    return parse_one(text, fake);
}

Error parse_error(std::string_view text) {
    FakeResolver fake = make_fake();
    auto parsed = parse_subnetport(text, fake.get());
    REQUIRE_MESSAGE(!parsed, std::string(text));
    return parsed.error();
}

// upstream tests/client/test_options.py: _ip4_reprs, _ip4_swidths, _ip6_reprs, _ip6_swidths.
const std::vector<std::pair<const char*, const char*>> kIp4Reprs = {
    {"0.0.0.0", "0.0.0.0"},
    {"255.255.255.255", "255.255.255.255"},
    {"10.0", "10.0.0.0"},
    {"184.172.10.74", "184.172.10.74"},
    {"3098282570", "184.172.10.74"},
    {"0xb8.0xac.0x0a.0x4a", "184.172.10.74"},
    {"0270.0254.0012.0112", "184.172.10.74"},
};
const std::vector<int> kIp4Widths = {1, 8, 22, 27, 32};
const std::vector<std::pair<const char*, const char*>> kIp6Reprs = {
    {"::", "::"},
    {"::1", "::1"},
    {"fc00::", "fc00::"},
    {"2a01:7e00:e000:188::1", "2a01:7e00:e000:188::1"},
};
const std::vector<int> kIp6Widths = {1, 8, 22, 27, 32, 48, 64, 96, 115, 128};

}  // namespace

// ---- PortRange ----

TEST_CASE("PortRange parses single ports, ranges and the empty all-ports form") {
    CHECK(*PortRange::parse("80") == PortRange{80, 80});
    CHECK(*PortRange::parse("80-90") == PortRange{80, 90});
    CHECK(*PortRange::parse("1-65535") == PortRange{1, 65535});
    CHECK(*PortRange::parse("0080") == PortRange{80, 80});
    CHECK(PortRange::parse("")->all());
    for (const char* text : {"80", "80-90", "1-65535", ""})
        CHECK(PortRange::parse(text)->to_string() == text);
}

TEST_CASE("PortRange knows which ports it covers") {
    CHECK(PortRange{}.contains(1));
    CHECK(PortRange{}.contains(65535));
    CHECK(PortRange{80, 90}.contains(80));
    CHECK(PortRange{80, 90}.contains(90));
    CHECK_FALSE(PortRange{80, 90}.contains(91));
    CHECK(PortRange{}.valid());
    CHECK(PortRange{80, 90}.valid());
    CHECK_FALSE((PortRange{90, 80}.valid()));
    CHECK_FALSE((PortRange{0, 80}.valid()));
}

TEST_CASE("PortRange rejects ports outside 1..65535, reversed ranges and non-numbers") {
    for (const char* bad :
         {"0", "70000", "90-80", "8a", "-", "80-", "-80", "1-2-3", " 80", "99999999999999999999"}) {
        CAPTURE(bad);
        auto r = PortRange::parse(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidArgument);
        CHECK(r.error().message.find(bad) != std::string::npos);
    }
    CHECK(PortRange::parse("90-80").error().message == "port range 90-80 is reversed");
    CHECK(PortRange::parse("70000").error().message == "port 70000 is not between 1 and 65535");
}

// ---- Subnet ----

TEST_CASE("Subnet clears host bits when built, as iptables would") {
    Subnet s(addr("10.1.2.3"), 8);
    CHECK(s.network == addr("10.0.0.0"));
    CHECK(s.width == 8);
    CHECK(s.to_string() == "10.0.0.0/8");
    CHECK(Subnet(addr("fd00:1234::1"), 8).to_string() == "fd00::/8");
    CHECK(Subnet(addr("10.1.2.3"), 32).to_string() == "10.1.2.3/32");
    CHECK(Subnet(addr("10.1.2.3"), 0).to_string() == "0.0.0.0/0");
    CHECK(Subnet().to_string() == "0.0.0.0/0");
    CHECK(Subnet(addr("10.1.2.3"), 40).to_string() == "10.1.2.3/32");  // clamped
    CHECK(Subnet(addr("10.1.2.3"), -1).to_string() == "0.0.0.0/0");
}

TEST_CASE("Subnet::make rejects widths beyond the family with sshuttle's message") {
    CHECK(Subnet::make(addr("10.0.0.0"), 32));
    CHECK(Subnet::make(addr("fd00::"), 128));
    auto v4 = Subnet::make(addr("10.0.0.0"), 33);
    REQUIRE_FALSE(v4);
    CHECK(v4.error().message == "Slash in CIDR notation (/33) is not between 0 and 32");
    CHECK_FALSE(Subnet::make(addr("fd00::"), 129));
    CHECK_FALSE(Subnet::make(addr("fd00::"), -1));
}

TEST_CASE("Subnet::parse reads exactly what to_string writes, masking host bits") {
    for (const char* text : {"10.0.0.0/8", "0.0.0.0/0", "192.168.1.1/32", "fd00::/8", "::/0",
                             "2a01:7e00:e000:188::1/128"}) {
        auto s = Subnet::parse(text);
        REQUIRE_MESSAGE(s, text);
        CHECK(s->to_string() == text);
    }
    CHECK(Subnet::parse("10.1.2.3/8")->to_string() == "10.0.0.0/8");
    for (const char* bad : {"10.0.0.0", "10/8", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/0008",
                            "fd00::/129", "[fd00::]/8", "10.0.0.0/8:80", "10.0.0.0/+8", ""}) {
        CAPTURE(bad);
        auto s = Subnet::parse(bad);
        REQUIRE_FALSE(s);
        CHECK(s.error().code == Errc::InvalidArgument);
    }
}

TEST_CASE("Subnet::contains checks family and prefix") {
    Subnet ten(addr("10.0.0.0"), 8);
    CHECK(ten.contains(addr("10.0.0.0")));
    CHECK(ten.contains(addr("10.255.255.255")));
    CHECK_FALSE(ten.contains(addr("11.0.0.0")));
    CHECK_FALSE(ten.contains(addr("::ffff:10.0.0.1")));
    Subnet all4;
    CHECK(all4.contains(addr("203.0.113.9")));
    CHECK_FALSE(all4.contains(addr("::1")));
    Subnet ula(addr("fd00::"), 8);
    CHECK(ula.contains(addr("fdff::1")));
    CHECK_FALSE(ula.contains(addr("fe80::1")));
    Subnet host(addr("fd00::7"), 128);
    CHECK(host.contains(addr("fd00::7")));
    CHECK_FALSE(host.contains(addr("fd00::8")));
    CHECK(Subnet(addr("10.1.2.3"), 20).contains(addr("10.1.15.255")));
    CHECK_FALSE(Subnet(addr("10.1.2.3"), 20).contains(addr("10.1.16.0")));
}

TEST_CASE("Subnets compare by family, network, then width") {
    CHECK(Subnet(addr("10.1.2.3"), 8) == Subnet(addr("10.0.0.0"), 8));
    CHECK(Subnet(addr("10.0.0.0"), 8) < Subnet(addr("10.0.0.0"), 16));
    CHECK(Subnet(addr("10.0.0.0"), 8) < Subnet(addr("11.0.0.0"), 8));
    CHECK(Subnet(addr("255.0.0.0"), 8) < Subnet(addr("::"), 0));
    CHECK(entry("10.0.0.0", 8, 80, 80) < entry("10.0.0.0", 8, 81, 81));
}

// ---- inet_aton ----

TEST_CASE("IPv4 literals follow glibc inet_aton, without its trailing garbage") {
    const std::vector<std::pair<const char*, const char*>> good = {
        {"0", "0.0.0.0"},
        {"10", "0.0.0.10"},
        {"10.1", "10.0.0.1"},
        {"10.1.2", "10.1.0.2"},
        {"10.0.300", "10.0.1.44"},
        {"10.70000", "10.1.17.112"},
        {"3098282570", "184.172.10.74"},
        {"4294967295", "255.255.255.255"},
        {"0xb8.0xac.0x0a.0x4a", "184.172.10.74"},
        {"0XB8.0Xac.0xA.0x4a", "184.172.10.74"},
        {"0270.0254.0012.0112", "184.172.10.74"},
        {"0xffffffff", "255.255.255.255"},
        {"000000000012", "0.0.0.10"},
        {"0x00000000000000ff", "0.0.0.255"},
        {"1.2.3.4", "1.2.3.4"},
    };
    for (const auto& [text, expected] : good) {
        CAPTURE(text);
        auto ip = parse_ipv4_inet_aton(text);
        REQUIRE(ip);
        CHECK(ip->to_string() == expected);
        in_addr glibc{};
        REQUIRE(::inet_aton(text, &glibc) == 1);
        CHECK(*ip == IpAddress::v4(glibc));
    }
    for (const char* bad : {"",
                            ".",
                            "1.",
                            "1.2.3.",
                            ".1",
                            "1..2",
                            "10.256.0.0",
                            "1.2.3.4.5",
                            "256.1",
                            "1.2.65536",
                            "4294967296",
                            "0x100000000",
                            "08",
                            "09.1",
                            "0x",
                            "0xg",
                            "1.2.3.4 ",
                            " 1.2.3.4",
                            "1.2.3.4\tjunk",
                            "+1",
                            "-1",
                            "1.2.3.0x",
                            "0x1.0x2.0x3.0x100",
                            "99999999999999999999"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_ipv4_inet_aton(bad));
    }
}

TEST_CASE("IPv4 literal parser agrees with glibc inet_aton on random digit soup") {
    // Whitespace is left out of the alphabet: inet_aton accepts "1.2.3.4 junk", we do not.
    const std::string alphabet = "0123456789abcdefxX.0.1.8g";
    std::mt19937 rng(20240601);  // fixed seed: reproducible
    std::uniform_int_distribution<std::size_t> length(1, 14);
    std::uniform_int_distribution<std::size_t> pick(0, alphabet.size() - 1);
    int accepted = 0;
    for (int round = 0; round < 50000; ++round) {
        std::string text;
        for (std::size_t n = length(rng); n > 0; --n) text += alphabet[pick(rng)];
        in_addr glibc{};
        bool glibc_ok = ::inet_aton(text.c_str(), &glibc) == 1;
        auto ours = parse_ipv4_inet_aton(text);
        CAPTURE(text);
        REQUIRE(ours.has_value() == glibc_ok);
        if (glibc_ok) {
            REQUIRE(*ours == IpAddress::v4(glibc));
            ++accepted;
        }
    }
    CHECK(accepted > 1000);  // the soup exercises the accepting paths too
}

// ---- parse_subnetport: IPv4 ----

TEST_CASE("IPv4 subnets in every inet_aton notation default to /32 and all ports") {
    for (const auto& [text, ip] : kIp4Reprs) {
        CAPTURE(text);
        CHECK(parse_one(text) == entry(ip, 32));
    }
}

TEST_CASE("IPv4 subnets take widths 0..32 and are masked") {
    for (const auto& [text, ip] : kIp4Reprs) {
        for (int width : kIp4Widths) {
            std::string arg = std::string(text) + "/" + std::to_string(width);
            CAPTURE(arg);
            SubnetPort got = parse_one(arg.c_str());
            CHECK(got == entry(ip, width));
            CHECK(got.subnet.network == addr(ip).masked(width));
        }
    }
    for (int width = 0; width <= 32; ++width) {
        std::string arg = "184.172.10.74/" + std::to_string(width);
        CAPTURE(arg);
        CHECK(parse_one(arg.c_str()).subnet == Subnet(addr("184.172.10.74"), width));
    }
    CHECK(parse_one("10.1.2.3/8").subnet.to_string() == "10.0.0.0/8");
    CHECK(parse_one("10.0.0.0/032").subnet.width == 32);
}

TEST_CASE("IPv4 short forms keep sshuttle's inet_aton meaning, gotchas included") {
    CHECK(parse_one("0/0") == entry("0.0.0.0", 0));
    CHECK(parse_one("10.1") == entry("10.0.0.1", 32));
    CHECK(parse_one("10/8") == entry("0.0.0.10", 8));  // 0.0.0.0/8 once masked
    CHECK(parse_one("10/8").subnet.to_string() == "0.0.0.0/8");
    CHECK(parse_one("10.0/8").subnet.to_string() == "10.0.0.0/8");
    CHECK(parse_one("10.0.0.0/8").subnet.to_string() == "10.0.0.0/8");
}

TEST_CASE("IPv4 subnets take a port or a port range, with or without a width") {
    for (const auto& [text, ip] : kIp4Reprs) {
        CAPTURE(text);
        std::string t(text);
        CHECK(parse_one((t + ":80").c_str()) == entry(ip, 32, 80, 80));
        CHECK(parse_one((t + ":80-90").c_str()) == entry(ip, 32, 80, 90));
        CHECK(parse_one((t + "/32:80").c_str()) == entry(ip, 32, 80, 80));
        CHECK(parse_one((t + "/16:80-90").c_str()) == entry(ip, 16, 80, 90));
    }
    CHECK(parse_one("10.0.0.0/8:1-65535") == entry("10.0.0.0", 8, 1, 65535));
    CHECK(parse_one("10.0.0.0/8:443-443") == entry("10.0.0.0", 8, 443, 443));
}

TEST_CASE("IPv4 errors: bad literals never reach the resolver, widths past 32 are refused") {
    FakeResolver fake = make_fake();
    for (const char* bad : {"10.256.0.0", "1.2.3.4.5", "10.256.0.0/8:80", "08.1.1.1", "1..2"}) {
        CAPTURE(bad);
        auto r = parse_subnetport(bad, fake.get());
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidArgument);
        CHECK(r.error().message.find("is not a valid IPv4 address") != std::string::npos);
    }
    CHECK(fake.asked.empty());
    CHECK(parse_error("10.256.0.0").message == "'10.256.0.0' is not a valid IPv4 address");
    CHECK(parse_error("10.256.0.0/8:80").message ==
          "'10.256.0.0' in '10.256.0.0/8:80' is not a valid IPv4 address");
    CHECK(parse_error("10.0.0.0/33").message ==
          "Slash in CIDR notation (/33) is not between 0 and 32");
    CHECK(parse_error("10.0.0.0/33:80").message ==
          "Slash in CIDR notation (/33) is not between 0 and 32");
}

// ---- parse_subnetport: IPv6 ----

TEST_CASE("IPv6 subnets default to /128 and all ports") {
    for (const auto& [text, ip] : kIp6Reprs) {
        CAPTURE(text);
        CHECK(parse_one(text) == entry(ip, 128));
        std::string bracketed = "[" + std::string(text) + "]";
        CHECK(parse_one(bracketed.c_str()) == entry(ip, 128));
    }
    CHECK(parse_one("::ffff:10.0.0.1") == entry("::ffff:10.0.0.1", 128));
}

TEST_CASE("IPv6 subnets take widths 0..128, bracketed or not") {
    for (const auto& [text, ip] : kIp6Reprs) {
        for (int width : kIp6Widths) {
            std::string arg = std::string(text) + "/" + std::to_string(width);
            CAPTURE(arg);
            CHECK(parse_one(arg.c_str()) == entry(ip, width));
            CHECK(parse_one(("[" + arg + "]").c_str()) == entry(ip, width));
        }
    }
    CHECK(parse_one("::/0") == entry("::", 0));
    CHECK(parse_one("2a01:7e00:e000:188::1/64").subnet.to_string() == "2a01:7e00:e000:188::/64");
    CHECK(parse_error("fc00::/129").message ==
          "Slash in CIDR notation (/129) is not between 0 and 128");
    CHECK(parse_error("[fc00::/129]:80").message ==
          "Slash in CIDR notation (/129) is not between 0 and 128");
}

TEST_CASE("IPv6 subnets take ports inside brackets, and after an unbracketed width") {
    for (const auto& [text, ip] : kIp6Reprs) {
        CAPTURE(text);
        std::string t(text);
        CHECK(parse_one(("[" + t + "]:80").c_str()) == entry(ip, 128, 80, 80));
        CHECK(parse_one(("[" + t + "]:80-90").c_str()) == entry(ip, 128, 80, 90));
        CHECK(parse_one(("[" + t + "/128]:80").c_str()) == entry(ip, 128, 80, 80));
        CHECK(parse_one(("[" + t + "/16]:80-90").c_str()) == entry(ip, 16, 80, 90));
    }
    // sshuttle's regular expression reads this too; the width ends the address unambiguously.
    CHECK(parse_one("fd00::/8:443") == entry("fd00::", 8, 443, 443));
    // Without brackets or a width, every ':' belongs to the address.
    CHECK(parse_one("fd00::1:80") == entry("fd00::1:80", 128));
}

// ---- parse_subnetport: host names ----

TEST_CASE("A host name yields one entry per address, deduplicated in resolver order") {
    FakeResolver fake = make_fake();
    auto r = parse_subnetport("multi.example", fake.get());
    REQUIRE(r);
    CHECK(*r == std::vector<SubnetPort>{entry("10.0.0.2", 32), entry("10.0.0.1", 32),
                                        entry("10.9.9.9", 32)});
    CHECK(fake.asked == std::vector<std::string>{"multi.example"});
}

TEST_CASE("A host name resolving to both families gets each family's full width") {
    FakeResolver fake = make_fake();
    auto r = parse_subnetport("example.com", fake.get());
    REQUIRE(r);
    CHECK(*r == std::vector<SubnetPort>{entry("2606:2800:220:1:248:1893:25c8:1946", 128),
                                        entry("93.184.216.34", 32)});
    auto ported = parse_subnetport("example.com:80-90", fake.get());
    REQUIRE(ported);
    CHECK(*ported ==
          std::vector<SubnetPort>{entry("2606:2800:220:1:248:1893:25c8:1946", 128, 80, 90),
                                  entry("93.184.216.34", 32, 80, 90)});
}

TEST_CASE("A width with a dual-family host name is refused, naming the host") {
    Error e = parse_error("example.com/24");
    CHECK(e.code == Errc::InvalidArgument);
    CHECK(e.message.find("example.com has IPv4 and IPv6 addresses, so the mask of /24") == 0);
}

TEST_CASE("A width with a single-family host name applies to every address") {
    FakeResolver fake = make_fake();
    auto r = parse_subnetport("multi.example/24:443", fake.get());
    REQUIRE(r);
    // 10.0.0.2/24 and 10.0.0.1/24 mask to the same network but stay separate entries, as the
    // resolver returned them: deduplication is of addresses, not of networks.
    CHECK(*r == std::vector<SubnetPort>{entry("10.0.0.0", 24, 443, 443),
                                        entry("10.0.0.0", 24, 443, 443),
                                        entry("10.9.9.0", 24, 443, 443)});
    auto v6 = parse_subnetport("v6only.example/64", fake.get());
    REQUIRE(v6);
    CHECK(*v6 == std::vector<SubnetPort>{entry("fd00::", 64), entry("fd00::", 64)});
    CHECK(parse_error("multi.example/33").message ==
          "Slash in CIDR notation (/33) is not between 0 and 32");
}

TEST_CASE("A *. wildcard host is passed to the resolver verbatim") {
    FakeResolver fake = make_fake();
    auto r = parse_subnetport("*.corp.example:22", fake.get());
    REQUIRE(r);
    CHECK(*r == std::vector<SubnetPort>{entry("172.16.5.4", 32, 22, 22)});
    CHECK(fake.asked == std::vector<std::string>{"*.corp.example"});
    auto wide = parse_subnetport("*.corp.example/16:8000-8080", fake.get());
    REQUIRE(wide);
    CHECK(*wide == std::vector<SubnetPort>{entry("172.16.0.0", 16, 8000, 8080)});
}

TEST_CASE("Host names may hold letters, digits, '-', '_' and a final dot") {
    CHECK(parse_one("under_score.example") == entry("10.7.7.7", 32));
    FakeResolver fake = make_fake();
    fake.names["example.com."] = {addr("192.0.2.1")};
    fake.names["3com.example"] = {addr("192.0.2.3")};
    fake.names["10.example"] = {addr("192.0.2.10")};
    CHECK(parse_one("example.com.", fake) == entry("192.0.2.1", 32));
    CHECK(parse_one("3com.example", fake) == entry("192.0.2.3", 32));
    CHECK(parse_one("10.example", fake) == entry("192.0.2.10", 32));
}

TEST_CASE("An unresolvable host name is NotFound with sshuttle's message") {
    Error e = parse_error("nowhere.invalid:80");
    CHECK(e.code == Errc::NotFound);
    CHECK(e.message == "Unable to resolve address: nowhere.invalid");
    Error empty = parse_error("empty.example");
    CHECK(empty.code == Errc::NotFound);
    CHECK(empty.message == "Unable to resolve address: empty.example");
}

TEST_CASE("SubnetPort::to_string reads back through parse_subnetport") {
    const std::vector<std::pair<SubnetPort, const char*>> cases = {
        {entry("10.0.0.0", 8), "10.0.0.0/8"},
        {entry("10.0.0.0", 8, 80, 90), "10.0.0.0/8:80-90"},
        {entry("192.0.2.1", 32, 22, 22), "192.0.2.1/32:22"},
        {entry("fd00::", 8), "fd00::/8"},
        {entry("fd00::", 8, 80, 80), "[fd00::/8]:80"},
        {entry("::", 0, 1, 1024), "[::/0]:1-1024"},
    };
    for (const auto& [value, text] : cases) {
        CAPTURE(text);
        CHECK(value.to_string() == text);
        CHECK(parse_one(text) == value);
    }
}

// ---- malformed input ----

TEST_CASE("Malformed subnets are refused with a code and a message naming the bad text") {
    struct Bad {
        const char* text;
        Errc code;
        const char* named;  // must appear in the message
    };
    const std::vector<Bad> table = {
        {"", Errc::InvalidArgument, "'' is not a valid address/mask:port format"},
        {"10.0.0.0/", Errc::InvalidArgument, "'10.0.0.0/'"},
        {"10.0.0.0:", Errc::InvalidArgument, "'10.0.0.0:'"},
        {"/8", Errc::InvalidArgument, "'/8'"},
        {":80", Errc::InvalidArgument, "':80'"},
        {"10.0.0.0/8/9", Errc::InvalidArgument, "'10.0.0.0/8/9'"},
        {"10.0.0.0/-1", Errc::InvalidArgument, "'10.0.0.0/-1'"},
        {"10.0.0.0/ 8", Errc::InvalidArgument, "'10.0.0.0/ 8'"},
        {"10.0.0.0/0x8", Errc::InvalidArgument, "'10.0.0.0/0x8'"},
        {"10.0.0.0/99999999999999", Errc::InvalidArgument, "/99999999999999"},
        {"10.0.0.0:70000", Errc::InvalidArgument,
         "port 70000 in '10.0.0.0:70000' is not between 1 and 65535"},
        {"10.0.0.0/8:70000", Errc::InvalidArgument,
         "port 70000 in '10.0.0.0/8:70000' is not between 1 and 65535"},
        {"10.0.0.0/8:0", Errc::InvalidArgument, "port 0 in '10.0.0.0/8:0'"},
        {"10.0.0.0/8:90-80", Errc::InvalidArgument,
         "port range 90-80 in '10.0.0.0/8:90-80' is reversed"},
        {"10.0.0.0/8:80-", Errc::InvalidArgument, "'10.0.0.0/8:80-'"},
        {"10.0.0.0/8:-80", Errc::InvalidArgument, "'10.0.0.0/8:-80'"},
        {"10.0.0.0/8:80-90-100", Errc::InvalidArgument, "'10.0.0.0/8:80-90-100'"},
        {"10.0.0.0/8:http", Errc::InvalidArgument, "'10.0.0.0/8:http'"},
        {"10.0.0.0 ", Errc::InvalidArgument, "'10.0.0.0 '"},
        {" 10.0.0.0", Errc::InvalidArgument, "' 10.0.0.0'"},
        {"10.256.0.0", Errc::InvalidArgument, "'10.256.0.0' is not a valid IPv4 address"},
        {"1.2.3.4.5", Errc::InvalidArgument, "'1.2.3.4.5' is not a valid IPv4 address"},
        {"0x1g.example", Errc::NotFound, "0x1g.example"},
        {"exa mple.com", Errc::InvalidArgument, "'exa mple.com' is not a valid host name"},
        {"host..example", Errc::InvalidArgument, "'host..example'"},
        {"-host.example", Errc::InvalidArgument, "'-host.example'"},
        {"h*st.example", Errc::InvalidArgument, "'h*st.example'"},
        {"*.", Errc::InvalidArgument, "'*.'"},
        {"*", Errc::InvalidArgument, "'*'"},
        {"b\xc3\xbc"
         "cher.example",
         Errc::InvalidArgument, "'b\\xc3\\xbccher.example'"},
        {"evil\nname", Errc::InvalidArgument, "'evil\\x0aname'"},
        {"[10.0.0.1]:80", Errc::InvalidArgument, "'[10.0.0.1]:80'"},
        {"fc00::g", Errc::InvalidArgument, "'fc00::g' is not a valid IPv6 address"},
        {"[fc00::1", Errc::InvalidArgument, "'[fc00::1'"},
        {"fc00::1]:80", Errc::InvalidArgument, "'fc00::1]:80'"},
        {"[fc00::1]80", Errc::InvalidArgument, "'[fc00::1]80'"},
        {"[fc00::1]:", Errc::InvalidArgument, "'[fc00::1]:'"},
        {"[fc00::1]:80:90", Errc::InvalidArgument, "'[fc00::1]:80:90'"},
        {"[fc00::1]:70000", Errc::InvalidArgument, "port 70000 in '[fc00::1]:70000'"},
        {"[fc00::/8]:90-80", Errc::InvalidArgument, "port range 90-80 in '[fc00::/8]:90-80'"},
        {"fe80::1%eth0", Errc::InvalidArgument, "'fe80::1%eth0' is not a valid IPv6 address"},
        {"[1.2.3.4/8]::", Errc::InvalidArgument, "'[1.2.3.4/8]::'"},
        {"host:80:90", Errc::InvalidArgument, "'host:80:90' is not a valid IPv6 address"},
        {"*.fd00::1", Errc::InvalidArgument, "'*.fd00::1' is not a valid IPv6 address"},
    };
    CHECK(table.size() >= 25);
    for (const Bad& bad : table) {
        CAPTURE(bad.text);
        Error e = parse_error(bad.text);
        CHECK(e.code == bad.code);
        CHECK_MESSAGE(e.message.find(bad.named) != std::string::npos, e.message);
    }
}

TEST_CASE("Over-long subnet text and host names are TooLarge") {
    std::string long_text(kMaxSubnetTextBytes + 1, '1');
    Error e = parse_error(long_text);
    CHECK(e.code == Errc::TooLarge);
    CHECK(e.message.find("'1111111111") != std::string::npos);
    CHECK(e.message.size() < 300);  // the text is cut, not repeated whole
    std::string long_name;
    while (long_name.size() <= kMaxHostNameBytes) long_name += "abcdefghi.";
    long_name += "example";
    Error name = parse_error(long_name);
    CHECK(name.code == Errc::TooLarge);
    CHECK(name.message.find("abcdefghi.abcdefghi") != std::string::npos);
    std::string long_label(64, 'a');
    CHECK(parse_error(long_label + ".example").code == Errc::InvalidArgument);
}

// ---- parse_subnet_file ----

TEST_CASE("Subnet files hold one subnet per line, with blank and comment lines skipped") {
    FakeResolver fake = make_fake();
    const char* contents =
        "# exclude list\n"
        "\n"
        "10.0.0.0/8\n"
        "   # indented comment\n"
        "  192.168.0.0/16:80-90  \r\n"
        "\t[fd00::/8]:443\n"
        "multi.example\n"
        "0/0";  // no final newline
    auto r = parse_subnet_file(contents, fake.get());
    REQUIRE(r);
    CHECK(*r == std::vector<SubnetPort>{entry("10.0.0.0", 8), entry("192.168.0.0", 16, 80, 90),
                                        entry("fd00::", 8, 443, 443), entry("10.0.0.2", 32),
                                        entry("10.0.0.1", 32), entry("10.9.9.9", 32),
                                        entry("0.0.0.0", 0)});
    auto empty = parse_subnet_file("", fake.get());
    REQUIRE(empty);
    CHECK(empty->empty());
    auto only_comments = parse_subnet_file("# a\n\n  \n#b\n", fake.get());
    REQUIRE(only_comments);
    CHECK(only_comments->empty());
}

TEST_CASE("Subnet file errors name the line") {
    FakeResolver fake = make_fake();
    auto two = parse_subnet_file("10.0.0.0/8\n# c\n10.1.0.0/16 10.2.0.0/16\n", fake.get());
    REQUIRE_FALSE(two);
    CHECK(two.error().code == Errc::InvalidArgument);
    CHECK(two.error().message.find("line 3: '10.1.0.0/16 10.2.0.0/16' holds more than one") == 0);
    auto bad = parse_subnet_file("10.0.0.0/8\n\n10.0.0.0/33\n", fake.get());
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message == "line 3: Slash in CIDR notation (/33) is not between 0 and 32");
    auto unresolved = parse_subnet_file("nowhere.invalid\n", fake.get());
    REQUIRE_FALSE(unresolved);
    CHECK(unresolved.error().code == Errc::NotFound);
    CHECK(unresolved.error().message == "line 1: Unable to resolve address: nowhere.invalid");
}

TEST_CASE("Subnet files are capped in bytes and entries") {
    FakeResolver fake = make_fake();
    std::string huge(kMaxSubnetFileBytes + 1, '#');
    auto big = parse_subnet_file(huge, fake.get());
    REQUIRE_FALSE(big);
    CHECK(big.error().code == Errc::TooLarge);
    std::string many;
    for (std::size_t i = 0; i <= kMaxSubnetFileEntries; ++i) many += "1\n";
    auto lots = parse_subnet_file(many, fake.get());
    REQUIRE_FALSE(lots);
    CHECK(lots.error().code == Errc::TooLarge);
    CHECK(lots.error().message.find("line " + std::to_string(kMaxSubnetFileEntries + 1)) == 0);
}

// ---- parse_ipport ----

TEST_CASE("parse_ipport: a bare port listens on the IPv4 wildcard") {
    FakeResolver fake = make_fake();
    auto r = parse_ipport("1053", fake.get());
    REQUIRE(r);
    CHECK(r->first == addr("0.0.0.0"));
    CHECK(r->second == 1053);
    CHECK(parse_ipport("0", fake.get())->second == 0);
    CHECK(parse_ipport("65535", fake.get())->second == 65535);
    CHECK(fake.asked.empty());
}

TEST_CASE("parse_ipport reads IPv4 literals, bracketed IPv6 and host names") {
    FakeResolver fake = make_fake();
    const std::vector<std::tuple<const char*, const char*, std::uint16_t>> cases = {
        {"127.0.0.1:1053", "127.0.0.1", 1053},
        {"127.0.0.1", "127.0.0.1", 0},
        {"10.1:53", "10.0.0.1", 53},
        {"0x7f.1:53", "127.0.0.1", 53},
        {"[::1]:53", "::1", 53},
        {"[::1]", "::1", 0},
        {"[::]:0", "::", 0},
        {"[fd00::53]:5353", "fd00::53", 5353},
        {"[127.0.0.1]:80", "127.0.0.1", 80},
        {"localhost:1053", "127.0.0.1", 1053},  // the smallest of ::1 and 127.0.0.1
        {"[localhost]:1053", "127.0.0.1", 1053},
        {"multi.example", "10.0.0.1", 0},
        {"v6only.example:53", "fd00::1", 53},
        {"example.com:8080", "93.184.216.34", 8080},
    };
    for (const auto& [text, ip, port] : cases) {
        CAPTURE(text);
        auto r = parse_ipport(text, fake.get());
        REQUIRE_MESSAGE(r, r.error().message);
        CHECK(r->first == addr(ip));
        CHECK(r->second == port);
    }
}

TEST_CASE("parse_ipport refuses bare IPv6 and other malformed text, naming it") {
    struct Bad {
        const char* text;
        Errc code;
        const char* named;
    };
    const std::vector<Bad> table = {
        {"", Errc::InvalidArgument, "'' is not a valid IP:port format"},
        {"::1", Errc::InvalidArgument, "'::1' is not a valid IP:port format: write an IPv6"},
        {"fd00::1:53", Errc::InvalidArgument, "'fd00::1:53'"},
        {"70000", Errc::InvalidArgument, "port 70000 is not between 0 and 65535"},
        {"127.0.0.1:70000", Errc::InvalidArgument, "port 70000 in '127.0.0.1:70000'"},
        {"127.0.0.1:", Errc::InvalidArgument, "'127.0.0.1:'"},
        {":53", Errc::InvalidArgument, "':53'"},
        {"[::1]:", Errc::InvalidArgument, "'[::1]:'"},
        {"[::1", Errc::InvalidArgument, "'[::1'"},
        {"::1]:53", Errc::InvalidArgument, "'::1]:53'"},
        {"[]:53", Errc::InvalidArgument, "'[]:53'"},
        {"[::1]53", Errc::InvalidArgument, "'[::1]53'"},
        {"[fd00::g]:53", Errc::InvalidArgument, "'fd00::g' in '[fd00::g]:53'"},
        {"10.256.0.0:53", Errc::InvalidArgument, "'10.256.0.0' in '10.256.0.0:53'"},
        {"*.corp.example:53", Errc::InvalidArgument, "'*.corp.example'"},
        {"127.0.0.1:http", Errc::InvalidArgument, "'127.0.0.1:http'"},
        {"nowhere.invalid:53", Errc::NotFound, "Unable to resolve address: nowhere.invalid"},
        {"10.0.0.0/8", Errc::InvalidArgument, "'10.0.0.0/8'"},
    };
    for (const Bad& bad : table) {
        CAPTURE(bad.text);
        FakeResolver fake = make_fake();
        auto r = parse_ipport(bad.text, fake.get());
        REQUIRE_FALSE(r);
        CHECK(r.error().code == bad.code);
        CHECK_MESSAGE(r.error().message.find(bad.named) != std::string::npos, r.error().message);
    }
}

// ---- the production resolver ----

TEST_CASE("resolve_with_getaddrinfo returns numeric hosts without a lookup") {
    // Numeric hosts are converted by getaddrinfo itself: no DNS, no /etc/hosts.
    auto v4 = resolve_with_getaddrinfo("192.0.2.7");
    REQUIRE(v4);
    CHECK(*v4 == std::vector<IpAddress>{addr("192.0.2.7")});
    auto v6 = resolve_with_getaddrinfo("2001:db8::7");
    REQUIRE(v6);
    CHECK(*v6 == std::vector<IpAddress>{addr("2001:db8::7")});
    auto nul = resolve_with_getaddrinfo(std::string_view("192.0.2.7\0evil", 14));
    REQUIRE_FALSE(nul);
    CHECK(nul.error().code == Errc::InvalidArgument);
    CHECK_FALSE(resolve_with_getaddrinfo(""));
}

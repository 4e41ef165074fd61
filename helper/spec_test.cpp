#include "helper/spec.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

using nlohmann::json;
using namespace sshuttle;
using namespace sshuttle::helper;

namespace {

json valid_json() {
    return json::parse(R"j({
        "name": "corp", "method": "nft",
        "includes": ["10.0.0.0/8", "192.168.50.0/24:80-90", "fd00::/8"],
        "excludes": ["10.1.0.0/16"],
        "dns_servers": ["192.168.1.1", "2001:db8::53"],
        "server_addresses": ["192.0.2.7"],
        "tcp_port_v4": 12300, "tcp_port_v6": 12300, "dns_port_v4": 12299, "dns_port_v6": 12299,
        "udp": false, "uid": null, "gid": null})j");
}

struct BadCase {
    const char* what;
    const char* patch;      // merged into the valid spec (JSON merge patch semantics)
    Errc code;
    const char* message;    // must appear in the error message
};

// Each entry changes one thing; every one must be refused with a message naming the field.
const BadCase kBadCases[] = {
    {"bad CIDR address", R"j({"includes":["10.0.0.300/8"]})j", Errc::InvalidArgument, "includes[0]: \"10.0.0.300\" is not an IP address"},
    {"/33", R"j({"includes":["10.0.0.0/8","a","b","10.0.0.0/33"]})j", Errc::InvalidArgument, "includes[1]"},
    {"/33 at index 3", R"j({"includes":["10.0.0.0/8","10.0.0.0/9","10.0.0.0/10","10.0.0.0/33"]})j", Errc::InvalidArgument, "includes[3]: prefix /33 is longer than 32"},
    {"/129", R"j({"includes":["fd00::/129"]})j", Errc::InvalidArgument, "includes[0]: prefix /129 is longer than 128"},
    {"no width", R"j({"includes":["10.0.0.0"]})j", Errc::InvalidArgument, "includes[0]: \"10.0.0.0\" has no prefix width"},
    {"negative width", R"j({"includes":["10.0.0.0/-1"]})j", Errc::InvalidArgument, "includes[0]: prefix width"},
    {"host name", R"j({"includes":["example.com/32"]})j", Errc::InvalidArgument, "includes[0]: \"example.com\" is not an IP address"},
    {"inet_aton form", R"j({"includes":["10.1/16"]})j", Errc::InvalidArgument, "includes[0]"},
    {"port 70000", R"j({"includes":["10.0.0.0/8:70000"]})j", Errc::InvalidArgument, "includes[0]: port 70000 is not between 1 and 65535"},
    {"port 0", R"j({"includes":["10.0.0.0/8:0"]})j", Errc::InvalidArgument, "includes[0]: port 0 is not between 1 and 65535"},
    {"reversed range", R"j({"includes":["10.0.0.0/8:90-80"]})j", Errc::InvalidArgument, "includes[0]: port range \"90-80\" ends before it starts"},
    {"port text", R"j({"excludes":["10.0.0.0/8:http"]})j", Errc::InvalidArgument, "excludes[0]: port \"http\" is not a number"},
    {"unbalanced bracket", R"j({"includes":["[fd00::/8:80"]})j", Errc::InvalidArgument, "includes[0]"},
    {"brackets on IPv4", R"j({"includes":["[10.0.0.0/8]:80"]})j", Errc::InvalidArgument, "brackets are for IPv6 only"},
    {"empty port", R"j({"includes":["10.0.0.0/8:"]})j", Errc::InvalidArgument, "includes[0]"},
    {"subnet too long", R"j({"includes":["10.0.0.0/8:11111111111111111111111111111111111111111111111111111111111111111"]})j", Errc::TooLarge, "includes[0]: longer than 64 bytes"},
    {"subnet not a string", R"j({"includes":[10]})j", Errc::InvalidArgument, "includes[0]: expected a string, got number"},
    {"includes not an array", R"j({"includes":"10.0.0.0/8"})j", Errc::InvalidArgument, "includes: expected an array, got string"},
    {"bad DNS server", R"j({"dns_servers":["192.168.1"]})j", Errc::InvalidArgument, "dns_servers[0]: \"192.168.1\" is not an IP address"},
    {"DNS server with width", R"j({"dns_servers":["192.168.1.1/32"]})j", Errc::InvalidArgument, "dns_servers[0]"},
    {"unspecified DNS server", R"j({"dns_servers":["0.0.0.0"]})j", Errc::InvalidArgument, "dns_servers[0]: 0.0.0.0 is unspecified"},
    {"DNS server object", R"j({"dns_servers":[{"ip":"1.1.1.1"}]})j", Errc::InvalidArgument, "dns_servers[0]: expected a string, got object"},
    {"bad server address", R"j({"server_addresses":["::g"]})j", Errc::InvalidArgument, "server_addresses[0]"},
    {"tcp port 70000", R"j({"tcp_port_v4":70000})j", Errc::InvalidArgument, "tcp_port_v4: 70000 is larger than 65535"},
    {"negative port", R"j({"dns_port_v4":-1})j", Errc::InvalidArgument, "dns_port_v4: -1 is negative"},
    {"port as string", R"j({"tcp_port_v6":"12300"})j", Errc::InvalidArgument, "tcp_port_v6: expected an integer, got string"},
    {"port as float", R"j({"tcp_port_v4":12300.5})j", Errc::InvalidArgument, "tcp_port_v4: expected an integer, got number"},
    {"unknown method", R"j({"method":"ipfw"})j", Errc::InvalidArgument, "method: \"ipfw\" is not one of nft, nat, tproxy, pf"},
    {"method as number", R"j({"method":1})j", Errc::InvalidArgument, "method: expected a string, got number"},
    {"name with ;", R"j({"name":"a;b"})j", Errc::InvalidArgument, "name: \"a;b\" does not match"},
    {"nft injection in name", R"j({"name":"x} flush ruleset"})j", Errc::InvalidArgument, "name: \"x} flush ruleset\""},
    {"shell in name", R"j({"name":"$(id)"})j", Errc::InvalidArgument, "name: \"$(id)\""},
    {"uppercase name", R"j({"name":"Corp"})j", Errc::InvalidArgument, "name: \"Corp\""},
    {"33-char name", R"j({"name":"abcdefghijabcdefghijabcdefghijabc"})j", Errc::InvalidArgument, "name:"},
    {"empty name", R"j({"name":""})j", Errc::InvalidArgument, "name: \"\" does not match"},
    {"newline in name", R"j({"name":"a\nb"})j", Errc::InvalidArgument, "name: \"a\\x0ab\""},
    {"space in name", R"j({"name":"a b"})j", Errc::InvalidArgument, "name: \"a b\""},
    {"dot in name", R"j({"name":"../x"})j", Errc::InvalidArgument, "name: \"../x\""},
    {"name as number", R"j({"name":7})j", Errc::InvalidArgument, "name: expected a string, got number"},
    {"missing name", R"j({"name":null})j", Errc::InvalidArgument, "name: missing"},
    {"unknown field", R"j({"rules":"flush ruleset"})j", Errc::InvalidArgument, "\"rules\": unknown field"},
    {"udp without tproxy", R"j({"udp":true})j", Errc::InvalidArgument, "udp: UDP capture needs method tproxy, not nft"},
    {"udp as string", R"j({"udp":"yes"})j", Errc::InvalidArgument, "udp: expected a boolean, got string"},
    {"negative uid", R"j({"uid":-5})j", Errc::InvalidArgument, "uid: -5 is negative"},
    {"uid -1 as unsigned", R"j({"uid":4294967295})j", Errc::InvalidArgument, "uid: 4294967295 is larger than 4294967294"},
    {"gid as string", R"j({"gid":"wheel"})j", Errc::InvalidArgument, "gid: expected an integer, got string"},
    {"uid with pf", R"j({"method":"pf","uid":1000})j", Errc::InvalidArgument, "uid: pf cannot restrict by user or group"},
    {"IPv4 include without port", R"j({"tcp_port_v4":0})j", Errc::InvalidArgument, "includes[0]: IPv4 subnet but tcp_port_v4 is 0"},
    {"IPv6 DNS without port", R"j({"dns_port_v6":0})j", Errc::InvalidArgument, "dns_servers[1]: IPv6 server but dns_port_v6 is 0"},
    {"nothing to capture", R"j({"includes":[],"dns_servers":[]})j", Errc::InvalidArgument, "includes: nothing to capture"},
};

json patched(const char* patch) {
    json spec = valid_json();
    json p = json::parse(patch);
    // A null in the patch means "remove the field" (merge patch), which is how "missing" is made.
    spec.merge_patch(p);
    return spec;
}

}  // namespace

TEST_CASE("the base spec of the malformed table is valid") {
    auto spec = spec_from_json(valid_json());
    REQUIRE_MESSAGE(spec.has_value(), spec.error().message);
    CHECK(spec->includes.size() == 3);
    CHECK(spec->includes[1].ports == PortRange{80, 90});
    CHECK(spec->dns_servers[1].to_string() == "2001:db8::53");
}

TEST_CASE("every malformed spec is refused with an error naming the field") {
    CHECK(std::size(kBadCases) >= 35);
    for (const auto& bad : kBadCases) {
        CAPTURE(bad.what);
        auto spec = spec_from_json(patched(bad.patch));
        REQUIRE_FALSE(spec.has_value());
        CHECK(spec.error().code == bad.code);
        CHECK_MESSAGE(spec.error().message.find(bad.message) != std::string::npos,
                      spec.error().message);
    }
}

TEST_CASE("a 100,000-entry list is refused as too large before anything is parsed") {
    json spec = valid_json();
    spec["excludes"] = json::array();
    for (int i = 0; i < 100000; ++i) spec["excludes"].push_back("10.0.0.0/8");
    auto parsed = spec_from_json(spec);
    REQUIRE_FALSE(parsed.has_value());
    CHECK(parsed.error().code == Errc::TooLarge);
    CHECK(parsed.error().message == "excludes: 100000 entries, at most 4096");

    json dns = valid_json();
    dns["dns_servers"] = json::array();
    for (int i = 0; i < 65; ++i) dns["dns_servers"].push_back("10.0.0.1");
    auto parsed_dns = spec_from_json(dns);
    REQUIRE_FALSE(parsed_dns.has_value());
    CHECK(parsed_dns.error().message == "dns_servers: 65 entries, at most 64");
}

TEST_CASE("a spec that is not an object is refused") {
    for (const char* text : {"[]", "\"corp\"", "null", "42"}) {
        auto spec = spec_from_json(json::parse(text));
        REQUIRE_FALSE(spec.has_value());
        CHECK(spec.error().message.starts_with("spec: expected an object"));
    }
}

TEST_CASE("validate checks specs built in code, not only parsed ones") {
    auto spec = spec_from_json(valid_json()).value();
    CHECK(validate(spec).has_value());
    auto bad = spec;
    bad.includes[0].subnet.width = 40;  // bypasses Subnet's clamping
    CHECK(validate(bad).error().message == "includes[0]: prefix /40 is longer than 32");
    bad = spec;
    bad.excludes[0].ports = PortRange{90, 80};
    CHECK(validate(bad).error().message.starts_with("excludes[0]: port range"));
    bad = spec;
    bad.name = "x} flush ruleset";
    CHECK_FALSE(validate(bad).has_value());
    bad = spec;
    bad.includes.resize(kMaxSubnetsPerSpec + 1, spec.includes[0]);
    CHECK(validate(bad).error().code == Errc::TooLarge);
    bad = spec;
    bad.method = Method::Tproxy;
    bad.udp = true;
    CHECK(validate(bad).has_value());
}

TEST_CASE("tunnel names: ^[a-z0-9_-]{1,32}$") {
    CHECK(valid_tunnel_name("corp"));
    CHECK(valid_tunnel_name("a-b_0"));
    CHECK(valid_tunnel_name(std::string(32, 'x')));
    CHECK_FALSE(valid_tunnel_name(std::string(33, 'x')));
    CHECK_FALSE(valid_tunnel_name(""));
    CHECK_FALSE(valid_tunnel_name("A"));
    CHECK_FALSE(valid_tunnel_name(std::string("a\0b", 3)));
    CHECK_FALSE(valid_tunnel_name("caf\xc3\xa9"));
}

TEST_CASE("methods round-trip through their names") {
    for (Method m : {Method::Nft, Method::Nat, Method::Tproxy, Method::Pf})
        CHECK(parse_method(method_name(m)).value() == m);
    CHECK_FALSE(parse_method("NFT").has_value());
    CHECK_FALSE(parse_method("").has_value());
}

TEST_CASE("spec_to_json and spec_from_json round-trip") {
    auto spec = spec_from_json(valid_json()).value();
    spec.uid = 1000;
    auto again = spec_from_json(spec_to_json(spec));
    REQUIRE(again.has_value());
    CHECK(*again == spec);
    CHECK(spec_to_json(spec)["includes"][1] == "192.168.50.0/24:80-90");
    CHECK(spec_to_json(spec)["gid"].is_null());
}

TEST_CASE("bracketed IPv6 subnets with ports parse; host bits are masked") {
    json j = valid_json();
    j["includes"] = {"[fd00::/8]:80-90", "10.1.2.3/8"};
    auto spec = spec_from_json(j).value();
    CHECK(spec.includes[0].subnet.to_string() == "fd00::/8");
    CHECK(spec.includes[0].ports == PortRange{80, 90});
    CHECK(spec.includes[1].subnet.to_string() == "10.0.0.0/8");
}

TEST_CASE("ordered_rules follows sshuttle: narrow ports, then long prefixes, excludes first") {
    TunnelSpec spec;
    auto sp = [](const char* net, std::uint16_t a, std::uint16_t b) {
        return SubnetPort{Subnet::parse(net).value(), PortRange{a, b}};
    };
    spec.includes = {sp("10.0.0.0/8", 0, 0), sp("192.168.50.0/24", 80, 90),
                     sp("10.2.0.0/16", 443, 443), sp("10.1.0.0/16", 0, 0)};
    spec.excludes = {sp("10.1.0.0/16", 0, 0), sp("127.0.0.1/32", 0, 0)};
    std::vector<std::string> got;
    for (const auto& rule : ordered_rules(spec))
        got.push_back((rule.exclude ? "-" : "+") + rule.target.to_string());
    CHECK(got == std::vector<std::string>{"+10.2.0.0/16:443", "+192.168.50.0/24:80-90",
                                          "-127.0.0.1/32", "-10.1.0.0/16", "+10.1.0.0/16",
                                          "+10.0.0.0/8"});
}

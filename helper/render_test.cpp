// Golden-file tests of the pure renderers. Every byte of helper/testdata/*.golden is reviewed
// text; to regenerate after an intended change: UPDATE_GOLDEN=1 build/helper/helper_rules_test
// then read the diff (git diff helper/testdata) before committing it.
#include "helper/render.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

using nlohmann::json;
using namespace sshuttle;
using namespace sshuttle::helper;

namespace {

std::string golden_path(const std::string& name) {
    return std::string(SSHUTTLE_SOURCE_ROOT) + "/helper/testdata/" + name + ".golden";
}

void check_golden(const std::string& name, const std::string& actual) {
    const std::string path = golden_path(name);
    const char* update = std::getenv("UPDATE_GOLDEN");
    if (update != nullptr && std::string(update) == "1") {
        std::ofstream(path, std::ios::binary) << actual;
        MESSAGE("rewrote " << path);
    }
    std::ifstream in(path, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "missing golden file " << path << " (UPDATE_GOLDEN=1 writes it)");
    std::stringstream expected;
    expected << in.rdbuf();
    CAPTURE(name);
    CHECK(actual == expected.str());
}

// Reference §3.3's typical call, plus the automatic excludes sshuttle adds and a server address.
TunnelSpec typical(Method method) {
    auto spec = spec_from_json(json{
        {"name", "corp"},
        {"method", std::string(method_name(method))},
        {"includes", {"10.0.0.0/8", "192.168.50.0/24:80-90", "fd00::/8"}},
        {"excludes", {"10.1.0.0/16", "127.0.0.1/32", "::1/128"}},
        {"dns_servers", {"192.168.1.1", "2001:db8::53"}},
        {"server_addresses", {"192.0.2.7", "2001:db8::7"}},
        {"tcp_port_v4", 12300},
        {"tcp_port_v6", 12300},
        {"dns_port_v4", 12299},
        {"dns_port_v6", 12299},
        {"udp", method == Method::Tproxy}});
    REQUIRE_MESSAGE(spec.has_value(), spec.error().message);
    return *spec;
}

TunnelSpec single_port(Method method) {
    auto spec = spec_from_json(json{{"name", "one"},
                                    {"method", std::string(method_name(method))},
                                    {"includes", {"10.0.0.5/32:22", "[fd00::/64]:443"}},
                                    {"tcp_port_v4", 12300},
                                    {"tcp_port_v6", 12301}});
    REQUIRE_MESSAGE(spec.has_value(), spec.error().message);
    return *spec;
}

TunnelSpec v4_only(Method method) {
    auto spec = spec_from_json(json{{"name", "v4"},
                                    {"method", std::string(method_name(method))},
                                    {"includes", {"0.0.0.0/0"}},
                                    {"excludes", {"127.0.0.1/32", "::1/128"}},
                                    {"dns_servers", {"10.0.0.53"}},
                                    {"server_addresses", {"203.0.113.9"}},
                                    {"tcp_port_v4", 12300},
                                    {"dns_port_v4", 12299}});
    REQUIRE_MESSAGE(spec.has_value(), spec.error().message);
    return *spec;
}

TunnelSpec by_owner(Method method) {
    auto spec = spec_from_json(json{{"name", "mine"},
                                    {"method", std::string(method_name(method))},
                                    {"includes", {"10.0.0.0/8", "fd00::/8"}},
                                    {"dns_servers", {"10.0.0.53"}},
                                    {"tcp_port_v4", 12300},
                                    {"tcp_port_v6", 12300},
                                    {"dns_port_v4", 12299},
                                    {"uid", 1000},
                                    {"gid", 100}});
    REQUIRE_MESSAGE(spec.has_value(), spec.error().message);
    return *spec;
}

std::string pf_text(const TunnelSpec& spec) {
    std::string out;
    for (const auto& anchor : render_pf(spec)) out += "# anchor " + anchor.name + "\n" + anchor.rules;
    return out;
}

}  // namespace

TEST_CASE("nft: the typical call") { check_golden("nft_typical", render_nft(typical(Method::Nft))); }
TEST_CASE("nft: single ports") { check_golden("nft_single_port", render_nft(single_port(Method::Nft))); }
TEST_CASE("nft: IPv4 only") { check_golden("nft_v4_only", render_nft(v4_only(Method::Nft))); }
TEST_CASE("nft: uid/gid restriction only in the output path") {
    std::string text = render_nft(by_owner(Method::Nft));
    check_golden("nft_uid_gid", text);
    CHECK(text.find("hook prerouting") == std::string::npos);
}

TEST_CASE("tproxy: the typical call with UDP") {
    check_golden("tproxy_typical_udp", render_tproxy(typical(Method::Tproxy)));
}
TEST_CASE("tproxy: TCP only, single ports") {
    check_golden("tproxy_single_port", render_tproxy(single_port(Method::Tproxy)));
}
TEST_CASE("tproxy: uid/gid restriction") {
    check_golden("tproxy_uid_gid", render_tproxy(by_owner(Method::Tproxy)));
}

TEST_CASE("nat: the typical call, per family") {
    auto spec = typical(Method::Nat);
    check_golden("nat_typical_v4", render_nat(spec, Family::V4));
    check_golden("nat_typical_v6", render_nat(spec, Family::V6));
}
TEST_CASE("nat: single ports") {
    check_golden("nat_single_port_v4", render_nat(single_port(Method::Nat), Family::V4));
}
TEST_CASE("nat: IPv4 only renders nothing for IPv6") {
    auto spec = v4_only(Method::Nat);
    check_golden("nat_v4_only_v4", render_nat(spec, Family::V4));
    CHECK(render_nat(spec, Family::V6).empty());
}
TEST_CASE("nat: uid/gid restriction jumps from OUTPUT only, with an owner match") {
    check_golden("nat_uid_gid_v4", render_nat(by_owner(Method::Nat), Family::V4));
}

TEST_CASE("pf: the typical call") { check_golden("pf_typical", pf_text(typical(Method::Pf))); }
TEST_CASE("pf: single ports") { check_golden("pf_single_port", pf_text(single_port(Method::Pf))); }

TEST_CASE("every renderer is deterministic and names only the tunnel's own objects") {
    auto spec = typical(Method::Nft);
    CHECK(render_nft(spec) == render_nft(spec));
    CHECK(render_nft(spec).starts_with("create table inet sshuttle_corp { flags owner; }\n"
                                       "table inet sshuttle_corp {\n\tflags owner;\n"));
    CHECK(render_nft_delete("corp") == "delete table inet sshuttle_corp\n");
    CHECK(render_nft_table(typical(Method::Tproxy)) == render_tproxy(typical(Method::Tproxy)));
}

TEST_CASE("nat chain names fit in 28 characters and never collide across the two forms") {
    CHECK(nat_chain_name("corp") == "sshuttle_corp");
    CHECK(nat_chain_name(std::string(18, 'a')) == "sshuttle_" + std::string(18, 'a'));
    std::string long_name = "abcdefghijklmnopqrstuvwxyz012345";
    std::string chain = nat_chain_name(long_name);
    CHECK(chain.size() == kMaxNatChainBytes);
    CHECK(chain.starts_with("sshuttle_abcdefghij-"));
    CHECK(chain == nat_chain_name(long_name));  // deterministic
    CHECK(chain != nat_chain_name("abcdefghijklmnopqrstuvwxyz012346"));
    for (std::size_t n = 1; n <= kMaxTunnelNameBytes; ++n) {
        std::string name(n, 'z');
        auto c = nat_chain_name(name);
        CHECK(c.size() <= kMaxNatChainBytes);
        CHECK((c.size() == kMaxNatChainBytes) == (n > 18));
    }
}

TEST_CASE("nat removal deletes exactly the jumps to our chain, then the chain") {
    const std::string save =
        "# Generated by iptables-save v1.8.9 (nf_tables) on Sat Nov 21 10:36:43 2026\n"
        "*nat\n"
        ":PREROUTING ACCEPT [0:0]\n"
        ":OUTPUT ACCEPT [0:0]\n"
        ":sshuttle_corp - [0:0]\n"
        ":sshuttle_corp2 - [0:0]\n"
        ":sshuttle-12300 - [0:0]\n"
        "-A PREROUTING -j sshuttle_corp\n"
        "-A PREROUTING -j sshuttle_corp2\n"
        "-A OUTPUT -m owner --uid-owner 1000 -j sshuttle_corp\n"
        "-A OUTPUT -j sshuttle-12300\n"
        "-A sshuttle_corp -d 10.0.0.0/8 -p tcp -j REDIRECT --to-ports 12300\n"
        "COMMIT\n";
    CHECK(render_nat_remove(save, "sshuttle_corp") ==
          "*nat\n"
          "-D PREROUTING -j sshuttle_corp\n"
          "-D OUTPUT -m owner --uid-owner 1000 -j sshuttle_corp\n"
          "-F sshuttle_corp\n"
          "-X sshuttle_corp\n"
          "COMMIT\n");
    CHECK(render_nat_remove(save, "sshuttle_gone").empty());
    // upstream sshuttle's chain (hyphen) is not ours and is never swept.
    CHECK(nat_chains_in(save) == std::vector<std::string>{"sshuttle_corp", "sshuttle_corp2"});
    CHECK(nat_chains_in("*filter\n:sshuttle_x - [0:0]\nCOMMIT\n").empty());
}

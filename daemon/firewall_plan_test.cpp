#include "daemon/firewall_plan.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>

using namespace sshuttle;
using namespace sshuttle::daemon;

namespace {

IpAddress ip(const char* text) { return IpAddress::parse(text).value(); }

SubnetPort net(const char* text, PortRange ports = {}) {
    return SubnetPort{Subnet::parse(text).value(), ports};
}

FirewallInputs basic() {
    FirewallInputs in;
    in.name = "corp";
    in.includes = {net("10.0.0.0/8")};
    in.listen_ips = {ip("127.0.0.1"), ip("::1")};
    in.tcp_port_v4 = 12300;
    in.tcp_port_v6 = 12300;
    in.dns_port_v4 = 12299;
    in.dns_port_v6 = 12299;
    return in;
}

bool has_exclude(const helper::TunnelSpec& spec, const char* subnet) {
    const SubnetPort wanted = net(subnet);
    return std::find(spec.excludes.begin(), spec.excludes.end(), wanted) != spec.excludes.end();
}

}  // namespace

TEST_CASE("resolv.conf: nameserver lines in order, duplicates and junk ignored") {
    const auto servers = resolv_conf_nameservers(
        "# comment\nsearch lab.test\nnameserver 10.0.0.53\n  nameserver\t10.0.0.54  # x\n"
        "nameserver fe80::1%eth0\nnameserver 10.0.0.53\nnameservers 1.2.3.4\nnameserver bogus\n"
        "options ndots:1\nnameserver");
    REQUIRE(servers.size() == 3);
    CHECK(servers[0] == ip("10.0.0.53"));
    CHECK(servers[1] == ip("10.0.0.54"));
    CHECK(servers[2] == ip("fe80::1"));
    CHECK(resolv_conf_nameservers("").empty());
}

TEST_CASE("plan: listen addresses and the ssh server are excluded automatically") {
    FirewallInputs in = basic();
    in.server_addresses = {ip("10.1.2.3"), ip("10.1.2.3"), ip("fd00::7")};
    auto plan = plan_firewall(in);
    REQUIRE(plan);
    CHECK(has_exclude(plan->spec, "127.0.0.1/32"));
    CHECK(has_exclude(plan->spec, "::1/128"));
    REQUIRE(plan->spec.server_addresses.size() == 2);
    CHECK(plan->spec.includes.size() == 1);
    CHECK(plan->spec.dns_servers.empty());
    CHECK(plan->spec.dns_port_v4 == 0);
}

TEST_CASE("plan: a listen address that is itself an include is not excluded") {
    FirewallInputs in = basic();
    in.includes.push_back(net("127.0.0.1/32"));
    auto plan = plan_firewall(in);
    REQUIRE(plan);
    CHECK_FALSE(has_exclude(plan->spec, "127.0.0.1/32"));
    CHECK(has_exclude(plan->spec, "::1/128"));
}

TEST_CASE("plan: --ns-hosts first, then resolv.conf's servers with --dns") {
    FirewallInputs in = basic();
    in.dns = true;
    in.ns_hosts = {ip("10.9.9.9")};
    in.resolv_conf = "nameserver 10.0.0.53\nnameserver 10.9.9.9\n";
    auto plan = plan_firewall(in);
    REQUIRE(plan);
    REQUIRE(plan->spec.dns_servers.size() == 2);
    CHECK(plan->spec.dns_servers[0] == ip("10.9.9.9"));
    CHECK(plan->spec.dns_servers[1] == ip("10.0.0.53"));
    CHECK(plan->spec.dns_port_v4 == 12299);
    CHECK(plan->spec.dns_port_v6 == 0);  // no IPv6 server: no IPv6 DNS capture
}

TEST_CASE("plan: --dns with an empty resolv.conf is an error that suggests --ns-hosts") {
    FirewallInputs in = basic();
    in.dns = true;
    auto plan = plan_firewall(in);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().code == Errc::InvalidArgument);
    CHECK(plan.error().message.find("--ns-hosts") != std::string::npos);
}

TEST_CASE("plan: DNS only (no subnet) is allowed, nothing at all is not") {
    FirewallInputs in = basic();
    in.includes.clear();
    in.ns_hosts = {ip("10.0.0.53")};
    CHECK(plan_firewall(in));
    in.ns_hosts.clear();
    auto plan = plan_firewall(in);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().message.find("nothing to capture") != std::string::npos);
}

TEST_CASE("plan: IPv6 off drops IPv6 includes, excludes and DNS servers with warnings") {
    FirewallInputs in = basic();
    in.tcp_port_v6 = 0;
    in.dns_port_v6 = 0;
    in.includes.push_back(net("fd00::/8"));
    in.excludes.push_back(net("fd00:1::/32"));
    in.ns_hosts = {ip("fd00::53"), ip("10.0.0.53")};
    auto plan = plan_firewall(in);
    REQUIRE(plan);
    CHECK(plan->spec.includes.size() == 1);
    CHECK(std::none_of(plan->spec.excludes.begin(), plan->spec.excludes.end(),
                       [](const SubnetPort& s) { return s.subnet.family() == Family::V6; }));
    CHECK(plan->spec.dns_servers.size() == 1);
    CHECK(plan->warnings.size() == 2);

    in.ns_hosts = {ip("fd00::53")};
    auto only_v6 = plan_firewall(in);
    REQUIRE_FALSE(only_v6);
    CHECK(only_v6.error().message.find("IPv6") != std::string::npos);
}

TEST_CASE("plan: features the method lacks are errors naming the method") {
    FirewallInputs in = basic();
    in.udp = true;
    auto udp = plan_firewall(in);
    REQUIRE_FALSE(udp);
    CHECK(udp.error().message.find("nft") != std::string::npos);

    in.udp = false;
    in.method = helper::Method::Tproxy;
    in.uid = 1000;
    auto user = plan_firewall(in);
    REQUIRE_FALSE(user);
    CHECK(user.error().message.find("tproxy") != std::string::npos);

    in.method = helper::Method::Nat;
    CHECK(plan_firewall(in));
}

TEST_CASE("plan: a bad tunnel name is refused by the spec's validation") {
    FirewallInputs in = basic();
    in.name = "Corp;flush ruleset";
    auto plan = plan_firewall(in);
    REQUIRE_FALSE(plan);
    CHECK(plan.error().code == Errc::InvalidArgument);
}

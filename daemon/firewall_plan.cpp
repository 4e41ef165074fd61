#include "daemon/firewall_plan.hpp"

#include <algorithm>
#include <utility>

namespace sshuttle::daemon {
namespace {

bool is_v6(const SubnetPort& s) { return s.subnet.family() == Family::V6; }

Subnet host_subnet(const IpAddress& ip) { return Subnet(ip, ip.is_v4() ? 32 : 128); }

// An include naming exactly this address (any port range) keeps it capturable: sshuttle adds
// the listen address as an exclude only "unless that exact IP is itself an include".
bool included_exactly(const std::vector<SubnetPort>& includes, const IpAddress& ip) {
    const Subnet host = host_subnet(ip);
    return std::any_of(includes.begin(), includes.end(),
                       [&](const SubnetPort& s) { return s.subnet == host; });
}

void add_exclude(std::vector<SubnetPort>& excludes, const IpAddress& ip) {
    SubnetPort entry{host_subnet(ip), PortRange{}};
    if (std::find(excludes.begin(), excludes.end(), entry) == excludes.end()) {
        excludes.push_back(entry);
    }
}

bool method_has_udp(helper::Method m) { return m == helper::Method::Tproxy; }
bool method_has_owner_match(helper::Method m) {
    return m == helper::Method::Nft || m == helper::Method::Nat;
}

std::string_view trim(std::string_view s) {
    const auto first = s.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) return {};
    const auto last = s.find_last_not_of(" \t\r");
    return s.substr(first, last - first + 1);
}

}  // namespace

std::vector<IpAddress> resolv_conf_nameservers(std::string_view text) {
    std::vector<IpAddress> servers;
    while (!text.empty()) {
        const auto eol = text.find('\n');
        std::string_view line = trim(text.substr(0, eol));
        text = eol == std::string_view::npos ? std::string_view{} : text.substr(eol + 1);
        constexpr std::string_view kKeyword = "nameserver";
        if (line.substr(0, kKeyword.size()) != kKeyword || line.size() == kKeyword.size() ||
            (line[kKeyword.size()] != ' ' && line[kKeyword.size()] != '\t')) {
            continue;
        }
        std::string_view value = trim(line.substr(kKeyword.size()));
        value = value.substr(0, value.find_first_of(" \t#;"));
        value = value.substr(0, value.find('%'));
        auto ip = IpAddress::parse(value);
        if (ip && std::find(servers.begin(), servers.end(), *ip) == servers.end()) {
            servers.push_back(*ip);
        }
    }
    return servers;
}

Result<FirewallPlan> plan_firewall(const FirewallInputs& in) {
    FirewallPlan plan;
    helper::TunnelSpec& spec = plan.spec;
    spec.name = in.name;
    spec.method = in.method;
    spec.tcp_port_v4 = in.tcp_port_v4;
    spec.tcp_port_v6 = in.tcp_port_v6;
    const bool ipv6 = in.tcp_port_v6 != 0;

    if (in.udp && !method_has_udp(in.method)) {
        return Error(Errc::InvalidArgument,
                     "UDP is not supported with method " +
                         std::string(helper::method_name(in.method)) + " (use --method tproxy)");
    }
    if ((in.uid || in.gid) && !method_has_owner_match(in.method)) {
        return Error(Errc::InvalidArgument,
                     "--user/--group are not supported with method " +
                         std::string(helper::method_name(in.method)) + " (use nft or nat)");
    }
    spec.udp = in.udp;
    spec.uid = in.uid;
    spec.gid = in.gid;

    // DNS: --ns-hosts first, then resolv.conf's servers with --dns (sshuttle's order).
    std::vector<IpAddress> dns = in.ns_hosts;
    if (in.dns) {
        for (const IpAddress& ip : resolv_conf_nameservers(in.resolv_conf)) {
            if (std::find(dns.begin(), dns.end(), ip) == dns.end()) dns.push_back(ip);
        }
        if (dns.empty()) {
            return Error(Errc::InvalidArgument,
                         "--dns: no nameserver found in resolv.conf; name one with --ns-hosts");
        }
    }
    for (const IpAddress& ip : dns) {
        if (ip.is_v6() && !ipv6) {
            plan.warnings.push_back("IPv6 is off: not capturing DNS server " + ip.to_string());
            continue;
        }
        spec.dns_servers.push_back(ip);
    }
    if (!dns.empty() && spec.dns_servers.empty()) {
        return Error(Errc::InvalidArgument,
                     "every DNS server to capture is IPv6 but IPv6 is off");
    }
    if (!spec.dns_servers.empty()) {
        const bool any_v4 = std::any_of(spec.dns_servers.begin(), spec.dns_servers.end(),
                                        [](const IpAddress& ip) { return ip.is_v4(); });
        const bool any_v6 = std::any_of(spec.dns_servers.begin(), spec.dns_servers.end(),
                                        [](const IpAddress& ip) { return ip.is_v6(); });
        if ((any_v4 && in.dns_port_v4 == 0) || (any_v6 && in.dns_port_v6 == 0)) {
            return Error(Errc::Internal, "DNS servers to capture but no DNS listener port");
        }
        spec.dns_port_v4 = any_v4 ? in.dns_port_v4 : 0;
        spec.dns_port_v6 = any_v6 ? in.dns_port_v6 : 0;
    }

    for (const SubnetPort& s : in.includes) {
        if (is_v6(s) && !ipv6) {
            plan.warnings.push_back("IPv6 is off: not capturing " + s.to_string());
            continue;
        }
        if (!is_v6(s) && in.tcp_port_v4 == 0) {
            plan.warnings.push_back("no IPv4 listener: not capturing " + s.to_string());
            continue;
        }
        spec.includes.push_back(s);
    }
    for (const SubnetPort& s : in.excludes) {
        if (is_v6(s) && !ipv6) continue;  // silently, as sshuttle
        spec.excludes.push_back(s);
    }
    if (spec.includes.empty() && spec.dns_servers.empty()) {
        return Error(Errc::InvalidArgument,
                     "nothing to capture: give at least one subnet (or --dns / --ns-hosts)");
    }

    for (const IpAddress& ip : in.listen_ips) {
        if (ip.is_v6() && !ipv6) continue;
        if (!included_exactly(in.includes, ip)) add_exclude(spec.excludes, ip);
    }
    for (const IpAddress& ip : in.server_addresses) {
        if (ip.is_v6() && !ipv6) continue;
        if (std::find(spec.server_addresses.begin(), spec.server_addresses.end(), ip) ==
            spec.server_addresses.end()) {
            spec.server_addresses.push_back(ip);
        }
    }

    if (auto valid = helper::validate(spec); !valid) {
        return std::move(valid).error();
    }
    return plan;
}

}  // namespace sshuttle::daemon

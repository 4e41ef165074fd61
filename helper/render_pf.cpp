// pf method: the anchor ruleset sshuttle loads with `pfctl -a <anchor> -f /dev/stdin`
// (macOS/FreeBSD flavour, reference §3.6). pf filter rules are last-match, so the order is
// sshuttle's subnet_weight ascending: wide before narrow, includes before excludes.
#include <algorithm>

#include "helper/render.hpp"

namespace sshuttle::helper {
namespace {

std::string pf_ports(const PortRange& ports) {
    if (ports.all()) return "";
    if (ports.first == ports.last) return " port " + std::to_string(ports.first);
    return " port " + std::to_string(ports.first) + ":" + std::to_string(ports.last);
}

std::string render_family(const TunnelSpec& spec, Family family) {
    const bool v4 = family == Family::V4;
    const char* inet = v4 ? "inet" : "inet6";
    const char* lo_addr = v4 ? "127.0.0.1" : "::1";
    const std::uint16_t tcp_port = v4 ? spec.tcp_port_v4 : spec.tcp_port_v6;
    const std::uint16_t dns_port = v4 ? spec.dns_port_v4 : spec.dns_port_v6;

    std::vector<OrderedRule> rules;
    for (const auto& rule : ordered_rules(spec))
        if (rule.target.subnet.family() == family) rules.push_back(rule);
    // Ascending weight; ties keep the order sshuttle's stable ascending sort gives them.
    auto span = [](const PortRange& p) { return p.all() ? 65536 : p.last - p.first; };
    std::stable_sort(rules.begin(), rules.end(), [&](const OrderedRule& a, const OrderedRule& b) {
        int sa = span(a.target.ports), sb = span(b.target.ports);
        if (sa != sb) return sa > sb;
        if (a.target.subnet.width != b.target.subnet.width)
            return a.target.subnet.width < b.target.subnet.width;
        return !a.exclude && b.exclude;
    });

    std::vector<std::string> dns;
    for (const auto& server : spec.dns_servers)
        if (server.family() == family) dns.push_back(server.to_string());

    std::string out;
    if (!dns.empty()) {
        out += "table <dns_servers> {";
        for (std::size_t i = 0; i < dns.size(); ++i) out += (i ? "," : "") + dns[i];
        out += "}\n";
    }
    if (tcp_port != 0)
        for (const auto& rule : rules)
            if (!rule.exclude)
                out += std::string("rdr pass on lo0 ") + inet + " proto tcp from ! " + lo_addr +
                       " to " + rule.target.subnet.to_string() + pf_ports(rule.target.ports) +
                       " -> " + lo_addr + " port " + std::to_string(tcp_port) + "\n";
    if (!dns.empty())
        out += std::string("rdr pass on lo0 ") + inet + " proto udp to <dns_servers> port 53 -> " +
               lo_addr + " port " + std::to_string(dns_port) + "\n";
    if (tcp_port != 0)
        for (const auto& rule : rules) {
            const std::string to = " to " + rule.target.subnet.to_string() + pf_ports(rule.target.ports);
            if (rule.exclude)
                out += std::string("pass out ") + inet + " proto tcp" + to + "\n";
            else
                out += std::string("pass out route-to lo0 ") + inet + " proto tcp" + to +
                       " keep state\n";
        }
    if (!dns.empty())
        out += std::string("pass out route-to lo0 ") + inet +
               " proto udp to <dns_servers> port 53 keep state\n";
    // Last match wins: the ssh server's own addresses go last so nothing above captures them.
    if (tcp_port != 0)
        for (const auto& server : spec.server_addresses)
            if (server.family() == family)
                out += std::string("pass out ") + inet + " proto tcp to " + server.to_string() +
                       (v4 ? "/32" : "/128") + "\n";
    return out;
}

}  // namespace

std::vector<PfAnchor> render_pf(const TunnelSpec& spec) {
    std::vector<PfAnchor> anchors;
    for (Family family : {Family::V6, Family::V4}) {
        bool used = false;
        for (const auto& sp : spec.includes) used |= sp.subnet.family() == family;
        for (const auto& ip : spec.dns_servers) used |= ip.family() == family;
        if (!used) continue;
        std::string name = std::string(family == Family::V4 ? "sshuttle_" : "sshuttle6_") + spec.name;
        anchors.push_back({std::move(name), render_family(spec, family)});
    }
    return anchors;
}

}  // namespace sshuttle::helper

// nat method: iptables-restore text for one chain per tunnel in table nat.
#include <cstdio>

#include "helper/render.hpp"

namespace sshuttle::helper {
namespace {

std::string ipt_ports(const char* proto, const PortRange& ports) {
    std::string out = std::string("-p ") + proto;
    if (ports.all()) return out;
    out += std::string(" -m ") + proto + " --dport " + std::to_string(ports.first);
    if (ports.last != ports.first) out += ":" + std::to_string(ports.last);
    return out;
}

// Lines of `text`, without their '\n'.
std::vector<std::string_view> lines_of(std::string_view text) {
    std::vector<std::string_view> out;
    while (!text.empty()) {
        std::size_t nl = text.find('\n');
        out.push_back(text.substr(0, nl));
        if (nl == std::string_view::npos) break;
        text.remove_prefix(nl + 1);
    }
    return out;
}

bool ends_with(std::string_view text, std::string_view suffix) {
    return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

}  // namespace

std::string nat_chain_name(std::string_view tunnel) {
    constexpr std::size_t kShort = kMaxNatChainBytes - kNatChainPrefix.size() - 1;  // 18
    if (tunnel.size() <= kShort) return std::string(kNatChainPrefix) + std::string(tunnel);
    char hash[9];
    std::snprintf(hash, sizeof hash, "%08x", name_hash(tunnel));
    return std::string(kNatChainPrefix) + std::string(tunnel.substr(0, 10)) + "-" + hash;
}

std::string render_nat(const TunnelSpec& spec, Family family) {
    const std::uint16_t tcp_port = family == Family::V4 ? spec.tcp_port_v4 : spec.tcp_port_v6;
    const std::uint16_t dns_port = family == Family::V4 ? spec.dns_port_v4 : spec.dns_port_v6;
    bool any_dns = false;
    for (const auto& server : spec.dns_servers) any_dns |= server.family() == family;
    bool any_include = false;
    for (const auto& sp : spec.includes) any_include |= sp.subnet.family() == family;
    if (!any_dns && !any_include) return "";

    const std::string chain = nat_chain_name(spec.name);
    const std::string add = "-A " + chain + " ";
    const std::string host = family == Family::V4 ? "/32" : "/128";
    std::string out = "*nat\n:" + chain + " - [0:0]\n";
    for (const auto& server : spec.dns_servers)
        if (server.family() == family)
            out += add + "-d " + server.to_string() + host +
                   " -p udp -m udp --dport 53 -j REDIRECT --to-ports " + std::to_string(dns_port) +
                   "\n";
    out += add + "-m addrtype --dst-type LOCAL -j RETURN\n";
    for (const auto& server : spec.server_addresses)
        if (server.family() == family) out += add + "-d " + server.to_string() + host + " -j RETURN\n";
    if (tcp_port != 0) {
        for (const auto& rule : ordered_rules(spec)) {
            const Subnet& net = rule.target.subnet;
            if (net.family() != family) continue;
            out += add + "-d " + net.to_string() + " " + ipt_ports("tcp", rule.target.ports);
            out += rule.exclude ? " -j RETURN\n"
                                : " -j REDIRECT --to-ports " + std::to_string(tcp_port) + "\n";
        }
    }
    if (spec.uid || spec.gid) {
        out += "-I OUTPUT 1 -m owner";
        if (spec.uid) out += " --uid-owner " + std::to_string(*spec.uid);
        if (spec.gid) out += " --gid-owner " + std::to_string(*spec.gid);
        out += " -j " + chain + "\n";
    } else {
        out += "-I OUTPUT 1 -j " + chain + "\n";
        out += "-I PREROUTING 1 -j " + chain + "\n";
    }
    out += "COMMIT\n";
    return out;
}

std::string render_nat_remove(std::string_view save_output, std::string_view chain) {
    const std::string declaration = ":" + std::string(chain) + " ";
    const std::string jump = " -j " + std::string(chain);
    bool in_nat = false;
    bool exists = false;
    std::string deletes;
    for (std::string_view line : lines_of(save_output)) {
        if (line.starts_with("*")) in_nat = line == "*nat";
        if (!in_nat) continue;
        if (line.starts_with(declaration)) exists = true;
        // A rule in another chain that jumps to ours: delete it by its own text.
        if (line.starts_with("-A ") && ends_with(line, jump) &&
            !line.starts_with("-A " + std::string(chain) + " "))
            deletes += "-D " + std::string(line.substr(3)) + "\n";
    }
    if (!exists) return "";
    return "*nat\n" + deletes + "-F " + std::string(chain) + "\n-X " + std::string(chain) +
           "\nCOMMIT\n";
}

std::vector<std::string> nat_chains_in(std::string_view save_output) {
    std::vector<std::string> out;
    bool in_nat = false;
    for (std::string_view line : lines_of(save_output)) {
        if (line.starts_with("*")) in_nat = line == "*nat";
        if (!in_nat || !line.starts_with(":") || !line.substr(1).starts_with(kNatChainPrefix))
            continue;
        std::size_t space = line.find(' ');
        out.emplace_back(line.substr(1, space == std::string_view::npos ? line.npos : space - 1));
    }
    return out;
}

}  // namespace sshuttle::helper

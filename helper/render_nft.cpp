// nft and tproxy methods: one owned `table inet sshuttle_<name>` in native nft syntax.
#include <cstdio>

#include "helper/render.hpp"

namespace sshuttle::helper {
namespace {

const char* nft_family(Family family) { return family == Family::V4 ? "ip" : "ip6"; }

// A network as nft lists it: a full-width prefix is written as the bare address.
std::string nft_net(const Subnet& subnet) {
    if (subnet.width == family_bits(subnet.family())) return subnet.network.to_string();
    return subnet.to_string();
}

// "ip daddr 10.0.0.0/8" / "ip6 daddr fd00::/8".
std::string daddr(const Subnet& subnet) {
    return std::string(nft_family(subnet.family())) + " daddr " + nft_net(subnet);
}

std::string daddr(const IpAddress& ip) {
    return daddr(Subnet(ip, family_bits(ip.family())));
}

// "tcp dport 80", "tcp dport 80-90", or "meta l4proto tcp" for every port.
std::string proto_ports(const char* proto, const PortRange& ports) {
    if (ports.all()) return std::string("meta l4proto ") + proto;
    std::string out = std::string(proto) + " dport " + std::to_string(ports.first);
    if (ports.last != ports.first) out += "-" + std::to_string(ports.last);
    return out;
}

std::uint16_t tcp_port(const TunnelSpec& spec, Family family) {
    return family == Family::V4 ? spec.tcp_port_v4 : spec.tcp_port_v6;
}
std::uint16_t dns_port(const TunnelSpec& spec, Family family) {
    return family == Family::V4 ? spec.dns_port_v4 : spec.dns_port_v6;
}

std::string mark_text() {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%08x", kTproxyMark);
    return buf;
}

std::string owner_returns(const TunnelSpec& spec) {
    std::string out;
    if (spec.uid) out += "\t\tmeta skuid != " + std::to_string(*spec.uid) + " return\n";
    if (spec.gid) out += "\t\tmeta skgid != " + std::to_string(*spec.gid) + " return\n";
    return out;
}

// nft 1.0.6 creates only the table for `create table NAME { ...chains... }` and silently drops
// the block's contents, so the table is created empty first (which fails the whole transaction
// if the name exists, owned by anyone) and filled by a second statement in the same buffer.
std::string table_header(const std::string& table) {
    return "create table inet " + table + " { flags owner; }\ntable inet " + table +
           " {\n\tflags owner;\n\n";
}

void append_servers(std::string& out, const TunnelSpec& spec) {
    for (const auto& server : spec.server_addresses)
        out += "\t\t" + daddr(server) + " return\n";
}

}  // namespace

std::string nft_table_name(std::string_view tunnel) {
    return std::string(kNftTablePrefix) + std::string(tunnel);
}

std::string render_nft(const TunnelSpec& spec) {
    const std::string table = nft_table_name(spec.name);
    const bool by_owner = spec.uid || spec.gid;
    std::string out = table_header(table);
    if (!by_owner) {
        out += "\tchain prerouting {\n"
               "\t\ttype nat hook prerouting priority dstnat; policy accept;\n"
               "\t\tjump capture\n"
               "\t}\n\n";
    }
    out += "\tchain output {\n"
           "\t\ttype nat hook output priority -100; policy accept;\n";
    out += owner_returns(spec);
    out += "\t\tjump capture\n"
           "\t}\n\n";

    out += "\tchain capture {\n";
    for (const auto& server : spec.dns_servers)
        out += "\t\t" + daddr(server) + " udp dport 53 redirect to :" +
               std::to_string(dns_port(spec, server.family())) + "\n";
    out += "\t\tfib daddr type local return\n";
    append_servers(out, spec);
    for (const auto& rule : ordered_rules(spec)) {
        const Subnet& net = rule.target.subnet;
        std::string line = "\t\t" + daddr(net) + " " + proto_ports("tcp", rule.target.ports);
        if (rule.exclude)
            line += " return\n";
        else
            line += " redirect to :" + std::to_string(tcp_port(spec, net.family())) + "\n";
        out += line;
    }
    out += "\t}\n}\n";
    return out;
}

std::string render_tproxy(const TunnelSpec& spec) {
    const std::string table = nft_table_name(spec.name);
    const std::string mark = mark_text();
    const bool by_owner = spec.uid || spec.gid;
    std::vector<const char*> protos = {"tcp"};
    if (spec.udp) protos.push_back("udp");
    const auto rules = ordered_rules(spec);

    std::string out = table_header(table);

    out += "\tchain prerouting {\n"
           "\t\ttype filter hook prerouting priority mangle; policy accept;\n";
    if (by_owner) out += "\t\tiifname != \"lo\" return\n";
    for (const auto& server : spec.dns_servers)
        out += "\t\t" + daddr(server) + " udp dport 53 tproxy " + nft_family(server.family()) +
               " to :" + std::to_string(dns_port(spec, server.family())) + " meta mark set " +
               mark + " accept\n";
    out += "\t\tfib daddr type local return\n";
    for (const char* proto : protos)
        out += std::string("\t\tmeta l4proto ") + proto + " socket transparent 1 meta mark set " +
               mark + " accept\n";
    append_servers(out, spec);
    for (const auto& rule : rules) {
        const Subnet& net = rule.target.subnet;
        for (const char* proto : protos) {
            std::string line = "\t\t" + daddr(net) + " " + proto_ports(proto, rule.target.ports);
            if (rule.exclude)
                line += " return\n";
            else
                line += std::string(" tproxy ") + nft_family(net.family()) + " to :" +
                        std::to_string(tcp_port(spec, net.family())) + " meta mark set " + mark +
                        " accept\n";
            out += line;
        }
    }
    out += "\t}\n\n";

    out += "\tchain output {\n"
           "\t\ttype route hook output priority mangle; policy accept;\n";
    out += owner_returns(spec);
    for (const auto& server : spec.dns_servers)
        out += "\t\t" + daddr(server) + " udp dport 53 meta mark set " + mark + " accept\n";
    out += "\t\tfib daddr type local return\n";
    append_servers(out, spec);
    for (const auto& rule : rules) {
        const Subnet& net = rule.target.subnet;
        for (const char* proto : protos) {
            std::string line = "\t\t" + daddr(net) + " " + proto_ports(proto, rule.target.ports);
            line += rule.exclude ? " return\n" : " meta mark set " + mark + " accept\n";
            out += line;
        }
    }
    out += "\t}\n}\n";
    return out;
}

std::string render_nft_table(const TunnelSpec& spec) {
    return spec.method == Method::Tproxy ? render_tproxy(spec) : render_nft(spec);
}

std::string render_nft_delete(std::string_view tunnel) {
    return "delete table inet " + nft_table_name(tunnel) + "\n";
}

}  // namespace sshuttle::helper

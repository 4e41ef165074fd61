#include "helper/spec.hpp"

#include <algorithm>
#include <charconv>
#include <set>

#include <nlohmann/json.hpp>

#include "helper/methods.hpp"  // kMaxHostNameBytes

namespace sshuttle::helper {
namespace {

using nlohmann::json;

// The longest subnet text we write is "[ffff:...:ffff/128]:65535-65535" (about 56 bytes); the cap
// only keeps a hostile 1 MB string from being copied into messages.
constexpr std::size_t kMaxSubnetTextBytes = 64;
constexpr std::size_t kMaxAddressTextBytes = 46;  // INET6_ADDRSTRLEN
constexpr std::size_t kMaxMethodTextBytes = 16;

Error invalid(const std::string& field, const std::string& what) {
    return Error(Errc::InvalidArgument, field + ": " + what);
}

// A short, printable excerpt of untrusted text for an error message.
std::string excerpt(std::string_view text) {
    std::string out = "\"";
    std::size_t n = 0;
    for (char c : text) {
        if (++n > 40) {
            out += "...";
            break;
        }
        auto u = static_cast<unsigned char>(c);
        if (u < 0x20 || u >= 0x7f || c == '"' || c == '\\') {
            static constexpr char kHex[] = "0123456789abcdef";
            out += "\\x";
            out += kHex[u >> 4];
            out += kHex[u & 15];
        } else {
            out += c;
        }
    }
    return out + "\"";
}

const char* json_type_name(const json& value) { return value.type_name(); }

bool all_digits(std::string_view text) {
    return !text.empty() &&
           std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<std::uint16_t> parse_port(const std::string& field, std::string_view text) {
    if (!all_digits(text) || text.size() > 5) return invalid(field, "port " + excerpt(text) + " is not a number");
    unsigned value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value < 1 || value > 65535)
        return invalid(field, "port " + std::to_string(value) + " is not between 1 and 65535");
    return static_cast<std::uint16_t>(value);
}

Result<PortRange> parse_ports(const std::string& field, std::string_view text) {
    std::size_t dash = text.find('-');
    auto first = parse_port(field, text.substr(0, dash));
    if (!first) return first.error();
    if (dash == std::string_view::npos) return PortRange{*first, *first};
    auto last = parse_port(field, text.substr(dash + 1));
    if (!last) return last.error();
    if (*first > *last)
        return invalid(field, "port range " + excerpt(text) + " ends before it starts");
    return PortRange{*first, *last};
}

// "ADDR/WIDTH" with ADDR an inet_pton literal of either family.
Result<Subnet> parse_cidr(const std::string& field, std::string_view text) {
    std::size_t slash = text.find('/');
    if (slash == std::string_view::npos)
        return invalid(field, excerpt(text) + " has no prefix width (ADDRESS/WIDTH)");
    auto address = IpAddress::parse(text.substr(0, slash));
    if (!address) return invalid(field, excerpt(text.substr(0, slash)) + " is not an IP address");
    std::string_view digits = text.substr(slash + 1);
    if (!all_digits(digits) || digits.size() > 3)
        return invalid(field, "prefix width " + excerpt(digits) + " is not a number");
    int width = 0;
    std::from_chars(digits.data(), digits.data() + digits.size(), width);
    int bits = family_bits(address->family());
    if (width > bits)
        return invalid(field, "prefix /" + std::to_string(width) + " is longer than " +
                                  std::to_string(bits));
    return Subnet(*address, width);
}

// The canonical text SubnetPort::to_string writes: "10.0.0.0/8", "10.0.0.0/8:80-90",
// "fd00::/8", "[fd00::/8]:80-90". Host names and inet_aton forms are the CLI's business.
Result<SubnetPort> parse_subnet_port(const std::string& field, std::string_view text) {
    if (text.size() > kMaxSubnetTextBytes)
        return Error(Errc::TooLarge, field + ": longer than " +
                                         std::to_string(kMaxSubnetTextBytes) + " bytes");
    SubnetPort out;
    std::string_view cidr = text;
    std::string_view ports;
    if (!text.empty() && text.front() == '[') {
        std::size_t close = text.find(']');
        if (close == std::string_view::npos)
            return invalid(field, excerpt(text) + " has an unbalanced '['");
        cidr = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (rest.empty() || rest.front() != ':' || rest.size() < 2)
            return invalid(field, excerpt(text) + ": expected ':PORT' after ']'");
        ports = rest.substr(1);
        auto subnet = parse_cidr(field, cidr);
        if (!subnet) return subnet.error();
        if (!subnet->network.is_v6())
            return invalid(field, excerpt(text) + ": brackets are for IPv6 only");
        out.subnet = *subnet;
    } else {
        std::size_t colons = static_cast<std::size_t>(std::count(text.begin(), text.end(), ':'));
        if (colons == 1) {
            std::size_t colon = text.find(':');
            cidr = text.substr(0, colon);
            ports = text.substr(colon + 1);
            if (ports.empty()) return invalid(field, excerpt(text) + ": empty port after ':'");
        }
        auto subnet = parse_cidr(field, cidr);
        if (!subnet) return subnet.error();
        out.subnet = *subnet;
    }
    if (!ports.empty() || (!text.empty() && text.front() == '[')) {
        auto range = parse_ports(field, ports);
        if (!range) return range.error();
        out.ports = *range;
    }
    return out;
}

Result<IpAddress> parse_address(const std::string& field, const json& value) {
    if (!value.is_string()) return invalid(field, std::string("expected a string, got ") + json_type_name(value));
    const auto& text = value.get_ref<const std::string&>();
    if (text.size() > kMaxAddressTextBytes)
        return Error(Errc::TooLarge, field + ": longer than " + std::to_string(kMaxAddressTextBytes) + " bytes");
    auto address = IpAddress::parse(text);
    if (!address) return invalid(field, excerpt(text) + " is not an IP address");
    return *address;
}

Result<std::uint32_t> parse_uint(const std::string& field, const json& value, std::uint64_t max) {
    if (!value.is_number_integer())
        return invalid(field, std::string("expected an integer, got ") + json_type_name(value));
    if (value.is_number_unsigned()) {
        auto n = value.get<std::uint64_t>();
        if (n > max)
            return invalid(field, std::to_string(n) + " is larger than " + std::to_string(max));
        return static_cast<std::uint32_t>(n);
    }
    auto n = value.get<std::int64_t>();
    if (n < 0) return invalid(field, std::to_string(n) + " is negative");
    if (static_cast<std::uint64_t>(n) > max)
        return invalid(field, std::to_string(n) + " is larger than " + std::to_string(max));
    return static_cast<std::uint32_t>(n);
}

Result<void> check_array(const std::string& field, const json& value, std::size_t cap) {
    if (!value.is_array())
        return invalid(field, std::string("expected an array, got ") + json_type_name(value));
    if (value.size() > cap)
        return Error(Errc::TooLarge, field + ": " + std::to_string(value.size()) +
                                         " entries, at most " + std::to_string(cap));
    return ok();
}

std::string indexed(const char* field, std::size_t i) {
    return std::string(field) + "[" + std::to_string(i) + "]";
}

Result<std::vector<SubnetPort>> parse_subnet_list(const char* field, const json& value) {
    if (auto r = check_array(field, value, kMaxSubnetsPerSpec); !r) return r.error();
    std::vector<SubnetPort> out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        std::string name = indexed(field, i);
        if (!value[i].is_string())
            return invalid(name, std::string("expected a string, got ") + json_type_name(value[i]));
        auto sp = parse_subnet_port(name, value[i].get_ref<const std::string&>());
        if (!sp) return sp.error();
        out.push_back(*sp);
    }
    return out;
}

Result<std::vector<IpAddress>> parse_address_list(const char* field, const json& value,
                                                  std::size_t cap) {
    if (auto r = check_array(field, value, cap); !r) return r.error();
    std::vector<IpAddress> out;
    out.reserve(value.size());
    for (std::size_t i = 0; i < value.size(); ++i) {
        auto address = parse_address(indexed(field, i), value[i]);
        if (!address) return address.error();
        out.push_back(*address);
    }
    return out;
}

Result<void> check_subnets(const char* field, const std::vector<SubnetPort>& list) {
    if (list.size() > kMaxSubnetsPerSpec)
        return Error(Errc::TooLarge, std::string(field) + ": " + std::to_string(list.size()) +
                                         " entries, at most " + std::to_string(kMaxSubnetsPerSpec));
    for (std::size_t i = 0; i < list.size(); ++i) {
        const auto& sp = list[i];
        int bits = family_bits(sp.subnet.family());
        if (sp.subnet.width < 0 || sp.subnet.width > bits)
            return invalid(indexed(field, i), "prefix /" + std::to_string(sp.subnet.width) +
                                                  " is longer than " + std::to_string(bits));
        if (sp.subnet.network != sp.subnet.network.masked(sp.subnet.width))
            return invalid(indexed(field, i), "host bits set in " + sp.subnet.to_string());
        if (!sp.ports.valid())
            return invalid(indexed(field, i), "port range " + std::to_string(sp.ports.first) +
                                                  "-" + std::to_string(sp.ports.last) +
                                                  " is not valid");
    }
    return ok();
}

}  // namespace

std::string_view method_name(Method method) noexcept {
    switch (method) {
        case Method::Nft: return "nft";
        case Method::Nat: return "nat";
        case Method::Tproxy: return "tproxy";
        case Method::Pf: return "pf";
    }
    return "?";
}

Result<Method> parse_method(std::string_view text) {
    for (Method m : {Method::Nft, Method::Nat, Method::Tproxy, Method::Pf})
        if (method_name(m) == text) return m;
    return invalid("method", excerpt(text) + " is not one of nft, nat, tproxy, pf");
}

namespace {
bool valid_label(std::string_view label) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-')
        return false;
    for (char c : label) {
        bool ok =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (!ok) return false;
    }
    return true;
}
}  // namespace

bool valid_host_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxHostNameBytes) return false;
    if (name.back() == '.') name.remove_suffix(1);
    while (true) {
        auto dot = name.find('.');
        if (!valid_label(name.substr(0, dot))) return false;
        if (dot == std::string_view::npos) return true;
        name.remove_prefix(dot + 1);
    }
}

std::uint32_t name_hash(std::string_view name) noexcept {
    std::uint32_t hash = 2166136261U;
    for (char c : name) {
        hash ^= static_cast<unsigned char>(c);
        hash *= 16777619U;
    }
    return hash;
}

bool valid_tunnel_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxTunnelNameBytes) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    });
}

Result<void> validate(const TunnelSpec& spec) {
    if (!valid_tunnel_name(spec.name))
        return invalid("name", excerpt(spec.name) + " does not match ^[a-z0-9_-]{1,32}$");
    if (auto r = check_subnets("includes", spec.includes); !r) return r;
    if (auto r = check_subnets("excludes", spec.excludes); !r) return r;
    if (spec.dns_servers.size() > kMaxDnsServersPerSpec)
        return Error(Errc::TooLarge, "dns_servers: " + std::to_string(spec.dns_servers.size()) +
                                         " entries, at most " +
                                         std::to_string(kMaxDnsServersPerSpec));
    if (spec.server_addresses.size() > kMaxServerAddresses)
        return Error(Errc::TooLarge, "server_addresses: " +
                                         std::to_string(spec.server_addresses.size()) +
                                         " entries, at most " + std::to_string(kMaxServerAddresses));
    if (spec.includes.empty() && spec.dns_servers.empty())
        return invalid("includes", "nothing to capture: no includes and no dns_servers");
    for (std::size_t i = 0; i < spec.includes.size(); ++i) {
        bool v4 = spec.includes[i].subnet.network.is_v4();
        if ((v4 ? spec.tcp_port_v4 : spec.tcp_port_v6) == 0)
            return invalid(indexed("includes", i),
                           std::string(family_name(spec.includes[i].subnet.family())) +
                               " subnet but " + (v4 ? "tcp_port_v4" : "tcp_port_v6") + " is 0");
    }
    for (std::size_t i = 0; i < spec.dns_servers.size(); ++i) {
        const auto& server = spec.dns_servers[i];
        if (server.is_unspecified())
            return invalid(indexed("dns_servers", i), server.to_string() + " is unspecified");
        bool v4 = server.is_v4();
        if ((v4 ? spec.dns_port_v4 : spec.dns_port_v6) == 0)
            return invalid(indexed("dns_servers", i), std::string(family_name(server.family())) +
                                                          " server but " +
                                                          (v4 ? "dns_port_v4" : "dns_port_v6") +
                                                          " is 0");
    }
    for (std::size_t i = 0; i < spec.server_addresses.size(); ++i)
        if (spec.server_addresses[i].is_unspecified())
            return invalid(indexed("server_addresses", i),
                           spec.server_addresses[i].to_string() + " is unspecified");
    if (spec.udp && spec.method != Method::Tproxy)
        return invalid("udp", "UDP capture needs method tproxy, not " +
                                  std::string(method_name(spec.method)));
    if (spec.method == Method::Pf && (spec.uid || spec.gid))
        return invalid(spec.uid ? "uid" : "gid", "pf cannot restrict by user or group");
    return ok();
}

Result<TunnelSpec> spec_from_json(const nlohmann::json& json) {
    if (!json.is_object())
        return invalid("spec", std::string("expected an object, got ") + json_type_name(json));
    static const std::set<std::string, std::less<>> kKnown = {
        "name",        "method",      "includes",    "excludes",    "dns_servers",
        "server_addresses", "tcp_port_v4", "tcp_port_v6", "dns_port_v4", "dns_port_v6",
        "udp",         "uid",         "gid"};
    for (const auto& item : json.items())
        if (!kKnown.contains(item.key()))
            return invalid(excerpt(item.key()), "unknown field");

    TunnelSpec spec;
    auto name = json.find("name");
    if (name == json.end()) return invalid("name", "missing");
    if (!name->is_string())
        return invalid("name", std::string("expected a string, got ") + json_type_name(*name));
    spec.name = name->get<std::string>();
    if (!valid_tunnel_name(spec.name))
        return invalid("name", excerpt(spec.name) + " does not match ^[a-z0-9_-]{1,32}$");

    if (auto it = json.find("method"); it != json.end()) {
        if (!it->is_string())
            return invalid("method", std::string("expected a string, got ") + json_type_name(*it));
        const auto& text = it->get_ref<const std::string&>();
        if (text.size() > kMaxMethodTextBytes) return invalid("method", "unknown method");
        auto method = parse_method(text);
        if (!method) return method.error();
        spec.method = *method;
    }
    if (auto it = json.find("includes"); it != json.end()) {
        auto list = parse_subnet_list("includes", *it);
        if (!list) return list.error();
        spec.includes = std::move(*list);
    }
    if (auto it = json.find("excludes"); it != json.end()) {
        auto list = parse_subnet_list("excludes", *it);
        if (!list) return list.error();
        spec.excludes = std::move(*list);
    }
    if (auto it = json.find("dns_servers"); it != json.end()) {
        auto list = parse_address_list("dns_servers", *it, kMaxDnsServersPerSpec);
        if (!list) return list.error();
        spec.dns_servers = std::move(*list);
    }
    if (auto it = json.find("server_addresses"); it != json.end()) {
        auto list = parse_address_list("server_addresses", *it, kMaxServerAddresses);
        if (!list) return list.error();
        spec.server_addresses = std::move(*list);
    }
    struct PortField {
        const char* key;
        std::uint16_t* out;
    };
    for (PortField field : {PortField{"tcp_port_v4", &spec.tcp_port_v4},
                            PortField{"tcp_port_v6", &spec.tcp_port_v6},
                            PortField{"dns_port_v4", &spec.dns_port_v4},
                            PortField{"dns_port_v6", &spec.dns_port_v6}}) {
        auto it = json.find(field.key);
        if (it == json.end()) continue;
        auto n = parse_uint(field.key, *it, 65535);
        if (!n) return n.error();
        *field.out = static_cast<std::uint16_t>(*n);
    }
    if (auto it = json.find("udp"); it != json.end()) {
        if (!it->is_boolean())
            return invalid("udp", std::string("expected a boolean, got ") + json_type_name(*it));
        spec.udp = it->get<bool>();
    }
    struct IdField {
        const char* key;
        std::optional<std::uint32_t>* out;
    };
    for (IdField field : {IdField{"uid", &spec.uid}, IdField{"gid", &spec.gid}}) {
        auto it = json.find(field.key);
        if (it == json.end() || it->is_null()) continue;
        // (uid_t)-1 means "no change" to the kernel; it is never a real owner.
        auto n = parse_uint(field.key, *it, 0xfffffffeU);
        if (!n) return n.error();
        *field.out = *n;
    }
    if (auto r = validate(spec); !r) return r.error();
    return spec;
}

nlohmann::json spec_to_json(const TunnelSpec& spec) {
    json out = json::object();
    out["name"] = spec.name;
    out["method"] = std::string(method_name(spec.method));
    auto subnets = [](const std::vector<SubnetPort>& list) {
        json array = json::array();
        for (const auto& sp : list) array.push_back(sp.to_string());
        return array;
    };
    auto addresses = [](const std::vector<IpAddress>& list) {
        json array = json::array();
        for (const auto& ip : list) array.push_back(ip.to_string());
        return array;
    };
    out["includes"] = subnets(spec.includes);
    out["excludes"] = subnets(spec.excludes);
    out["dns_servers"] = addresses(spec.dns_servers);
    out["server_addresses"] = addresses(spec.server_addresses);
    out["tcp_port_v4"] = spec.tcp_port_v4;
    out["tcp_port_v6"] = spec.tcp_port_v6;
    out["dns_port_v4"] = spec.dns_port_v4;
    out["dns_port_v6"] = spec.dns_port_v6;
    out["udp"] = spec.udp;
    out["uid"] = spec.uid ? json(*spec.uid) : json(nullptr);
    out["gid"] = spec.gid ? json(*spec.gid) : json(nullptr);
    return out;
}

std::vector<OrderedRule> ordered_rules(const TunnelSpec& spec) {
    std::vector<OrderedRule> rules;
    rules.reserve(spec.includes.size() + spec.excludes.size());
    for (const auto& sp : spec.includes) rules.push_back({sp, false});
    for (const auto& sp : spec.excludes) rules.push_back({sp, true});
    // "All ports" is wider than any range (65536 > 65534).
    auto span = [](const PortRange& p) { return p.all() ? 65536 : p.last - p.first; };
    std::stable_sort(rules.begin(), rules.end(), [&](const OrderedRule& a, const OrderedRule& b) {
        int sa = span(a.target.ports), sb = span(b.target.ports);
        if (sa != sb) return sa < sb;
        if (a.target.subnet.width != b.target.subnet.width)
            return a.target.subnet.width > b.target.subnet.width;
        return a.exclude && !b.exclude;
    });
    return rules;
}

}  // namespace sshuttle::helper

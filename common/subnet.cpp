#include "common/subnet.hpp"

#include <algorithm>
#include <array>
#include <cstdio>

namespace sshuttle {

namespace {

// Longest piece of user text repeated in a message: enough to recognise it, short enough that
// a megabyte of garbage does not become a megabyte of log.
constexpr std::size_t kMaxQuotedBytes = 120;
// Decimal fields saturate here: far above any width or port, far below integer overflow.
constexpr std::uint32_t kDecimalSaturation = 1'000'000;

bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}
bool is_hex_digit(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}
bool is_alnum(char c) noexcept {
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_space(char c) noexcept {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}
bool all_digits(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), is_digit);
}

// 'text' with control and non-ASCII bytes as \xNN, cut at kMaxQuotedBytes: user text goes into
// terminals and logs.
std::string quoted(std::string_view text) {
    std::string out = "'";
    for (std::size_t i = 0; i < text.size() && i < kMaxQuotedBytes; ++i) {
        auto byte = static_cast<unsigned char>(text[i]);
        if (byte < 0x20 || byte >= 0x7f) {
            std::array<char, 5> hex{};
            std::snprintf(hex.data(), hex.size(), "\\x%02x", static_cast<unsigned>(byte));
            out += hex.data();
        } else {
            out += text[i];
        }
    }
    if (text.size() > kMaxQuotedBytes) out += "...";
    return out + "'";
}

// "'part'" or "'part' in 'whole'", so a message names the bad piece and where it came from.
std::string in_text(std::string_view part, std::string_view whole) {
    if (part == whole || whole.empty()) return quoted(part);
    return quoted(part) + " in " + quoted(whole);
}

Error subnet_format_error(std::string_view text) {
    return Error(Errc::InvalidArgument, quoted(text) + " is not a valid address/mask:port format");
}

Error ipport_format_error(std::string_view text) {
    return Error(Errc::InvalidArgument, quoted(text) + " is not a valid IP:port format");
}

// A run of decimal digits (checked by the caller), saturating instead of overflowing.
std::uint32_t decimal_value(std::string_view digits) noexcept {
    std::uint32_t value = 0;
    for (char c : digits) {
        value = value * 10 + static_cast<std::uint32_t>(c - '0');
        if (value >= kDecimalSaturation) return kDecimalSaturation;
    }
    return value;
}

// " in 'whole'", or nothing when the piece is all there is.
std::string where(std::string_view whole) {
    return whole.empty() ? "" : " in " + quoted(whole);
}

// Decimal digits (checked by the caller) as a port in lowest..65535; `whole` names the argument.
Result<std::uint16_t> parse_port(std::string_view digits, std::string_view whole,
                                 std::uint32_t lowest) {
    std::uint32_t value = decimal_value(digits);
    if (value < lowest || value > 65535)
        return Error(Errc::InvalidArgument, "port " + std::string(digits) + where(whole) +
                                                " is not between " + std::to_string(lowest) +
                                                " and 65535");
    return static_cast<std::uint16_t>(value);
}

// "N" or "A-B" after the ':' of a subnet; `whole` is the full argument, for messages (empty when
// the spec stands alone).
Result<PortRange> parse_port_spec(std::string_view spec, std::string_view whole) {
    std::size_t dash = spec.find('-');
    std::string_view first_text = spec.substr(0, dash);
    std::string_view last_text = dash == std::string_view::npos ? spec : spec.substr(dash + 1);
    if (!all_digits(first_text) || !all_digits(last_text)) return subnet_format_error(whole);
    auto first = parse_port(first_text, whole, 1);
    if (!first) return first.error();
    auto last = parse_port(last_text, whole, 1);
    if (!last) return last.error();
    if (*first > *last)
        return Error(Errc::InvalidArgument,
                     "port range " + std::string(spec) + where(whole) + " is reversed");
    return PortRange{*first, *last};
}

Error width_error(std::string_view digits, int max_width) {
    return Error(Errc::InvalidArgument, "Slash in CIDR notation (/" + std::string(digits) +
                                            ") is not between 0 and " + std::to_string(max_width));
}

// Whether a host part is meant as an IPv4 literal: every dot-separated label is empty, decimal
// or 0x-hex ("10.256.0.0", "1.2.3.4.5", "0xb8.0xzz" is not). Such text never goes to the
// resolver: it gets "not a valid IPv4 address" instead of a vain DNS query. Top-level domains
// are never all-numeric (RFC 3696 section 2), so no real name is taken for an address.
bool looks_like_ipv4(std::string_view host) noexcept {
    bool any_label = false;
    std::size_t start = 0;
    while (start <= host.size()) {
        std::size_t dot = std::min(host.find('.', start), host.size());
        std::string_view label = host.substr(start, dot - start);
        if (!label.empty()) {
            any_label = true;
            bool hex = label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X');
            std::string_view digits = hex ? label.substr(2) : label;
            if (!std::all_of(digits.begin(), digits.end(), hex ? is_hex_digit : is_digit))
                return false;
        }
        start = dot + 1;
    }
    return any_label;
}

// A host name as sshuttle's [\w.-] allows it, restricted to ASCII: letters, digits, '-', '_'
// (found in real internal names), dot-separated labels of 1..63 bytes, an optional final dot,
// 253 bytes at most, and an optional leading "*." when `allow_wildcard`.
Result<void> check_host_name(std::string_view host, std::string_view whole, bool allow_wildcard) {
    if (host.size() > kMaxHostNameBytes)
        return Error(Errc::TooLarge, "host name " + in_text(host, whole) + " is longer than " +
                                         std::to_string(kMaxHostNameBytes) + " bytes");
    std::string_view name = host;
    if (allow_wildcard && name.substr(0, 2) == "*.") name.remove_prefix(2);
    if (!name.empty() && name.back() == '.') name.remove_suffix(1);
    bool valid = !name.empty() && name.front() != '-';
    std::size_t label_size = 0;
    for (char c : name) {
        if (c == '.') {
            valid = valid && label_size > 0;
            label_size = 0;
        } else {
            valid = valid && (is_alnum(c) || c == '-' || c == '_') && ++label_size <= 63;
        }
    }
    valid = valid && label_size > 0;
    if (!valid)
        return Error(Errc::InvalidArgument, in_text(host, whole) + " is not a valid host name");
    return ok();
}

// The addresses of a host part: an inet_aton IPv4 literal, or a name asked of the resolver
// (deduplicated, order kept).
Result<std::vector<IpAddress>> resolve_host(std::string_view host, std::string_view whole,
                                            bool allow_wildcard, const Resolver& resolver) {
    bool wildcard = allow_wildcard && host.substr(0, 2) == "*.";
    if (!wildcard && looks_like_ipv4(host)) {
        auto ip = parse_ipv4_inet_aton(host);
        if (!ip)
            return Error(Errc::InvalidArgument,
                         in_text(host, whole) + " is not a valid IPv4 address");
        return std::vector<IpAddress>{*ip};
    }
    if (auto checked = check_host_name(host, whole, allow_wildcard); !checked)
        return checked.error();
    auto found = resolver(host);
    if (!found) return found.error();
    std::vector<IpAddress> out;
    for (const IpAddress& ip : *found)
        if (std::find(out.begin(), out.end(), ip) == out.end()) out.push_back(ip);
    if (out.empty())
        return Error(Errc::NotFound, "Unable to resolve address: " + std::string(host));
    return out;
}

// One SubnetPort per address, each with the typed width or its family's full width.
Result<std::vector<SubnetPort>> make_entries(const std::vector<IpAddress>& addresses,
                                             std::string_view host,
                                             std::optional<std::string_view> width_digits,
                                             PortRange ports) {
    if (width_digits) {
        bool v4 = std::any_of(addresses.begin(), addresses.end(),
                              [](const IpAddress& ip) { return ip.is_v4(); });
        bool v6 = std::any_of(addresses.begin(), addresses.end(),
                              [](const IpAddress& ip) { return ip.is_v6(); });
        if (v4 && v6)
            return Error(Errc::InvalidArgument,
                         std::string(host) + " has IPv4 and IPv6 addresses, so the mask of /" +
                             std::string(*width_digits) +
                             " is not supported. Specify the IP addresses directly if you wish "
                             "to specify a mask.");
    }
    std::vector<SubnetPort> out;
    for (const IpAddress& ip : addresses) {
        int max_width = family_bits(ip.family());
        std::uint32_t width =
            width_digits ? decimal_value(*width_digits) : static_cast<std::uint32_t>(max_width);
        if (width > static_cast<std::uint32_t>(max_width))
            return width_error(*width_digits, max_width);
        out.push_back(SubnetPort{Subnet(ip, static_cast<int>(width)), ports});
    }
    return out;
}

// "HOST[/WIDTH][:PORT[-PORT]]" (the text has at most one ':').
Result<std::vector<SubnetPort>> parse_v4_or_name(std::string_view text, const Resolver& resolver) {
    std::size_t colon = text.find(':');
    std::string_view host_width = text.substr(0, colon);
    PortRange ports;
    if (colon != std::string_view::npos) {
        auto parsed = parse_port_spec(text.substr(colon + 1), text);
        if (!parsed) return parsed.error();
        ports = *parsed;
    }
    std::size_t slash = host_width.find('/');
    std::string_view host = host_width.substr(0, slash);
    std::optional<std::string_view> width_digits;
    if (slash != std::string_view::npos) {
        width_digits = host_width.substr(slash + 1);
        if (!all_digits(*width_digits)) return subnet_format_error(text);
    }
    if (host.empty()) return subnet_format_error(text);
    auto addresses = resolve_host(host, text, true, resolver);
    if (!addresses) return addresses.error();
    return make_entries(*addresses, host, width_digits, ports);
}

// "[ADDR[/WIDTH]][:PORT[-PORT]]", "ADDR[/WIDTH]", and sshuttle's accidental "ADDR/WIDTH:PORT".
Result<std::vector<SubnetPort>> parse_v6(std::string_view text) {
    std::string_view inner;      // ADDR[/WIDTH]
    std::string_view port_spec;  // after the ':' that follows the address, if any
    bool has_ports = false;
    if (text.front() == '[') {
        std::size_t close = text.find(']');
        if (close == std::string_view::npos) return subnet_format_error(text);
        inner = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return subnet_format_error(text);
            port_spec = rest.substr(1);
            has_ports = true;
        }
    } else {
        if (text.find_first_of("[]") != std::string_view::npos) return subnet_format_error(text);
        inner = text;
        std::size_t slash = text.find('/');
        std::size_t colon = slash == std::string_view::npos ? slash : text.find(':', slash);
        if (colon != std::string_view::npos) {
            inner = text.substr(0, colon);
            port_spec = text.substr(colon + 1);
            has_ports = true;
        }
    }
    PortRange ports;
    if (has_ports) {
        auto parsed = parse_port_spec(port_spec, text);
        if (!parsed) return parsed.error();
        ports = *parsed;
    }
    std::size_t slash = inner.find('/');
    std::string_view address_text = inner.substr(0, slash);
    std::optional<std::string_view> width_digits;
    if (slash != std::string_view::npos) {
        width_digits = inner.substr(slash + 1);
        if (!all_digits(*width_digits)) return subnet_format_error(text);
    }
    auto address = IpAddress::parse(address_text);
    if (!address || !address->is_v6())
        return Error(Errc::InvalidArgument,
                     in_text(address_text, text) + " is not a valid IPv6 address");
    return make_entries({*address}, address_text, width_digits, ports);
}

}  // namespace

std::optional<IpAddress> parse_ipv4_inet_aton(std::string_view text) {
    // glibc's inet_aton: each part is what strtoul(part, &end, 0) reads (0x hex, leading-0
    // octal, else decimal), must start with a digit and be at most 0xffffffff; parts before a
    // '.' are single bytes, at most three of them; the last part fills the remaining bytes.
    constexpr std::array<std::uint64_t, 4> kLastPartMax = {0xffffffff, 0xffffff, 0xffff, 0xff};
    std::array<std::uint8_t, 4> bytes{};
    std::size_t parts = 0;
    std::size_t i = 0;
    std::uint64_t value = 0;
    for (;;) {
        if (i >= text.size() || !is_digit(text[i])) return std::nullopt;
        std::uint64_t base = 10;
        if (text[i] == '0') {
            base = 8;
            ++i;
            if (i < text.size() && (text[i] == 'x' || text[i] == 'X')) {
                base = 16;
                ++i;
                // strtoul reads "0x" without hex digits as 0 followed by 'x': trailing garbage.
                if (i >= text.size() || !is_hex_digit(text[i])) return std::nullopt;
            }
        }
        value = 0;
        for (; i < text.size(); ++i) {
            char c = text[i];
            std::uint64_t digit = 0;
            if (is_digit(c))
                digit = static_cast<std::uint64_t>(c - '0');
            else if (base == 16 && c >= 'a' && c <= 'f')
                digit = static_cast<std::uint64_t>(c - 'a' + 10);
            else if (base == 16 && c >= 'A' && c <= 'F')
                digit = static_cast<std::uint64_t>(c - 'A' + 10);
            else
                break;
            if (digit >= base) break;  // '8' in an octal part: strtoul stops there
            value = value * base + digit;
            if (value > 0xffffffff) return std::nullopt;
        }
        if (i < text.size() && text[i] == '.') {
            if (parts >= 3 || value > 0xff) return std::nullopt;
            bytes[parts++] = static_cast<std::uint8_t>(value);
            ++i;
            continue;
        }
        break;
    }
    if (i != text.size() || value > kLastPartMax[parts]) return std::nullopt;
    for (std::size_t b = bytes.size(); b-- > parts;) {
        bytes[b] = static_cast<std::uint8_t>(value & 0xff);
        value >>= 8;
    }
    return IpAddress::v4_bytes(bytes);
}

Result<PortRange> PortRange::parse(std::string_view text) {
    if (text.empty()) return PortRange{};
    std::size_t dash = text.find('-');
    std::string_view first_text = text.substr(0, dash);
    std::string_view last_text = dash == std::string_view::npos ? text : text.substr(dash + 1);
    if (!all_digits(first_text) || !all_digits(last_text) || text.size() > kMaxSubnetTextBytes)
        return Error(Errc::InvalidArgument, quoted(text) + " is not a port or port range");
    return parse_port_spec(text, "");
}

std::string PortRange::to_string() const {
    if (all()) return "";
    if (first == last) return std::to_string(first);
    return std::to_string(first) + "-" + std::to_string(last);
}

Subnet::Subnet(const IpAddress& address, int prefix_width) noexcept
    : network(address.masked(prefix_width)),
      width(std::clamp(prefix_width, 0, family_bits(address.family()))) {}

Result<Subnet> Subnet::make(const IpAddress& address, int prefix_width) {
    int max_width = family_bits(address.family());
    if (prefix_width < 0 || prefix_width > max_width)
        return width_error(std::to_string(prefix_width), max_width);
    return Subnet(address, prefix_width);
}

Result<Subnet> Subnet::parse(std::string_view text) {
    std::size_t slash = text.find('/');
    std::string_view digits = slash == std::string_view::npos ? "" : text.substr(slash + 1);
    if (digits.empty() || digits.size() > 3 || !all_digits(digits))
        return Error(Errc::InvalidArgument, quoted(text) + " is not a subnet (ADDRESS/WIDTH)");
    auto address = IpAddress::parse(text.substr(0, slash));
    if (!address) return address.error();
    auto subnet = make(*address, static_cast<int>(decimal_value(digits)));
    if (!subnet) return subnet.error().with_context(quoted(text));
    return subnet;
}

bool Subnet::contains(const IpAddress& ip) const noexcept {
    return ip.family() == network.family() && ip.masked(width) == network;
}

std::string Subnet::to_string() const {
    return network.to_string() + "/" + std::to_string(width);
}

std::string SubnetPort::to_string() const {
    if (ports.all()) return subnet.to_string();
    if (subnet.family() == Family::V6) return "[" + subnet.to_string() + "]:" + ports.to_string();
    return subnet.to_string() + ":" + ports.to_string();
}

Result<std::vector<SubnetPort>> parse_subnetport(std::string_view text, const Resolver& resolver) {
    if (text.size() > kMaxSubnetTextBytes)
        return Error(Errc::TooLarge, "subnet " + quoted(text) + " is longer than " +
                                         std::to_string(kMaxSubnetTextBytes) + " bytes");
    if (text.empty()) return subnet_format_error(text);
    if (std::count(text.begin(), text.end(), ':') > 1) return parse_v6(text);
    return parse_v4_or_name(text, resolver);
}

Result<std::vector<SubnetPort>> parse_subnet_file(std::string_view contents,
                                                  const Resolver& resolver) {
    if (contents.size() > kMaxSubnetFileBytes)
        return Error(Errc::TooLarge, "subnet file is larger than " +
                                         std::to_string(kMaxSubnetFileBytes) + " bytes");
    std::vector<SubnetPort> out;
    std::size_t line_number = 0;
    std::size_t start = 0;
    while (start < contents.size()) {
        std::size_t end = std::min(contents.find('\n', start), contents.size());
        std::string_view line = contents.substr(start, end - start);
        start = end + 1;
        ++line_number;
        while (!line.empty() && is_space(line.front())) line.remove_prefix(1);
        while (!line.empty() && is_space(line.back())) line.remove_suffix(1);
        if (line.empty() || line.front() == '#') continue;
        std::string context = "line " + std::to_string(line_number);
        if (std::any_of(line.begin(), line.end(), is_space))
            return Error(Errc::InvalidArgument,
                         context + ": " + quoted(line) +
                             " holds more than one subnet; write one subnet per line");
        auto entries = parse_subnetport(line, resolver);
        if (!entries) return entries.error().with_context(context);
        out.insert(out.end(), entries->begin(), entries->end());
        if (out.size() > kMaxSubnetFileEntries)
            return Error(Errc::TooLarge, context + ": more than " +
                                             std::to_string(kMaxSubnetFileEntries) + " subnets");
    }
    return out;
}

Result<std::pair<IpAddress, std::uint16_t>> parse_ipport(std::string_view text,
                                                         const Resolver& resolver) {
    if (text.size() > kMaxSubnetTextBytes)
        return Error(Errc::TooLarge, "address " + quoted(text) + " is longer than " +
                                         std::to_string(kMaxSubnetTextBytes) + " bytes");
    if (text.empty()) return ipport_format_error(text);
    if (all_digits(text)) {
        auto port = parse_port(text, "", 0);
        if (!port) return port.error();
        return std::pair{IpAddress(), *port};  // 0.0.0.0: sshuttle's default listen address
    }

    std::string_view host = text;
    std::string_view port_text;
    bool has_port = false;
    bool bracketed = text.front() == '[';
    if (bracketed) {
        std::size_t close = text.find(']');
        if (close == std::string_view::npos) return ipport_format_error(text);
        host = text.substr(1, close - 1);
        std::string_view rest = text.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return ipport_format_error(text);
            port_text = rest.substr(1);
            has_port = true;
        }
    } else {
        if (text.find_first_of("[]") != std::string_view::npos) return ipport_format_error(text);
        auto colons = std::count(text.begin(), text.end(), ':');
        if (colons > 1)
            return Error(Errc::InvalidArgument,
                         quoted(text) + " is not a valid IP:port format: write an IPv6 address " +
                             "in brackets, as in '[::1]:1053'");
        if (colons == 1) {
            std::size_t colon = text.find(':');
            host = text.substr(0, colon);
            port_text = text.substr(colon + 1);
            has_port = true;
        }
    }
    if (host.empty() || (has_port && !all_digits(port_text))) return ipport_format_error(text);
    std::uint16_t port = 0;
    if (has_port) {
        auto parsed = parse_port(port_text, text, 0);
        if (!parsed) return parsed.error();
        port = *parsed;
    }

    if (host.find(':') != std::string_view::npos) {
        auto address = IpAddress::parse(host);
        if (!address || !address->is_v6())
            return Error(Errc::InvalidArgument,
                         in_text(host, text) + " is not a valid IPv6 address");
        return std::pair{*address, port};
    }
    auto addresses = resolve_host(host, text, false, resolver);
    if (!addresses) return addresses.error();
    return std::pair{*std::min_element(addresses->begin(), addresses->end()), port};
}

}  // namespace sshuttle

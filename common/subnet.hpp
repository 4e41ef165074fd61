// Subnets and port ranges as values, and the parsers for sshuttle's subnet and ip:port syntax.
//
// Two kinds of parse live here:
//  * PortRange::parse and Subnet::parse read the canonical text their to_string() writes. They
//    are for trusted round trips (config, wire, logs) and resolve nothing.
//  * parse_subnetport, parse_subnet_file and parse_ipport read what a user may type to sshuttle
//    1.x (positional subnets, -x, -s/-X files, --listen, --to-ns), including inet_aton IPv4
//    forms and host names, which they resolve through a Resolver.
//
// Where sshuttle accepts nonsense and lets the firewall tool fail later (ports 0 or 70000,
// reversed ranges), these parsers reject it at the door with a message naming the bad text.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "common/resolver.hpp"

namespace sshuttle {

// Caps on untrusted text. A subnet argument is an address, a width and a port range, or a host
// name of at most 253 characters (RFC 1035) with the same decorations: 512 bytes is generous.
inline constexpr std::size_t kMaxSubnetTextBytes = 512;
inline constexpr std::size_t kMaxHostNameBytes = 253;
// An -s/-X file may hold a country-sized exclude list (tens of thousands of CIDRs, ~20 bytes
// each); the caps only make a wrong file (a log, a disk image) fail fast instead of being parsed.
inline constexpr std::size_t kMaxSubnetFileBytes = 8 * 1024 * 1024;
inline constexpr std::size_t kMaxSubnetFileEntries = 100'000;

// A range of TCP/UDP ports, both ends included. {0, 0} means every port (sshuttle's "no port
// given"); otherwise 1 <= first <= last. Fields are public for the renderers to read; build
// values with parse() or braces that respect the invariant (valid() checks it).
struct PortRange {
    std::uint16_t first = 0;
    std::uint16_t last = 0;

    // "80" -> {80, 80}, "80-90" -> {80, 90}, "" -> every port. Decimal ports 1..65535 only.
    [[nodiscard]] static Result<PortRange> parse(std::string_view text);

    bool all() const noexcept { return first == 0 && last == 0; }
    bool valid() const noexcept { return all() || (first >= 1 && first <= last); }
    bool contains(std::uint16_t port) const noexcept {
        return all() || (port >= first && port <= last);
    }
    // "80", "80-90", or "" for every port: the inverse of parse().
    std::string to_string() const;

    friend auto operator<=>(const PortRange&, const PortRange&) = default;
};

// An IPv4 or IPv6 network: an address with its host bits cleared and a prefix width.
//
// Host bits are cleared on construction. sshuttle hands 10.1.2.3/8 to the firewall tool as typed
// and relies on iptables to mask it; other tools may not, so we mask at the door and every
// renderer (nft, iptables, pf) sees the same network, 10.0.0.0/8.
// The fields are public for reading; assigning them directly bypasses the masking.
struct Subnet {
    IpAddress network;  // 0.0.0.0 by default; host bits past `width` are always zero
    int width = 0;      // 0..32 for IPv4, 0..128 for IPv6

    // 0.0.0.0/0.
    Subnet() = default;
    // For widths already known to be valid (constants, values from another Subnet): the width
    // is clamped to 0..family bits rather than rejected. Untrusted widths go through make().
    Subnet(const IpAddress& address, int prefix_width) noexcept;

    // As the constructor, but a width outside 0..family bits is an InvalidArgument error with
    // sshuttle's message "Slash in CIDR notation (/33) is not between 0 and 32".
    [[nodiscard]] static Result<Subnet> make(const IpAddress& address, int prefix_width);
    // "ADDRESS/WIDTH" exactly as to_string() writes it: an inet_pton literal, a slash, 1 to 3
    // decimal digits. Host bits are masked like the constructor does.
    [[nodiscard]] static Result<Subnet> parse(std::string_view text);

    Family family() const noexcept { return network.family(); }
    // True when `ip` is of this family and inside the network.
    bool contains(const IpAddress& ip) const noexcept;
    // "10.0.0.0/8", "fd00::/8": the width is always written.
    std::string to_string() const;

    friend auto operator<=>(const Subnet&, const Subnet&) = default;
};

// One parsed subnet argument: a network and the destination ports it covers.
struct SubnetPort {
    Subnet subnet;
    PortRange ports;

    // Text parse_subnetport reads back to the same value: "10.0.0.0/8", "10.0.0.0/8:80-90",
    // "fd00::/8", "[fd00::/8]:80".
    std::string to_string() const;

    friend auto operator<=>(const SubnetPort&, const SubnetPort&) = default;
};

// sshuttle's subnet syntax (positional arguments, -x): a list because a host name yields one
// entry per address it resolves to (deduplicated, in the resolver's order).
//  * more than one ':' -> IPv6: "[ADDR/WIDTH]:PORT[-PORT]", "[ADDR]:PORT[-PORT]", "[ADDR/WIDTH]",
//    "[ADDR]", "ADDR/WIDTH", "ADDR"; brackets must balance. "ADDR/WIDTH:PORT" without brackets is
//    also read, because sshuttle's regular expression reads it.
//  * otherwise "HOST[/WIDTH][:PORT[-PORT]]", HOST being an IPv4 literal with inet_aton meaning
//    ("10.1" is 10.0.0.1, "10/8" is 0.0.0.10/8, "0xb8.0xac.0x0a.0x4a", "3098282570") or a host
//    name, optionally "*."-prefixed, passed to `resolver` as typed.
// The width defaults to 32/128; with a name resolving to both families it is an error.
[[nodiscard]] Result<std::vector<SubnetPort>> parse_subnetport(std::string_view text,
                                                               const Resolver& resolver);

// The contents of an -s/-X file: one subnet per line; surrounding whitespace is stripped, blank
// lines and lines starting with '#' are skipped. Errors are prefixed with "line N: ".
[[nodiscard]] Result<std::vector<SubnetPort>> parse_subnet_file(std::string_view contents,
                                                                const Resolver& resolver);

// sshuttle's ip:port syntax (--listen items, --to-ns): "PORT" (all digits: 0.0.0.0, the IPv4
// wildcard, as sshuttle does), "HOST", "HOST:PORT", "[HOST]", "[HOST]:PORT", HOST being an IPv4
// literal (inet_aton forms), a host name, or, only inside brackets, an IPv6 literal. A missing
// port is 0 (pick one). A name with several addresses yields the smallest (IPv4 first, then by
// bytes), so "localhost" is 127.0.0.1.
[[nodiscard]] Result<std::pair<IpAddress, std::uint16_t>> parse_ipport(std::string_view text,
                                                                       const Resolver& resolver);

// An IPv4 literal exactly as glibc's inet_aton reads it (1 to 4 parts, each decimal, 0x-hex or
// 0-octal, the last part filling the remaining bytes) except that nothing may follow it: inet_aton
// stops at the first whitespace and ignores the rest. nullopt when it is not such a literal.
std::optional<IpAddress> parse_ipv4_inet_aton(std::string_view text);

}  // namespace sshuttle

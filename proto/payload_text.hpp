// The ASCII field syntax shared by the mux payload parsers (mux_messages.cpp,
// mux_extensions.cpp): numbers, address families, comma-separated fields, lines, host names,
// and the error messages that quote a bad payload. Internal to proto/.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "proto/bytes.hpp"
#include "proto/mux_frame.hpp"

namespace sshuttle::proto::payload_text {

// Characters of the longest IPv6 literal (inet_ntop's INET6_ADDRSTRLEN less the NUL).
inline constexpr std::size_t kMaxIpText = 45;
// Decimal digits of a u16 (port, address family).
inline constexpr std::size_t kMaxU16Digits = 5;
// Decimal digits of a prefix width (at most 128).
inline constexpr std::size_t kMaxWidthDigits = 3;

// "<COMMAND> payload '<text>': <what>" (Protocol).
Error malformed(Command command, ByteView text, const std::string& what);
// "<COMMAND> payload of N bytes is longer than a mux frame (65535)" (TooLarge).
Error too_large(Command command, std::size_t size);
// "<COMMAND> payload must be empty, got N bytes '...'" (Protocol).
Error must_be_empty(Command command, ByteView payload);

// Plain ASCII decimal: no sign, no spaces, at most max_digits digits (leading zeros allowed,
// as Python's int() allows them).
std::optional<unsigned> parse_decimal(std::string_view text, std::size_t max_digits);
std::optional<std::uint16_t> parse_port(std::string_view text);
// 2 is IPv4; any other number is the sender's AF_INET6 (see kWireAfInet6).
std::optional<Family> parse_family(std::string_view text);
// The number we send: 2 or Linux's 10.
unsigned wire_family(Family family);
// An address literal that must be of the given family.
std::optional<IpAddress> parse_ip(std::string_view text, Family family);
// [-A-Za-z0-9_.]{1,253}: the names upstream's client accepts.
bool is_host_name(std::string_view name);
// Bytes 0x20..0x7e only.
bool is_printable_ascii(std::string_view text);

void append_text(std::vector<std::uint8_t>& out, std::string_view text);
void append_bytes(std::vector<std::uint8_t>& out, ByteView bytes);

// Splits text at sep into exactly N fields; nullopt for any other count.
template <std::size_t N>
std::optional<std::array<std::string_view, N>> split_exact(std::string_view text, char sep) {
    std::array<std::string_view, N> fields;
    for (std::size_t i = 0; i + 1 < N; ++i) {
        const std::size_t at = text.find(sep);
        if (at == std::string_view::npos) return std::nullopt;
        fields[i] = text.substr(0, at);
        text.remove_prefix(at + 1);
    }
    if (text.find(sep) != std::string_view::npos) return std::nullopt;
    fields[N - 1] = text;
    return fields;
}

// Calls fn(line) for each non-blank '\n'-separated line; stops at the first error. Blank lines
// are skipped because upstream's readers strip and skip them.
template <class Fn>
Result<void> for_each_line(std::string_view text, Fn&& fn) {
    while (!text.empty()) {
        const std::size_t at = text.find('\n');
        const std::string_view line = text.substr(0, at);
        text.remove_prefix(at == std::string_view::npos ? text.size() : at + 1);
        if (line.empty()) continue;
        if (auto r = fn(line); !r) return r;
    }
    return ok();
}

}  // namespace sshuttle::proto::payload_text

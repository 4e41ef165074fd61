#include "proto/payload_text.hpp"

#include "proto/mux_messages.hpp"

namespace sshuttle::proto::payload_text {

namespace {
std::string cmd(Command command) {
    return std::string(command_name(command));
}
}  // namespace

Error malformed(Command command, ByteView text, const std::string& what) {
    return Error(Errc::Protocol, cmd(command) + " payload " + quote_bytes(text) + ": " + what);
}

Error too_large(Command command, std::size_t size) {
    return Error(Errc::TooLarge, cmd(command) + " payload of " + std::to_string(size) +
                                     " bytes is longer than a mux frame (65535)");
}

Error must_be_empty(Command command, ByteView payload) {
    return Error(Errc::Protocol, cmd(command) + " payload must be empty, got " +
                                     std::to_string(payload.size()) + " bytes " +
                                     quote_bytes(payload));
}

std::optional<unsigned> parse_decimal(std::string_view text, std::size_t max_digits) {
    if (text.empty() || text.size() > max_digits) return std::nullopt;
    unsigned value = 0;
    for (char c : text) {
        if (c < '0' || c > '9') return std::nullopt;
        value = value * 10 + static_cast<unsigned>(c - '0');
    }
    return value;
}

std::optional<std::uint16_t> parse_port(std::string_view text) {
    auto value = parse_decimal(text, kMaxU16Digits);
    if (!value || *value > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(*value);
}

std::optional<Family> parse_family(std::string_view text) {
    auto value = parse_decimal(text, kMaxU16Digits);
    if (!value || *value > 65535) return std::nullopt;
    return *value == kWireAfInet ? Family::V4 : Family::V6;
}

unsigned wire_family(Family family) {
    return family == Family::V4 ? kWireAfInet : kWireAfInet6;
}

std::optional<IpAddress> parse_ip(std::string_view text, Family family) {
    auto ip = IpAddress::parse(text);
    if (!ip || ip->family() != family) return std::nullopt;
    return *ip;
}

bool is_host_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxHostNameLength) return false;
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
        if (!ok) return false;
    }
    return true;
}

bool is_printable_ascii(std::string_view text) {
    for (char c : text)
        if (c < 0x20 || c > 0x7e) return false;
    return true;
}

void append_text(std::vector<std::uint8_t>& out, std::string_view text) {
    out.insert(out.end(), text.begin(), text.end());
}

void append_bytes(std::vector<std::uint8_t>& out, ByteView bytes) {
    out.insert(out.end(), bytes.begin(), bytes.end());
}

}  // namespace sshuttle::proto::payload_text

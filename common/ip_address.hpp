// IpAddress: an IPv4 or IPv6 address as a value (network byte order bytes + family).
//
// parse() accepts only the canonical literal forms (inet_pton): "10.1.2.3", "fd00::1". The
// looser inet_aton forms sshuttle accepts in subnets ("10.1", "0xa.1", "167772161") are handled
// by the subnet parser, which is the only place where they are allowed.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace sshuttle {

enum class Family : std::uint8_t { V4, V6 };

// "IPv4" / "IPv6", for messages.
const char* family_name(Family family) noexcept;
// The address length in bits: 32 or 128.
constexpr int family_bits(Family family) noexcept { return family == Family::V4 ? 32 : 128; }

class IpAddress {
public:
    // 0.0.0.0
    IpAddress() = default;

    [[nodiscard]] static Result<IpAddress> parse(std::string_view text);
    static IpAddress v4(const in_addr& addr) noexcept;
    static IpAddress v6(const in6_addr& addr) noexcept;
    // From 4 or 16 bytes in network order; the family follows from the size.
    static IpAddress v4_bytes(const std::array<std::uint8_t, 4>& bytes) noexcept;

    Family family() const noexcept { return family_; }
    bool is_v4() const noexcept { return family_ == Family::V4; }
    bool is_v6() const noexcept { return family_ == Family::V6; }
    // 4 or 16 meaningful bytes at the front of bytes().
    std::size_t size() const noexcept { return is_v4() ? 4 : 16; }
    const std::array<std::uint8_t, 16>& bytes() const noexcept { return bytes_; }

    in_addr to_in_addr() const noexcept;     // requires is_v4()
    in6_addr to_in6_addr() const noexcept;   // requires is_v6()

    // The address with every bit past the first `width` cleared. width is clamped to the family.
    IpAddress masked(int width) const noexcept;
    bool is_loopback() const noexcept;
    bool is_unspecified() const noexcept;

    // Canonical text: dotted quad, or RFC 5952 IPv6 (inet_ntop), no brackets.
    std::string to_string() const;

    friend auto operator<=>(const IpAddress&, const IpAddress&) = default;

private:
    Family family_ = Family::V4;
    std::array<std::uint8_t, 16> bytes_{};
};

// A socket address for (ip, port), for bind/connect. len is the size to pass with it.
struct SockAddr {
    sockaddr_storage storage{};
    socklen_t len = 0;
    const sockaddr* get() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
    sockaddr* get() noexcept { return reinterpret_cast<sockaddr*>(&storage); }
};
SockAddr make_sockaddr(const IpAddress& ip, std::uint16_t port) noexcept;
// "10.0.0.1:80", "[fd00::2]:443": an address and port as people and sshuttle write them.
std::string endpoint_string(const IpAddress& ip, std::uint16_t port);
// The address and port of an AF_INET/AF_INET6 socket address; InvalidArgument for others.
[[nodiscard]] Result<std::pair<IpAddress, std::uint16_t>> from_sockaddr(const sockaddr* sa,
                                                                        socklen_t len);

}  // namespace sshuttle

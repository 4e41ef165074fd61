#include "common/ip_address.hpp"

#include <arpa/inet.h>

#include <cstring>

namespace sshuttle {

const char* family_name(Family family) noexcept { return family == Family::V4 ? "IPv4" : "IPv6"; }

Result<IpAddress> IpAddress::parse(std::string_view text) {
    // inet_pton needs a NUL-terminated string; the longest IPv6 literal is 45 characters.
    if (text.empty() || text.size() > INET6_ADDRSTRLEN)
        return Error(Errc::InvalidArgument, "'" + std::string(text) + "' is not an IP address");
    std::string s(text);
    in_addr a4{};
    if (::inet_pton(AF_INET, s.c_str(), &a4) == 1) return v4(a4);
    in6_addr a6{};
    if (::inet_pton(AF_INET6, s.c_str(), &a6) == 1) return v6(a6);
    return Error(Errc::InvalidArgument, "'" + s + "' is not an IP address");
}

IpAddress IpAddress::v4(const in_addr& addr) noexcept {
    IpAddress ip;
    ip.family_ = Family::V4;
    std::memcpy(ip.bytes_.data(), &addr, 4);
    return ip;
}

IpAddress IpAddress::v6(const in6_addr& addr) noexcept {
    IpAddress ip;
    ip.family_ = Family::V6;
    std::memcpy(ip.bytes_.data(), &addr, 16);
    return ip;
}

IpAddress IpAddress::v4_bytes(const std::array<std::uint8_t, 4>& bytes) noexcept {
    IpAddress ip;
    std::memcpy(ip.bytes_.data(), bytes.data(), 4);
    return ip;
}

in_addr IpAddress::to_in_addr() const noexcept {
    in_addr a{};
    std::memcpy(&a, bytes_.data(), 4);
    return a;
}

in6_addr IpAddress::to_in6_addr() const noexcept {
    in6_addr a{};
    std::memcpy(&a, bytes_.data(), 16);
    return a;
}

IpAddress IpAddress::masked(int width) const noexcept {
    IpAddress out = *this;
    int bits = family_bits(family_);
    if (width < 0) width = 0;
    if (width > bits) width = bits;
    for (int i = 0; i < static_cast<int>(size()); ++i) {
        int keep = width - i * 8;  // bits of this byte that stay
        if (keep >= 8) continue;
        std::uint8_t mask = keep <= 0 ? 0 : static_cast<std::uint8_t>(0xFF << (8 - keep));
        out.bytes_[static_cast<std::size_t>(i)] &= mask;
    }
    return out;
}

bool IpAddress::is_loopback() const noexcept {
    if (is_v4()) return bytes_[0] == 127;
    in6_addr a = to_in6_addr();
    return IN6_IS_ADDR_LOOPBACK(&a);
}

bool IpAddress::is_unspecified() const noexcept {
    for (std::size_t i = 0; i < size(); ++i)
        if (bytes_[i] != 0) return false;
    return true;
}

std::string IpAddress::to_string() const {
    char buf[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(is_v4() ? AF_INET : AF_INET6, bytes_.data(), buf, sizeof buf);
    return buf;
}

SockAddr make_sockaddr(const IpAddress& ip, std::uint16_t port) noexcept {
    SockAddr out;
    if (ip.is_v4()) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&out.storage);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr = ip.to_in_addr();
        out.len = sizeof(sockaddr_in);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&out.storage);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        sin6->sin6_addr = ip.to_in6_addr();
        out.len = sizeof(sockaddr_in6);
    }
    return out;
}

Result<std::pair<IpAddress, std::uint16_t>> from_sockaddr(const sockaddr* sa, socklen_t len) {
    if (sa->sa_family == AF_INET && len >= static_cast<socklen_t>(sizeof(sockaddr_in))) {
        const auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
        return std::pair{IpAddress::v4(sin->sin_addr), ntohs(sin->sin_port)};
    }
    if (sa->sa_family == AF_INET6 && len >= static_cast<socklen_t>(sizeof(sockaddr_in6))) {
        const auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
        IpAddress ip = IpAddress::v6(sin6->sin6_addr);
        // A v4-mapped address (::ffff:a.b.c.d) is the IPv4 peer of a dual-stack socket.
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            in_addr a4{};
            std::memcpy(&a4, &sin6->sin6_addr.s6_addr[12], 4);
            ip = IpAddress::v4(a4);
        }
        return std::pair{ip, ntohs(sin6->sin6_port)};
    }
    return Error(Errc::InvalidArgument,
                 "unsupported socket address family " + std::to_string(sa->sa_family));
}

std::string endpoint_string(const IpAddress& ip, std::uint16_t port) {
    return (ip.is_v4() ? ip.to_string() : "[" + ip.to_string() + "]") + ":" + std::to_string(port);
}

}  // namespace sshuttle

// Transparent sockets for the tproxy method. The helper mints them (IP_TRANSPARENT needs
// CAP_NET_ADMIN or CAP_NET_RAW) and hands them to the unprivileged daemon as fds, so the daemon
// never holds a capability. All are SOCK_CLOEXEC | SOCK_NONBLOCK.
#pragma once

#include <cstdint>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "common/unique_fd.hpp"

namespace sshuttle::helper {

enum class TransparentKind : std::uint8_t {
    TcpListener,  // bound and listening (backlog SOMAXCONN); accept() gives sockets whose
                  // getsockname() is the original destination
    UdpListener,  // bound; IP_RECVORIGDSTADDR / IPV6_RECVORIGDSTADDR on, so recvmsg() reports
                  // each datagram's original destination
    UdpReply,     // SO_REUSEADDR, bound to a *foreign* address:port (the original destination)
                  // so replies to the local client come from where it sent to; not connected
};

// A transparent socket of `kind` bound to address:port. IPv6 sockets are IPV6_V6ONLY. Listener
// ports must be 1..65535 (the daemon chooses them); a UdpReply's address is the remote peer's.
// A PermissionDenied error says the caller lacks CAP_NET_ADMIN/CAP_NET_RAW.
[[nodiscard]] Result<UniqueFd> make_transparent_socket(TransparentKind kind,
                                                       const IpAddress& address,
                                                       std::uint16_t port);

}  // namespace sshuttle::helper

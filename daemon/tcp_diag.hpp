// TCP byte counters from the kernel for sockets sshuttled no longer holds.
//
// On the ssh path the accepted socket belongs to ssh once the forward opened, so sshuttled sees
// no payload. It remembers each socket's SO_COOKIE and reads the counters of those sockets with
// one sock_diag (NETLINK_SOCK_DIAG, INET_DIAG_INFO: struct tcp_info) dump per address family.
// Unprivileged: a process may dump the TCP sockets of its own network namespace.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <unordered_set>

#include "common/error.hpp"

namespace sshuttle::daemon {

struct TcpCounters {
    std::uint64_t received = 0;  // tcpi_bytes_received: bytes the application sent us
    std::uint64_t acked = 0;     // tcpi_bytes_acked: bytes sent to the application and acked
};

// SO_COOKIE of a socket: the kernel's id for it, also reported by sock_diag; 0 if unavailable.
std::uint64_t socket_cookie(int fd) noexcept;

// The counters of every TCP socket in this network namespace whose cookie is in `wanted`
// (sockets already gone are simply absent). Reads the kernel's answer to the end.
[[nodiscard]] Result<std::unordered_map<std::uint64_t, TcpCounters>> read_tcp_counters(
    const std::unordered_set<std::uint64_t>& wanted);

}  // namespace sshuttle::daemon

// TCP byte counters from the kernel for sockets sshuttled no longer holds.
//
// On the ssh path the accepted socket belongs to ssh once the forward opened, so sshuttled sees
// no payload. It remembers each socket's identity (addresses, ports, SO_COOKIE) and asks
// sock_diag (NETLINK_SOCK_DIAG, INET_DIAG_INFO: struct tcp_info) for exactly those sockets: one
// exact lookup per socket, many per system call. A dump of all sockets would be simpler, but the
// kernel walks its whole established hash for each dump (about 2.5 ms here even with a handful
// of sockets), which at a few samples a second was most of sshuttled's CPU with idle
// connections. Unprivileged: a process may query the sockets of its own network namespace.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/error.hpp"

namespace sshuttle::daemon {

struct TcpCounters {
    std::uint64_t received = 0;  // tcpi_bytes_received: bytes the application sent us
    std::uint64_t acked = 0;     // tcpi_bytes_acked: bytes sent to the application and acked
};

// Who a socket is, for an exact sock_diag lookup.
struct TcpSocketId {
    std::uint64_t cookie = 0;  // SO_COOKIE
    sockaddr_storage local{};  // getsockname
    sockaddr_storage remote{}; // getpeername
};

// The identity of a connected TCP socket; nullopt if it cannot be read.
std::optional<TcpSocketId> tcp_socket_id(int fd) noexcept;

// The counters of those sockets that still exist, by cookie (gone ones are absent). Bounded:
// requests go in batches, each answered before the next.
[[nodiscard]] Result<std::unordered_map<std::uint64_t, TcpCounters>> read_tcp_counters(
    const std::vector<TcpSocketId>& sockets);

}  // namespace sshuttle::daemon

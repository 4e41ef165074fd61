// TcpListener: the sockets the firewall redirects captured connections to.
//
// One listening socket per address (127.0.0.1 and ::1 by default). For each accepted connection
// it finds where the application meant to go (SO_ORIGINAL_DST for nat/nft redirects, the local
// address for tproxy), drops connections made to the listener itself, and hands the socket and
// its destination to the owner (TcpRouter), which picks the path. The owner may pause accepting
// (connections then wait in the kernel's backlog) and resume it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "common/ip_address.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"

namespace sshuttle::daemon {

// Where a redirected connection was going: SO_ORIGINAL_DST (IPv4 or IPv6), or getsockname()
// when the socket was not redirected by NAT (tproxy, or no rule at all).
[[nodiscard]] Result<std::pair<IpAddress, std::uint16_t>> original_destination(int fd);

// A bound, listening, non-blocking socket with the full backlog (sshuttle's backlog of 10 drops
// bursts of connections). IPv6 sockets are v6-only.
[[nodiscard]] Result<UniqueFd> listen_tcp(const IpAddress& ip, std::uint16_t port);

class TcpListener {
public:
    using ConnectionCallback =
        std::function<void(UniqueFd socket, const IpAddress& ip, std::uint16_t port)>;
    // Asked before each accept(): false leaves the next connections in the backlog.
    using GateCallback = std::function<bool()>;

    TcpListener(sd_event* event, IpAddress address, std::uint16_t port, UniqueFd socket,
                ConnectionCallback on_connection, GateCallback may_accept = {});
    // Starts accepting (call when the session is ready; until then the kernel queues
    // connections).
    [[nodiscard]] Result<void> start();
    // Stops and resumes watching the socket (the owner's backpressure).
    void pause();
    void resume();
    const IpAddress& address() const noexcept { return address_; }
    std::uint16_t port() const noexcept { return port_; }
    std::uint64_t accepted() const noexcept { return accepted_; }

private:
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata) noexcept;
    void accept_some();
    void dispatch(UniqueFd socket);

    sd_event* event_;
    IpAddress address_;
    std::uint16_t port_;
    UniqueFd socket_;
    ConnectionCallback on_connection_;
    GateCallback may_accept_;
    EventSourcePtr source_;
    bool paused_ = false;
    std::uint64_t accepted_ = 0;
};

}  // namespace sshuttle::daemon

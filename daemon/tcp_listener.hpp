// TcpListener: the sockets the firewall redirects captured connections to.
//
// One listening socket per address (127.0.0.1 and ::1 by default). For each accepted connection
// it finds where the application meant to go (SO_ORIGINAL_DST for nat/nft redirects, the local
// address for tproxy), drops connections made to the listener itself, opens a mux channel with
// TCP_CONNECT and hands the socket to a TcpChannel.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "common/ip_address.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"
#include "daemon/mux.hpp"

namespace sshuttle::daemon {

// Where a redirected connection was going: SO_ORIGINAL_DST (IPv4 or IPv6), or getsockname()
// when the socket was not redirected by NAT (tproxy, or no rule at all).
[[nodiscard]] Result<std::pair<IpAddress, std::uint16_t>> original_destination(int fd);

// A bound, listening, non-blocking socket with the full backlog (sshuttle's backlog of 10 drops
// bursts of connections). IPv6 sockets are v6-only.
[[nodiscard]] Result<UniqueFd> listen_tcp(const IpAddress& ip, std::uint16_t port);

// The TCP_CONNECT payload for a destination: "2,<ip>,<port>" or "10,<ip>,<port>" (Linux AF
// values, which the stock server maps: 2 is IPv4, anything else IPv6).
std::string tcp_connect_payload(const IpAddress& ip, std::uint16_t port);

class TcpListener {
public:
    TcpListener(sd_event* event, Mux& mux, IpAddress address, std::uint16_t port, UniqueFd socket);
    // Starts accepting (call when the mux is ready; until then the kernel queues connections).
    [[nodiscard]] Result<void> start();
    const IpAddress& address() const noexcept { return address_; }
    std::uint16_t port() const noexcept { return port_; }
    std::uint64_t accepted() const noexcept { return accepted_; }

private:
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata) noexcept;
    void accept_some();
    void open_channel(UniqueFd socket);

    sd_event* event_;
    Mux& mux_;
    IpAddress address_;
    std::uint16_t port_;
    UniqueFd socket_;
    EventSourcePtr source_;
    std::uint64_t accepted_ = 0;
};

}  // namespace sshuttle::daemon

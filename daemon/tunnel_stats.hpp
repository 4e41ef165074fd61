// TunnelStats: a read-only snapshot of one tunnel for the control socket's Status and Watch.
// Filled by Tunnel::stats(); the control server never reaches into the tunnel's parts.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "daemon/ssh_forward.hpp"
#include "daemon/tcp_router.hpp"

namespace sshuttle::daemon {

struct TunnelStats {
    enum class State { Connecting, Connected, Stopping };
    State state = State::Connecting;
    std::size_t channels_open = 0;       // TCP channels on both paths, DNS queries in flight
    std::size_t channels_ssh = 0;        // connections handed to ssh masters, open now
    std::size_t channels_agent = 0;      // mux channels to the agent (TCP and DNS), open now
    std::string tcp_path;                // "ssh", "agent (server forbids forwarding)", ...
    TcpRouter::Stats tcp;                // where connections went
    std::vector<SshForwarder::MasterStats> ssh_connections;
    std::uint64_t bytes_in = 0;          // bytes of the agent's stream received from the server
    std::uint64_t bytes_out = 0;         // bytes of the agent's stream sent to the server
    std::uint64_t ssh_bytes_in = 0;      // ssh path: bytes to the applications (sampled)
    std::uint64_t ssh_bytes_out = 0;     // ssh path: bytes from the applications (sampled)
    std::uint64_t connections = 0;       // redirected TCP connections accepted so far
    unsigned reconnects = 0;             // ssh sessions restarted (0 until reconnect exists)
    std::vector<std::string> listening;  // "127.0.0.1:12300", "[::1]:12300"
    std::uint16_t dns_port = 0;          // 0: no DNS listener
    std::string method;                  // the firewall method in use; "" with --no-firewall
    std::string helper;                  // who installs the rules ("the sshuttle-helper service")
    std::uint64_t firewall_reapplied = 0;  // rules re-applied after the helper was lost
};

inline const char* state_name(TunnelStats::State state) noexcept {
    switch (state) {
        case TunnelStats::State::Connecting:
            return "connecting";
        case TunnelStats::State::Connected:
            return "connected";
        case TunnelStats::State::Stopping:
            return "stopping";
    }
    return "unknown";
}

}  // namespace sshuttle::daemon

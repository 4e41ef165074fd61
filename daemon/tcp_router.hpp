// TcpRouter: chooses the path of each captured TCP connection.
//
//  * ssh: the connection is handed to an ssh ControlMaster (SshForwarder); ssh and sshd carry
//    it in their own channel, as for `ssh -L`.
//  * agent: a channel of the sshuttle mux to our agent (or a stock sshuttle server), which
//    connects on the server. Always there; used for DNS and UDP anyway.
//
// --tcp-path auto (the default) prefers ssh and falls back to the agent:
//  * a forward the master refused (or that broke before it opened) is retried through the agent
//    with the same, untouched socket. If the agent connects where ssh could not and no ssh forward
//    ever opened, the server forbids forwarding (AllowTcpForwarding no, DisableForwarding): the
//    tunnel uses the agent from then on and says so once. If ssh forwards did open before, the
//    server limits them (PermitOpen): that destination goes through the agent from then on.
//    If both fail, the client is reset (RST), as the agent's connect-error does.
//  * a forward that timed out is reset, not retried (the target did not answer the server).
//  * no control socket (an ssh that is not OpenSSH, or -e/config options that disable
//    multiplexing), every master gone, or every master at its descriptor budget: agent.
// --tcp-path ssh never uses the agent for TCP (failures reset the client); --tcp-path agent
// never uses ssh (sshuttle 1.x's data path).
//
// The decisions are pure functions (choose_route, after_ssh_failure) over a small state.
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <utility>

#include "common/ip_address.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"
#include "daemon/mux.hpp"
#include "daemon/ssh_forward.hpp"
#include "proto/tunnel_options.hpp"

namespace sshuttle::daemon {

using proto::TcpPath;
using proto::tcp_path_name;

// What is known about forwarding through ssh on this session.
enum class SshVerdict {
    Unknown,      // no forward failed in a way that tells (or none tried yet)
    Forbidden,    // the agent connected where ssh was refused, and ssh never opened a forward
    Unavailable,  // no control socket: this ssh does not multiplex
};

enum class Route { Ssh, Agent, Reset };

struct RouteInputs {
    TcpPath mode = TcpPath::Auto;
    SshVerdict verdict = SshVerdict::Unknown;
    bool master_available = false;     // a master that is up and under its budget
    bool destination_on_agent = false; // this destination was refused by ssh, served by the agent
};
Route choose_route(const RouteInputs& in) noexcept;

// After a failed ssh forward: retry through the agent (auto mode, not a timeout) or reset.
Route after_ssh_failure(TcpPath mode, bool timed_out) noexcept;

class TcpRouter {
public:
    // Destinations remembered as "the agent only" (PermitOpen limits); later ones go by the
    // general rule.
    static constexpr std::size_t kMaxAgentDestinations = 4096;

    struct Stats {
        std::uint64_t via_ssh = 0;      // handed to a master (opened or not)
        std::uint64_t via_agent = 0;    // sent to the agent, first try or retry
        std::uint64_t retried = 0;      // ssh failed, retried through the agent
        std::uint64_t reset = 0;        // no path worked: RST to the client
    };

    // forwarder may be null (no masters: --tcp-path agent).
    TcpRouter(Mux& mux, SshForwarder* forwarder, TcpPath mode);

    // A captured connection and where it was going.
    void route(UniqueFd socket, const IpAddress& ip, std::uint16_t port);
    // Listeners ask before each accept(); false while every master has its maximum of opens in
    // flight (accepting resumes through the forwarder's on_capacity).
    bool may_accept() const noexcept;
    // The session's masters made no control socket: TCP goes through the agent.
    void ssh_unavailable(std::string why);

    // Called with the forwarder's failures (wired by the owner).
    void on_ssh_failed(SshForwarder::Failure failure);

    TcpPath mode() const noexcept { return mode_; }
    SshVerdict verdict() const noexcept { return verdict_; }
    // "ssh", "agent (server forbids forwarding)", ... for status.
    std::string describe() const;
    const Stats& stats() const noexcept { return stats_; }

private:
    void via_agent(UniqueFd socket, const IpAddress& ip, std::uint16_t port, bool after_ssh);
    void agent_outcome(const IpAddress& ip, std::uint16_t port, bool connected);
    bool master_available() const noexcept;

    Mux& mux_;
    SshForwarder* forwarder_;
    TcpPath mode_;
    SshVerdict verdict_ = SshVerdict::Unknown;
    std::string unavailable_why_;
    std::set<std::pair<IpAddress, std::uint16_t>> agent_destinations_;
    Stats stats_;
};

}  // namespace sshuttle::daemon

#include "daemon/tcp_router.hpp"

#include <spdlog/spdlog.h>

#include "daemon/tcp_channel.hpp"

namespace sshuttle::daemon {

Route choose_route(const RouteInputs& in) noexcept {
    switch (in.mode) {
        case TcpPath::Agent:
            return Route::Agent;
        case TcpPath::Ssh:
            return in.master_available ? Route::Ssh : Route::Reset;
        case TcpPath::Auto:
            if (in.verdict != SshVerdict::Unknown || in.destination_on_agent) return Route::Agent;
            return in.master_available ? Route::Ssh : Route::Agent;
    }
    return Route::Agent;
}

Route after_ssh_failure(TcpPath mode, bool timed_out) noexcept {
    if (mode == TcpPath::Auto && !timed_out) return Route::Agent;
    return Route::Reset;
}

TcpRouter::TcpRouter(Mux& mux, SshForwarder* forwarder, TcpPath mode)
    : mux_(mux), forwarder_(forwarder), mode_(mode) {}

bool TcpRouter::master_available() const noexcept {
    return forwarder_ && verdict_ != SshVerdict::Unavailable && forwarder_->pick().has_value();
}

bool TcpRouter::may_accept() const noexcept {
    if (!forwarder_ || mode_ == TcpPath::Agent || verdict_ != SshVerdict::Unknown) return true;
    return !forwarder_->opens_saturated();
}

void TcpRouter::ssh_unavailable(std::string why) {
    verdict_ = SshVerdict::Unavailable;
    unavailable_why_ = std::move(why);
}

void TcpRouter::route(UniqueFd socket, const IpAddress& ip, std::uint16_t port) {
    RouteInputs in;
    in.mode = mode_;
    in.verdict = verdict_;
    in.master_available = master_available();
    in.destination_on_agent = agent_destinations_.count({ip, port}) != 0;
    switch (choose_route(in)) {
        case Route::Ssh: {
            std::size_t master = *forwarder_->pick();
            ++stats_.via_ssh;
            spdlog::debug("ssh connection {}: forward to {}", master, endpoint_string(ip, port));
            forwarder_->forward(master, std::move(socket), ip, port);
            return;
        }
        case Route::Agent:
            return via_agent(std::move(socket), ip, port, false);
        case Route::Reset:
            ++stats_.reset;
            spdlog::warn("--tcp-path ssh: no ssh connection can take {} now; reset",
                         endpoint_string(ip, port));
            reset_connection(std::move(socket));
            return;
    }
}

void TcpRouter::on_ssh_failed(SshForwarder::Failure failure) {
    const bool timed_out = failure.error.code == Errc::Timeout;
    if (after_ssh_failure(mode_, timed_out) == Route::Agent) {
        spdlog::debug("ssh connection {}: {} failed ({}); trying the agent", failure.master,
                      endpoint_string(failure.ip, failure.port), failure.error.message);
        ++stats_.retried;
        return via_agent(std::move(failure.client), failure.ip, failure.port, true);
    }
    ++stats_.reset;
    spdlog::info("connection to {} failed: {}", endpoint_string(failure.ip, failure.port),
                 failure.error.message);
    reset_connection(std::move(failure.client));
}

void TcpRouter::via_agent(UniqueFd socket, const IpAddress& ip, std::uint16_t port,
                          bool after_ssh) {
    ++stats_.via_agent;
    std::function<void(bool)> outcome;
    // Only a retry tells something about ssh, and only while the verdict is open.
    if (after_ssh && verdict_ == SshVerdict::Unknown)
        outcome = [this, ip, port](bool connected) { agent_outcome(ip, port, connected); };
    if (!open_agent_channel(mux_, std::move(socket), ip, port, std::move(outcome)))
        ++stats_.reset;
}

void TcpRouter::agent_outcome(const IpAddress& ip, std::uint16_t port, bool connected) {
    if (!connected || verdict_ != SshVerdict::Unknown) return;  // both failed: a real refusal
    bool ssh_ever_opened = false;
    if (forwarder_)
        for (const auto& m : forwarder_->stats()) ssh_ever_opened |= m.opened > 0;
    if (!ssh_ever_opened) {
        verdict_ = SshVerdict::Forbidden;
        spdlog::warn("the server refuses TCP forwarding through ssh (AllowTcpForwarding or "
                     "DisableForwarding); TCP goes through the agent from now on");
        return;
    }
    if (agent_destinations_.size() < kMaxAgentDestinations &&
        agent_destinations_.emplace(ip, port).second)
        spdlog::info("the server refuses ssh forwarding to {} (PermitOpen?); that destination "
                     "goes through the agent",
                     endpoint_string(ip, port));
}

std::string TcpRouter::describe() const {
    if (mode_ == TcpPath::Agent) return "agent (--tcp-path agent)";
    if (verdict_ == SshVerdict::Unavailable) return "agent (" + unavailable_why_ + ")";
    if (verdict_ == SshVerdict::Forbidden) return "agent (server forbids forwarding)";
    if (forwarder_ && !forwarder_->any_up()) return "agent (no ssh connection up)";
    if (!agent_destinations_.empty())
        return "ssh (" + std::to_string(agent_destinations_.size()) +
               " destination(s) through the agent: the server limits forwarding)";
    return "ssh";
}

}  // namespace sshuttle::daemon

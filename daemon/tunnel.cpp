#include "daemon/tunnel.hpp"

#include <signal.h>
#include <systemd/sd-daemon.h>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "daemon/agent_source.hpp"

namespace sshuttle::daemon {

namespace {
// Microseconds we wait for ssh to exit on its own after its stdin closed.
constexpr std::uint64_t kGracePeriod = 3'000'000;

std::string show(const IpAddress& ip, std::uint16_t port) {
    return (ip.is_v4() ? ip.to_string() : "[" + ip.to_string() + "]") + ":" + std::to_string(port);
}
}  // namespace

std::string agent_options_json(const TunnelConfig& config) {
    nlohmann::json j = {
        {"latency_control", config.mux.latency_control},
        {"latency_buffer_size", config.mux.latency_buffer_size},
        {"auto_nets", config.auto_nets},
        {"verbosity", config.verbosity},
    };
    j["to_nameserver"] = config.to_ns.empty() ? nlohmann::json(nullptr) : nlohmann::json(config.to_ns);
    return j.dump();
}

Tunnel::Tunnel(sd_event* event, TunnelConfig config) : event_(event), config_(std::move(config)) {}
Tunnel::~Tunnel() = default;

Result<void> Tunnel::bind_listeners() {
    // Every family listens on the same port; the first port where all binds work wins.
    bool search = std::any_of(config_.listen.begin(), config_.listen.end(),
                              [](const ListenAddress& l) { return l.port == 0; });
    std::uint16_t port = kFirstPort;
    for (;; --port) {
        tcp_sockets_.clear();
        Error last;
        bool all = true;
        for (const ListenAddress& l : config_.listen) {
            std::uint16_t p = search ? port : l.port;
            auto fd = listen_tcp(l.ip, p);
            if (!fd) {
                last = fd.error();
                all = false;
                break;
            }
            tcp_sockets_.emplace_back(l.ip, std::move(*fd));
        }
        if (all) break;
        if (!search || last.sys_errno != EADDRINUSE || port == kLastPort) return last;
    }
    std::uint16_t tcp_port = search ? port : config_.listen.front().port;
    if (!config_.dns) return ok();
    for (std::uint16_t p = static_cast<std::uint16_t>(tcp_port - 1); p >= kLastPort; --p) {
        dns_sockets_.clear();
        bool all = true;
        for (const ListenAddress& l : config_.listen) {
            auto fd = bind_udp(l.ip, p);
            if (!fd) {
                all = false;
                break;
            }
            dns_sockets_.push_back(std::move(*fd));
        }
        if (all) {
            dns_port_ = p;
            return ok();
        }
    }
    return Error(Errc::Io, "no free UDP port for the DNS listener");
}

Result<void> Tunnel::start() {
    if (auto r = bind_listeners(); !r) return r.error().with_context("listeners");

    std::string payload;
    if (config_.launch.server_cmd.empty())
        payload = agent_payload(agent_source(), agent_options_json(config_));
    auto argv = ssh_argv(config_.ssh_words, config_.remote,
                         remote_command(config_.launch, payload.size()));
    spdlog::debug("starting: {}", fmt::join(argv, " "));

    ssh_ = std::make_unique<SshSession>(
        event_, [this](int status, bool signaled) { on_ssh_exit(status, signaled); });
    auto stream = ssh_->spawn(argv);
    if (!stream) return stream.error();

    Mux::Callbacks callbacks;
    callbacks.on_ready = [this] { on_ready(); };
    callbacks.on_failure = [this](const Error& e) { on_mux_failure(e); };
    callbacks.on_routes = [](std::string_view routes) {
        if (!routes.empty()) spdlog::info("server routes: {}", routes);
    };
    mux_ = std::make_unique<Mux>(event_, std::move(*stream), config_.mux, std::move(callbacks));
    return mux_->start(std::move(payload));
}

void Tunnel::on_ready() {
    std::string where;
    for (auto& [ip, fd] : tcp_sockets_) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len);
        auto bound = from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
        std::uint16_t port = bound ? bound->second : 0;
        auto listener = std::make_unique<TcpListener>(event_, *mux_, ip, port, std::move(fd));
        if (auto r = listener->start(); !r) {
            spdlog::error("{}", r.error().to_string());
            return stop(kExitFatal);
        }
        where += (where.empty() ? "" : ", ") + show(ip, port);
        listeners_.push_back(std::move(listener));
    }
    tcp_sockets_.clear();
    if (!dns_sockets_.empty()) {
        dns_ = std::make_unique<DnsProxy>(event_, *mux_);
        for (UniqueFd& fd : dns_sockets_) (void)dns_->add_socket(std::move(fd));
        dns_sockets_.clear();
        if (auto r = dns_->start(); !r) {
            spdlog::error("{}", r.error().to_string());
            return stop(kExitFatal);
        }
        where += "; DNS on port " + std::to_string(dns_port_);
    }
    spdlog::info("Connected to server. Listening on {}", where);
    sd_notifyf(0, "READY=1\nSTATUS=Connected to %s", config_.remote.to_string().c_str());
}

void Tunnel::on_mux_failure(const Error& error) {
    if (stopping_) return;
    if (ssh_ && ssh_->running()) {
        // ssh usually exits right after its stream breaks, and its exit status is the better
        // explanation: give it the grace period before reporting.
        spdlog::debug("session stream failed: {}", error.to_string());
        if (error.code == Errc::Protocol || error.code == Errc::TooLarge)
            spdlog::error("fatal: {}", error.to_string());
        stop(kExitFatal);
        return;
    }
    spdlog::error("fatal: {}", error.to_string());
    stop(kExitFatal);
}

void Tunnel::on_ssh_exit(int status, bool signaled) {
    if (stopping_ && exit_status_ == 0) {
        spdlog::debug("ssh exited with status {}", status);
    } else if (signaled) {
        spdlog::error("fatal: ssh was killed by signal {}", status - 128);
    } else {
        spdlog::error("fatal: server died: {}", explain_remote_exit(status));
    }
    if (!stopping_) stop(kExitFatal);
    sd_event_exit(event_, exit_status_);
}

void Tunnel::stop(int exit_status) {
    if (stopping_) return;
    stopping_ = true;
    exit_status_ = exit_status;
    sd_notify(0, "STOPPING=1");
    listeners_.clear();
    dns_.reset();
    mux_.reset();  // closes our end of the stream: the agent sees EOF, then ssh exits
    if (!ssh_ || !ssh_->running()) {
        sd_event_exit(event_, exit_status_);
        return;
    }
    sd_event_source* timer = nullptr;
    if (sd_event_add_time_relative(event_, &timer, CLOCK_MONOTONIC, kGracePeriod, 0,
                                   &Tunnel::on_grace_timeout, this) >= 0)
        grace_timer_.reset(timer);
}

TunnelStats Tunnel::stats() const {
    TunnelStats s;
    s.state = stopping_ ? TunnelStats::State::Stopping
              : (mux_ && mux_->ready()) ? TunnelStats::State::Connected
                                        : TunnelStats::State::Connecting;
    if (mux_) {
        s.channels_open = mux_->channel_count();
        s.bytes_in = mux_->bytes_in();
        s.bytes_out = mux_->bytes_out();
    }
    for (const auto& l : listeners_) {
        s.listening.push_back(show(l->address(), l->port()));
        s.connections += l->accepted();
    }
    s.dns_port = dns_ ? dns_port_ : 0;
    return s;
}

int Tunnel::on_grace_timeout(sd_event_source*, uint64_t, void* userdata) noexcept {
    auto* self = static_cast<Tunnel*>(userdata);
    spdlog::warn("ssh did not exit after its stdin closed; terminating it");
    self->ssh_->signal(SIGTERM);
    sd_event_exit(self->event_, self->exit_status_);
    return 0;
}

}  // namespace sshuttle::daemon

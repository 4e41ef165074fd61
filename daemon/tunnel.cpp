#include "daemon/tunnel.hpp"

#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>

#include <charconv>
#include <chrono>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/process.hpp"
#include "common/resolver.hpp"
#include "daemon/agent_source.hpp"
#include "daemon/tcp_channel.hpp"
#include "proto/mux_messages.hpp"
#include "proto/tunnel_options.hpp"

namespace sshuttle::daemon {

namespace {
// Microseconds we wait for ssh to exit on its own after its stdin closed.
constexpr std::uint64_t kGracePeriod = 3'000'000;
// Microseconds between looks for the control sockets of extra ssh connections.
constexpr std::uint64_t kMasterPoll = 100'000;
// Microseconds between samples of the ssh path's byte counters (tcp_diag.hpp): often while few
// connections are open (a short transfer is then still seen), each second with many (one sample
// reads every TCP socket of the namespace).
constexpr std::uint64_t kBytesSampleFast = 200'000;
constexpr std::uint64_t kBytesSample = 1'000'000;
constexpr std::size_t kFastSampleChannels = 64;

bool is_socket(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::size_t fd_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 1024;
    return static_cast<std::size_t>(lim.rlim_cur);
}

std::uint16_t bound_port(int fd) {
    sockaddr_storage ss{};
    socklen_t len = sizeof ss;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return 0;
    auto bound = from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
    return bound ? bound->second : 0;
}

Result<helper::Method> helper_method(proto::Method method) {
    switch (method) {
        case proto::Method::Auto:
        case proto::Method::Nft:
            return helper::Method::Nft;
        case proto::Method::Nat:
            return helper::Method::Nat;
        case proto::Method::Tproxy:
            return helper::Method::Tproxy;
        case proto::Method::Pf:
            return helper::Method::Pf;
        case proto::Method::Ipfw:
            break;
    }
    return Error(Errc::InvalidArgument, "--method ipfw is not supported");
}

std::optional<std::uint32_t> numeric_id(const std::string& text) {
    std::uint32_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
    return v;
}

// --user/--group: a name from the passwd/group database, or a number.
Result<std::uint32_t> lookup_uid(const std::string& user) {
    if (auto id = numeric_id(user)) return *id;
    if (const passwd* pw = ::getpwnam(user.c_str())) return pw->pw_uid;
    return Error(Errc::NotFound, "--user: no user named '" + user + "'");
}
Result<std::uint32_t> lookup_gid(const std::string& group) {
    if (auto id = numeric_id(group)) return *id;
    if (const struct group* gr = ::getgrnam(group.c_str())) return gr->gr_gid;
    return Error(Errc::NotFound, "--group: no group named '" + group + "'");
}

// The real host name behind an ssh_config alias, from `ssh -G` (which only prints its
// configuration); "" when that fails or takes more than 5 s.
std::string ssh_config_host(const TunnelConfig& config) {
    SpawnOptions options;
    options.search_path = true;  // and our environment: ssh reads ~/.ssh/config through HOME
    auto argv = ssh_config_argv(config.ssh_words, config.remote);
    auto out = run_program(argv[0], argv, "", std::chrono::seconds(5), options);
    if (!out || out->exit_code != 0) return "";
    return ssh_config_hostname(out->out);
}


}  // namespace

std::string agent_options_json(const TunnelConfig& config) {
    nlohmann::json j = {
        {"latency_control", config.mux.latency_control},
        {"latency_buffer_size", config.mux.latency_buffer_size},
        {"auto_nets", config.auto_nets},
        {"auto_hosts", config.auto_hosts},
        {"verbosity", config.verbosity},
    };
    j["to_nameserver"] = config.to_ns.empty() ? nlohmann::json(nullptr) : nlohmann::json(config.to_ns);
    return j.dump();
}

Tunnel::Tunnel(sd_event* event, TunnelConfig config, HelperChoice helper)
    : event_(event), config_(std::move(config)), helper_choice_(std::move(helper)) {}
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

// Everything about the rules that can fail before ssh starts fails here: unknown users, a
// method this machine lacks, nothing to capture, no helper (or a refused sudo).
Result<void> Tunnel::prepare_firewall() {
    const FirewallConfig& fc = config_.firewall;
    auto method = helper_method(fc.method);
    if (!method) return std::move(method).error();
    method_ = *method;
    FirewallInputs& in = firewall_inputs_;
    in.name = helper_tunnel_name(config_.name);  // "" maps to "tunnel"
    in.method = method_;
    in.includes = fc.includes;
    in.excludes = fc.excludes;
    in.ns_hosts = fc.ns_hosts;
    in.dns = fc.dns;
    for (const auto& [ip, fd] : tcp_sockets_) {
        in.listen_ips.push_back(ip);
        (ip.is_v4() ? in.tcp_port_v4 : in.tcp_port_v6) = bound_port(fd.get());
        if (dns_port_ != 0) (ip.is_v4() ? in.dns_port_v4 : in.dns_port_v6) = dns_port_;
    }
    if (fc.dns) {
        auto text = proto::read_text_file("/etc/resolv.conf");
        if (!text) return Error(text.error().code, "--dns: " + text.error().message);
        in.resolv_conf = std::move(*text);
    }
    // The ssh server is never captured (the session would loop into itself). An ssh_config
    // alias is resolved the way ssh will: `ssh -G` tells the real HostName.
    std::string server = config_.remote.host;
    if (!IpAddress::parse(server)) {
        std::string real = ssh_config_host(config_);
        if (!real.empty() && real != server) {
            spdlog::debug("ssh -G: {} is {}", server, real);
            server = real;
        }
    }
    if (auto literal = IpAddress::parse(server)) {
        in.server_addresses = {*literal};
    } else if (auto resolved = resolve_with_getaddrinfo(server); resolved) {
        in.server_addresses = std::move(*resolved);
    } else {
        spdlog::warn("cannot resolve the ssh server '{}' here: its addresses are not excluded; "
                     "exclude them with -x if a subnet covers them",
                     server);
    }
    if (!fc.user.empty()) {
        auto uid = lookup_uid(fc.user);
        if (!uid) return std::move(uid).error();
        in.uid = *uid;
    }
    if (!fc.group.empty()) {
        auto gid = lookup_gid(fc.group);
        if (!gid) return std::move(gid).error();
        in.gid = *gid;
    }
    // With -N and nothing else to capture, the subnets come from the server: plan then.
    const bool wait_for_routes = config_.auto_nets && in.includes.empty() && in.ns_hosts.empty() &&
                                 !in.dns;
    if (!wait_for_routes) {
        auto plan = plan_firewall(in);
        if (!plan) return std::move(plan).error();
    }
    auto fw = Firewall::open(event_, helper_choice_);
    if (!fw) return std::move(fw).error();
    firewall_ = std::move(*fw);
    if (auto r = firewall_->check_method(method_); !r) return r;
    firewall_->on_fatal([this](const Error& e) {
        spdlog::error("fatal: {}", e.message);
        stop(kExitFatal);
    });
    return ok();
}

Result<void> Tunnel::apply_firewall() {
    FirewallInputs in = firewall_inputs_;
    if (config_.auto_nets) {
        auto parsed = proto::Routes::parse(proto::as_bytes(routes_));
        if (!parsed) return std::move(parsed).error().with_context("-N: the server's routes");
        std::vector<SubnetPort> routes;
        for (const proto::Route& r : parsed->routes)
            routes.push_back(SubnetPort{Subnet(r.network, r.width), PortRange{}});
        spdlog::info("-N: {} route(s) from the server", routes.size());
        if (routes.empty() && in.includes.empty() && in.ns_hosts.empty() && !in.dns)
            return Error(Errc::InvalidArgument,
                         "-N: the server reported no routes, and no subnet was given");
        for (auto& r : routes)
            if (std::find(in.includes.begin(), in.includes.end(), r) == in.includes.end())
                in.includes.push_back(r);
    }
    auto plan = plan_firewall(in);
    if (!plan) return std::move(plan).error();
    for (const std::string& w : plan->warnings) spdlog::warn("{}", w);
    if (auto r = firewall_->apply(plan->spec); !r) return r;
    std::string captured;
    for (const auto& s : plan->spec.includes) captured += (captured.empty() ? "" : " ") + s.to_string();
    for (const auto& ip : plan->spec.dns_servers)
        captured += (captured.empty() ? "DNS to " : " DNS to ") + ip.to_string();
    spdlog::info("firewall ({}, table/chain {}): capturing {}", helper::method_name(method_),
                 plan->spec.name, captured);
    return ok();
}

Result<void> Tunnel::start() {
    if (auto r = bind_listeners(); !r) return r.error().with_context("listeners");
    if (config_.firewall.enabled) {
        if (auto r = prepare_firewall(); !r) return r.error().with_context("firewall");
    }

    if (auto r = prepare_masters(); !r) return r.error().with_context("ssh connections");

    std::string payload;
    if (config_.launch.server_cmd.empty())
        payload = agent_payload(agent_source(), agent_options_json(config_));
    std::vector<std::string> words = config_.ssh_words;
    if (forwarder_)
        for (std::string& o : control_master_options(control_dir_.socket_path(0)))
            words.push_back(std::move(o));
    auto argv = ssh_argv(words, config_.remote, remote_command(config_.launch, payload.size()));
    spdlog::debug("starting: {}", fmt::join(argv, " "));

    ssh_ = std::make_unique<SshSession>(
        event_, [this](int status, bool signaled) { on_ssh_exit(status, signaled); });
    auto stream = ssh_->spawn(argv);
    if (!stream) return stream.error();

    Mux::Callbacks callbacks;
    callbacks.on_ready = [this] { on_ready(); };
    callbacks.on_failure = [this](const Error& e) { on_mux_failure(e); };
    callbacks.on_routes = [this](std::string_view routes) {
        if (!routes.empty()) spdlog::info("server routes: {}", routes);
        routes_ = std::string(routes);
    };
    if (config_.auto_hosts)
        callbacks.on_host_list = [this](std::string_view list) { on_host_list(list); };
    mux_ = std::make_unique<Mux>(event_, std::move(*stream), config_.mux, std::move(callbacks));
    return mux_->start(std::move(payload));
}

Result<void> Tunnel::prepare_masters() {
    if (config_.tcp_path == proto::TcpPath::Agent) return ok();
    auto dir = ControlDir::create(config_.runtime_directory, config_.xdg_runtime_dir);
    if (!dir) {
        if (config_.tcp_path == proto::TcpPath::Ssh) return std::move(dir).error();
        spdlog::warn("no directory for ssh control sockets ({}); TCP goes through the agent",
                     dir.error().to_string());
        return ok();
    }
    control_dir_ = std::move(*dir);
    forwarder_ = std::make_unique<SshForwarder>(event_, fd_limit(), [this](SshForwarder::Failure f) {
        if (stopping_ || !router_) return reset_connection(std::move(f.client));
        router_->on_ssh_failed(std::move(f));
    });
    forwarder_->on_capacity([this] {
        if (!router_ || !router_->may_accept()) return;
        for (auto& l : listeners_) l->resume();
    });
    for (int i = 0; i < config_.ssh_connections; ++i)
        forwarder_->add_master(control_dir_.socket_path(static_cast<std::size_t>(i)));
    return ok();
}

// The session is up: master 0 (the session's ssh) made its control socket before it started
// the agent, or it never will. The extra connections start now, after any prompt of the first.
void Tunnel::start_ssh_path() {
    router_ = std::make_unique<TcpRouter>(*mux_, forwarder_.get(), config_.tcp_path);
    if (!forwarder_) return;
    if (!is_socket(control_dir_.socket_path(0))) {
        const char* why = "ssh made no control socket: not OpenSSH, or -e/ssh_config options "
                          "turn ControlMaster off";
        if (config_.tcp_path == proto::TcpPath::Ssh) {
            spdlog::error("fatal: --tcp-path ssh: {}", why);
            return stop(kExitFatal);
        }
        spdlog::warn("TCP goes through the agent: {}", why);
        router_->ssh_unavailable(why);
        forwarder_->set_gone(0);
        return;
    }
    forwarder_->set_up(0);
    sd_event_source* sampler = nullptr;
    if (sd_event_add_time_relative(event_, &sampler, CLOCK_MONOTONIC, kBytesSampleFast, 0,
                                   &Tunnel::on_bytes_sample, this) >= 0) {
        bytes_timer_.reset(sampler);
        sd_event_source_set_enabled(sampler, SD_EVENT_ON);  // repeats: re-armed in the handler
    }
    for (std::size_t i = 1; i < forwarder_->master_count(); ++i) {
        auto session = std::make_unique<SshSession>(
            event_, [this, i](int status, bool signaled) { on_master_exit(i, status, signaled); });
        auto argv = ssh_master_argv(config_.ssh_words, config_.remote, control_dir_.socket_path(i));
        spdlog::debug("ssh connection {}: {}", i, fmt::join(argv, " "));
        auto stream = session->spawn(argv);
        if (!stream) {
            spdlog::warn("ssh connection {}: {}", i, stream.error().to_string());
            forwarder_->set_gone(i);
        } else {
            extra_master_streams_.push_back(std::move(*stream));
        }
        extra_masters_.push_back(std::move(session));
    }
    if (forwarder_->master_count() > 1) {
        sd_event_source* timer = nullptr;
        if (sd_event_add_time_relative(event_, &timer, CLOCK_MONOTONIC, kMasterPoll, 0,
                                       &Tunnel::on_master_poll, this) >= 0)
            master_poll_.reset(timer);
    }
}

int Tunnel::on_master_poll(sd_event_source* s, uint64_t, void* userdata) noexcept {
    auto* self = static_cast<Tunnel*>(userdata);
    bool waiting = false;
    for (std::size_t i = 1; i < self->forwarder_->master_count(); ++i) {
        if (!self->forwarder_->connecting(i)) continue;
        if (is_socket(self->control_dir_.socket_path(i))) {
            self->forwarder_->set_up(i);
            spdlog::info("ssh connection {} is up", i);
            for (auto& l : self->listeners_) l->resume();
        } else {
            waiting = true;
        }
    }
    if (!waiting) {
        self->master_poll_.reset();
        return 0;
    }
    // Until each extra connection is up or has exited (its exit marks it gone).
    uint64_t now = 0;
    sd_event_now(self->event_, CLOCK_MONOTONIC, &now);
    sd_event_source_set_time(s, now + kMasterPoll);
    sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
}

int Tunnel::on_bytes_sample(sd_event_source* s, uint64_t, void* userdata) noexcept {
    auto* self = static_cast<Tunnel*>(userdata);
    if (self->forwarder_ && self->forwarder_->channels() > 0) {
        if (auto r = self->forwarder_->sample_bytes(); !r) {
            spdlog::warn("byte counters of the ssh path: {}; not sampled any more",
                         r.error().to_string());
            self->bytes_timer_.reset();
            return 0;
        }
    }
    bool few = !self->forwarder_ || self->forwarder_->channels() <= kFastSampleChannels;
    uint64_t now = 0;
    sd_event_now(self->event_, CLOCK_MONOTONIC, &now);  // from now: a late turn does not pile up
    sd_event_source_set_time(s, now + (few ? kBytesSampleFast : kBytesSample));
    return 0;
}

void Tunnel::on_master_exit(std::size_t index, int status, bool signaled) {
    if (forwarder_) forwarder_->set_gone(index);
    if (stopping_) return;
    std::size_t channels = 0;
    if (forwarder_) channels = forwarder_->stats().at(index).channels;
    if (signaled)
        spdlog::warn("ssh connection {} was killed by signal {}; its {} channel(s) end", index,
                     status - 128, channels);
    else
        spdlog::warn("ssh connection {} exited: {}; its {} channel(s) end", index,
                     explain_remote_exit(status), channels);
}

void Tunnel::start_listeners(std::vector<std::pair<IpAddress, UniqueFd>> sockets) {
    std::string where;
    for (auto& [ip, fd] : sockets) {
        std::uint16_t port = bound_port(fd.get());
        auto listener = std::make_unique<TcpListener>(
            event_, ip, port, std::move(fd),
            [this](UniqueFd socket, const IpAddress& dst, std::uint16_t dport) {
                if (!stopping_) router_->route(std::move(socket), dst, dport);
            },
            [this] { return router_->may_accept(); });
        if (auto r = listener->start(); !r) {
            spdlog::error("{}", r.error().to_string());
            return stop(kExitFatal);
        }
        where += (where.empty() ? "" : ", ") + endpoint_string(ip, port);
        listeners_.push_back(std::move(listener));
    }
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
}

void Tunnel::on_ready() {
    std::vector<std::pair<IpAddress, UniqueFd>> sockets = std::move(tcp_sockets_);
    tcp_sockets_.clear();
    if (firewall_) {
        // tproxy: the helper's transparent sockets take the ports ours held while searching.
        if (method_ == helper::Method::Tproxy) sockets.clear();
        if (auto r = apply_firewall(); !r) {
            spdlog::error("fatal: firewall: {}", r.error().message);
            return stop(kExitFatal);
        }
        if (method_ == helper::Method::Tproxy) {
            auto minted = firewall_->transparent_sockets();
            if (!minted) {
                spdlog::error("fatal: firewall: {}", minted.error().message);
                return stop(kExitFatal);
            }
            for (TransparentSocket& t : *minted) {
                if (t.proto == "tcp")
                    sockets.emplace_back(*IpAddress::parse(t.family == "ipv4" ? "0.0.0.0" : "::"),
                                         std::move(t.fd));
                // "udp" and "dns": not requested (no UDP capture, no DNS with tproxy yet).
            }
        }
    }
    start_ssh_path();
    if (stopping_) return;
    start_listeners(std::move(sockets));
    if (stopping_) return;
    if (config_.auto_hosts && firewall_) {
        // sshuttle's HOST_REQ: the seed names; the server answers with HOST_LIST now and later.
        std::string seeds;
        for (const std::string& h : config_.seed_hosts) seeds += (seeds.empty() ? "" : "\n") + h;
        mux_->send(0, proto::Command::HostReq, proto::as_bytes(seeds));
    }
    sd_notifyf(0, "READY=1\nSTATUS=Connected to %s%s", config_.remote.to_string().c_str(),
               firewall_ ? "; firewall rules in place" : "");
}

void Tunnel::on_host_list(std::string_view text) {
    if (!firewall_ || stopping_) return;
    auto parsed = proto::HostList::parse(proto::as_bytes(text));
    if (!parsed) {
        // A bad list from the server changes nothing here; the tunnel carries on.
        spdlog::warn("-H: ignoring a HOST_LIST: {}", parsed.error().to_string());
        return;
    }
    bool changed = false;
    for (const proto::HostEntry& h : parsed->hosts) {
        // HOST_LIST allows '_' (sshuttle's rule); the helper would refuse the whole list.
        if (!helper::valid_host_name(h.name)) {
            spdlog::debug("-H: skipping '{}' (not a name /etc/hosts takes)", h.name);
            continue;
        }
        auto [it, inserted] = hosts_.try_emplace(h.name, h.ip.to_string());
        if (!inserted && it->second != h.ip.to_string()) {
            it->second = h.ip.to_string();
            inserted = true;
        }
        if (inserted && hosts_.size() > kMaxHosts) {
            hosts_.erase(it);
            spdlog::warn("-H: more than {} names; '{}' and later ones are not added", kMaxHosts,
                         h.name);
            break;
        }
        changed |= inserted;
    }
    if (!changed) return;
    std::vector<std::pair<std::string, std::string>> entries(hosts_.begin(), hosts_.end());
    if (auto r = firewall_->set_hosts(entries); !r) {
        spdlog::warn("-H: /etc/hosts not updated: {}", r.error().to_string());
        return;
    }
    spdlog::info("-H: {} name(s) in /etc/hosts", entries.size());
}

void Tunnel::on_mux_failure(const Error& error) {
    if (stopping_) return;
    if (draining_) {  // ssh has exited; on_ssh_exit weighs its status against this
        stream_error_ = error;
        stop(kExitFatal);
        return;
    }
    if (ssh_ && ssh_->running()) {
        // ssh usually exits right after its stream breaks, and its exit status is the better
        // explanation: give it the grace period before reporting.
        spdlog::debug("session stream failed: {}", error.to_string());
        if (error.code == Errc::Protocol || error.code == Errc::TooLarge) {
            spdlog::error("fatal: {}", error.to_string());
            stream_error_ = Error();  // said; ssh's status may add to it
        } else {
            stream_error_ = error;    // said at ssh's exit unless its status explains more
        }
        stop(kExitFatal);
        return;
    }
    spdlog::error("fatal: {}", error.to_string());
    stop(kExitFatal);
}

void Tunnel::on_ssh_exit(int status, bool signaled) {
    if (forwarder_) forwarder_->set_gone(0);
    if (!stopping_ && mux_) {
        draining_ = true;
        mux_->drain();
        draining_ = false;
    }
    if (stopping_ && !stream_error_) {
        // The reason was logged when the stop began; ssh leaving now is the expected end.
        spdlog::debug("ssh exited with status {}", status);
    } else if (signaled) {
        spdlog::error("fatal: ssh was killed by signal {}", status - 128);
    } else if (status != 0 || !stream_error_) {
        spdlog::error("fatal: server died: {}", explain_remote_exit(status));
    } else if (!stream_error_->message.empty()) {
        // ssh ended cleanly: what broke the stream is the whole story.
        spdlog::error("fatal: {}", stream_error_->to_string());
    }
    if (!stopping_) stop(kExitFatal);
    sd_event_exit(event_, exit_status_);
}

void Tunnel::stop(int exit_status) {
    if (stopping_) return;
    stopping_ = true;
    exit_status_ = exit_status;
    sd_notify(0, "STOPPING=1");
    // Rules first: from here on, nothing is redirected to listeners about to close.
    if (firewall_) firewall_->remove();
    // stop() may run inside a callback of the mux, a listener or the DNS proxy (a failure seen
    // while handling a frame): they are destroyed from the loop, one turn later, never under
    // their own feet. Destroying the mux closes our end of the stream: the agent sees EOF,
    // then ssh exits.
    retired_listeners_ = std::move(listeners_);
    listeners_.clear();
    // Connections handed to ssh end with it: the extra connections now; the session's ssh once
    // its stdin closes, or now when it holds forwards (it would not exit while they are open).
    master_poll_.reset();
    bytes_timer_.reset();
    for (auto& m : extra_masters_) m->signal(SIGTERM);
    if (forwarder_ && forwarder_->channels() + forwarder_->opening() > 0 && ssh_)
        ssh_->signal(SIGTERM);
    retired_dns_ = std::move(dns_);
    retired_mux_ = std::move(mux_);
    sd_event_source* retire = nullptr;
    if (sd_event_add_defer(event_, &retire, &Tunnel::on_retire, this) >= 0)
        retire_source_.reset(retire);
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
        s.channels_agent = mux_->channel_count();
        s.bytes_in = mux_->bytes_in();
        s.bytes_out = mux_->bytes_out();
    }
    if (forwarder_) {
        s.channels_ssh = forwarder_->channels();
        s.ssh_connections = forwarder_->stats();
        for (const auto& m : s.ssh_connections) {
            s.ssh_bytes_in += m.bytes_in;
            s.ssh_bytes_out += m.bytes_out;
        }
    }
    s.channels_open = s.channels_agent + s.channels_ssh;
    if (router_) {
        s.tcp_path = router_->describe();
        s.tcp = router_->stats();
    } else {
        s.tcp_path = config_.tcp_path == proto::TcpPath::Agent ? "agent (--tcp-path agent)"
                                                               : "not yet decided";
    }
    for (const auto& l : listeners_) {
        s.listening.push_back(endpoint_string(l->address(), l->port()));
        s.connections += l->accepted();
    }
    s.dns_port = dns_ ? dns_port_ : 0;
    if (firewall_) {
        s.method = std::string(helper::method_name(method_));
        s.helper = firewall_->description();
        s.firewall_reapplied = firewall_->reapplied();
    }
    return s;
}

int Tunnel::on_retire(sd_event_source*, void* userdata) noexcept {
    auto* self = static_cast<Tunnel*>(userdata);
    self->retired_listeners_.clear();
    self->retired_dns_.reset();
    self->retired_mux_.reset();
    self->retire_source_.reset();  // one-shot; sd-event allows dropping a source in its handler
    return 0;
}

int Tunnel::on_grace_timeout(sd_event_source*, uint64_t, void* userdata) noexcept {
    auto* self = static_cast<Tunnel*>(userdata);
    if (self->stream_error_ && !self->stream_error_->message.empty())
        spdlog::error("fatal: {}", self->stream_error_->to_string());
    spdlog::warn("ssh did not exit after its stdin closed; terminating it");
    self->ssh_->signal(SIGTERM);
    sd_event_exit(self->event_, self->exit_status_);
    return 0;
}

}  // namespace sshuttle::daemon

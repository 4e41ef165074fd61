#include "daemon/control_server.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "proto/control.hpp"
#include "proto/control_decoder.hpp"

namespace sshuttle::daemon {

namespace {

using nlohmann::json;

Result<sockaddr_un> unix_address(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof sa.sun_path)
        return Error(Errc::InvalidArgument, "control socket path '" + path + "' is too long");
    std::memcpy(sa.sun_path, path.data(), path.size());
    return sa;
}

// The directory holding the socket: created 0700 when missing; when present it must be ours
// (or root's) and not writable by others, or someone else could replace our socket.
Result<void> prepare_directory(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return Error::from_errno("cannot create " + dir);
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) return Error::from_errno("cannot stat " + dir);
    if (!S_ISDIR(st.st_mode)) return Error(Errc::InvalidArgument, dir + " is not a directory");
    uid_t me = ::geteuid();
    if (st.st_uid != me && st.st_uid != 0 && me != 0)
        return Error(Errc::PermissionDenied, dir + " belongs to uid " + std::to_string(st.st_uid));
    if ((st.st_mode & 0022) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%03o", st.st_mode & 0777);
        return Error(Errc::PermissionDenied,
                     dir + " is writable by others (mode " + std::string(mode) + ")");
    }
    return ok();
}

// True when a process accepts connections on `path`.
bool someone_listens(const sockaddr_un& sa) {
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) return false;
    return ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&sa), sizeof sa) == 0;
}

std::string iso8601(std::time_t t) {
    std::tm tm{};
    ::gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

}  // namespace

bool control_socket_answers(const std::string& path) {
    auto sa = unix_address(path);
    return sa && someone_listens(*sa);
}

Result<std::string> default_control_socket(std::string_view name, uid_t euid,
                                           std::string_view runtime_directory,
                                           std::string_view xdg_runtime_dir) {
    if (!proto::is_tunnel_name(name))
        return Error(Errc::InvalidArgument, "'" + std::string(name) + "' is not a tunnel name");
    std::string file = std::string(name) + ".sock";
    // systemd's RuntimeDirectory= may list several directories; the first is ours.
    if (!runtime_directory.empty())
        return std::string(runtime_directory.substr(0, runtime_directory.find(':'))) + "/" + file;
    if (euid == 0) return "/run/sshuttle/" + file;
    if (xdg_runtime_dir.empty() || xdg_runtime_dir[0] != '/')
        return Error(Errc::NotFound,
                     "XDG_RUNTIME_DIR is not set: give the control socket with --control-socket");
    return std::string(xdg_runtime_dir) + "/sshuttle/" + file;
}

Result<ControlPlace> choose_control_place(const proto::TunnelOptions& o,
                                          const std::string& default_name, uid_t euid,
                                          std::string_view runtime_directory,
                                          std::string_view xdg_runtime_dir) {
    bool fixed = !o.name.empty() || !o.control_socket.empty();
    std::string base = o.name.empty() ? default_name : o.name;
    for (int i = 1; i <= (fixed ? 1 : 9); ++i) {
        std::string name = i == 1 ? base : base + "-" + std::to_string(i);
        if (!o.control_socket.empty()) return ControlPlace{name, o.control_socket};
        auto path = default_control_socket(name, euid, runtime_directory, xdg_runtime_dir);
        if (!path) return path.error();
        if (fixed || !control_socket_answers(*path)) return ControlPlace{name, *path};
    }
    return Error(Errc::InvalidArgument,
                 "tunnels " + base + " to " + base + "-9 already run; choose one with --name");
}

json status_parameters(const StatusInfo& info, const TunnelStats& stats,
                       std::uint64_t now_monotonic_usec) {
    json subnets = json::array(), excludes = json::array();
    std::string method = "none";
    if (info.options) {
        for (const SubnetPort& s : info.options->subnets) subnets.push_back(s.to_string());
        for (const SubnetPort& s : info.options->excludes) excludes.push_back(s.to_string());
        if (!info.options->no_firewall && (!subnets.empty() || info.options->auto_nets))
            method = proto::method_name(info.options->method);
    }
    if (!stats.method.empty()) method = stats.method;  // "auto" resolved
    std::uint64_t uptime = now_monotonic_usec > info.started_monotonic_usec
                               ? (now_monotonic_usec - info.started_monotonic_usec) / 1'000'000
                               : 0;
    json masters = json::array();
    for (std::size_t i = 0; i < stats.ssh_connections.size(); ++i) {
        const auto& m = stats.ssh_connections[i];
        masters.push_back({{"index", i},
                           {"state", m.state},
                           {"channels", m.channels},
                           {"opening", m.opening},
                           {"opened", m.opened},
                           {"failed", m.failed},
                           {"bytes_in", m.bytes_in},
                           {"bytes_out", m.bytes_out}});
    }
    return json{
        {"name", info.name},
        {"pid", info.pid},
        {"state", state_name(stats.state)},
        {"remote", info.remote},
        {"method", method},
        {"subnets", subnets},
        {"excludes", excludes},
        {"listen", stats.listening},
        {"dns_port", stats.dns_port ? json(stats.dns_port) : json(nullptr)},
        {"started", iso8601(info.started)},
        {"uptime", uptime},
        {"channels_open", stats.channels_open},
        {"tcp_path", stats.tcp_path},
        {"channels", {{"ssh", stats.channels_ssh}, {"agent", stats.channels_agent}}},
        {"tcp_connections", {{"ssh", stats.tcp.via_ssh},
                             {"agent", stats.tcp.via_agent},
                             {"retried_on_agent", stats.tcp.retried},
                             {"reset", stats.tcp.reset}}},
        {"ssh_connections", masters},
        {"connections", stats.connections},
        {"bytes_in", stats.bytes_in + stats.ssh_bytes_in},
        {"bytes_out", stats.bytes_out + stats.ssh_bytes_out},
        {"bytes", {{"agent_stream_in", stats.bytes_in},
                   {"agent_stream_out", stats.bytes_out},
                   {"ssh_in", stats.ssh_bytes_in},
                   {"ssh_out", stats.ssh_bytes_out}}},
        {"reconnects", stats.reconnects},
        {"helper", stats.helper.empty() ? json(nullptr) : json(stats.helper)},
        {"firewall_reapplied", stats.firewall_reapplied},
    };
}

struct ControlServer::Client {
    ControlServer* server = nullptr;
    UniqueFd fd;
    EventSourcePtr source;
    proto::ControlDecoder decoder;
    std::string out;
    std::size_t out_pos = 0;
    bool watching = false;
    std::string last_watch;  // the last status text sent to this watcher
    bool closing = false;    // close once `out` is written
    bool dead = false;
};

ControlServer::ControlServer(sd_event* event, Handlers handlers)
    : event_(event), handlers_(std::move(handlers)) {}

ControlServer::~ControlServer() {
    clients_.clear();
    listen_source_.reset();
    if (listen_fd_ && !path_.empty()) ::unlink(path_.c_str());
}

std::size_t ControlServer::client_count() const noexcept {
    return static_cast<std::size_t>(
        std::count_if(clients_.begin(), clients_.end(), [](const auto& c) { return !c->dead; }));
}

Result<void> ControlServer::listen(const std::string& path) {
    auto sa = unix_address(path);
    if (!sa) return sa.error();
    std::size_t slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0)
        return Error(Errc::InvalidArgument, "control socket path '" + path + "' must be absolute");
    if (auto r = prepare_directory(path.substr(0, slash)); !r) return r.error();

    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return Error(Errc::InvalidArgument, path + " exists and is not a socket");
        if (someone_listens(*sa))
            return Error(Errc::InvalidArgument,
                         "a tunnel already answers on " + path + " (choose another --name)");
        ::unlink(path.c_str());  // left behind by a daemon that died
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return Error::from_errno("control socket");
    // The socket file gets its mode from the umask at bind(): 0600 from the first instant.
    mode_t old = ::umask(0177);
    int r = ::bind(fd.get(), reinterpret_cast<const sockaddr*>(&*sa), sizeof *sa);
    ::umask(old);
    if (r != 0) return Error::from_errno("bind " + path);
    path_ = path;
    listen_fd_ = std::move(fd);
    if (::listen(listen_fd_.get(), 16) != 0) return Error::from_errno("listen " + path);
    sd_event_source* s = nullptr;
    if (int e =
            sd_event_add_io(event_, &s, listen_fd_.get(), EPOLLIN, &ControlServer::on_accept, this);
        e < 0)
        return Error(Errc::Io, "sd_event_add_io", -e);
    listen_source_.reset(s);
    return ok();
}

int ControlServer::on_accept(sd_event_source*, int, uint32_t, void* userdata) noexcept {
    static_cast<ControlServer*>(userdata)->accept_one();
    return 0;
}

void ControlServer::accept_one() {
    UniqueFd fd(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
    if (!fd) return;
    ucred cred{};
    socklen_t len = sizeof cred;
    bool allowed = ::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 &&
                   (cred.uid == ::geteuid() || cred.uid == 0);
    if (!allowed || client_count() >= kMaxClients) {
        // One best-effort write of the reason, then close: nothing of theirs is read.
        auto msg = allowed ? proto::serialize_error(
                                 kErrorProtocol, json{{"reason", "too many control connections"}})
                           : proto::serialize_error(
                                 kErrorPermissionDenied,
                                 json{{"uid", cred.uid},
                                      {"reason", "only uid " + std::to_string(::geteuid()) +
                                                     " (the tunnel's owner) and root may control "
                                                     "this tunnel"}});
        if (msg) (void)!::send(fd.get(), msg->data(), msg->size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (!allowed) spdlog::info("control: refused uid {} (pid {})", cred.uid, cred.pid);
        return;
    }
    auto client = std::make_unique<Client>();
    client->server = this;
    client->fd = std::move(fd);
    sd_event_source* s = nullptr;
    if (sd_event_add_io(event_, &s, client->fd.get(), EPOLLIN, &ControlServer::on_client_io,
                        client.get()) < 0)
        return;
    client->source.reset(s);
    clients_.push_back(std::move(client));
}

int ControlServer::on_client_io(sd_event_source*, int, uint32_t revents, void* userdata) noexcept {
    auto* client = static_cast<Client*>(userdata);
    ControlServer* self = client->server;
    if (client->dead) return 0;
    if (revents & EPOLLOUT) self->flush(*client);
    if (!client->dead && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) self->handle_input(*client);
    return 0;
}

void ControlServer::handle_input(Client& client) {
    char buf[16384];
    // Bounded: at most 16 reads per wakeup, then back to the loop (fairness between clients).
    for (int round = 0; round < 16 && !client.dead && !client.closing; ++round) {
        ssize_t n = ::recv(client.fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) return close_client(client);
        if (auto r = client.decoder.feed(std::string_view(buf, static_cast<std::size_t>(n))); !r) {
            queue(client,
                  proto::serialize_error(kErrorProtocol, json{{"reason", r.error().message}}));
            client.closing = true;
            return flush(client);
        }
        for (;;) {
            auto msg = client.decoder.next();
            if (!msg) {
                queue(client, proto::serialize_error(kErrorProtocol,
                                                     json{{"reason", msg.error().message}}));
                client.closing = true;
                return flush(client);
            }
            if (!*msg) break;
            handle_call(client, **msg);
            if (client.dead || client.closing) return;
        }
    }
}

void ControlServer::handle_call(Client& client, std::string_view text) {
    auto call = proto::parse_call(text);
    if (!call) {
        queue(client,
              proto::serialize_error(kErrorProtocol, json{{"reason", call.error().message}}));
        client.closing = true;
        return flush(client);
    }
    const std::string& m = call->method;
    bool known = m == kMethodStatus || m == kMethodWatch || m == kMethodStop;
    auto reply = [&](Result<std::string> msg) {
        if (!call->oneway) queue(client, std::move(msg));
    };
    if (!known) {
        reply(proto::serialize_error(kErrorMethodNotFound, json{{"method", m}}));
        return flush(client);
    }
    // None of our methods takes parameters: anything given is a mistake worth naming.
    if (!call->parameters.empty()) {
        reply(proto::serialize_error(kErrorInvalidParameter,
                                     json{{"parameter", call->parameters.begin().key()}}));
        return flush(client);
    }
    if (m == kMethodStatus) {
        reply(proto::serialize_reply(handlers_.status()));
    } else if (m == kMethodWatch) {
        if (!call->more) {
            reply(proto::serialize_error(kErrorExpectedMore));
            return flush(client);
        }
        json status = handlers_.status();
        client.last_watch = status.dump();
        client.watching = true;
        queue(client, proto::serialize_reply(status, true));
        arm_watch_timer();
    } else {  // Stop
        reply(proto::serialize_reply(json::object()));
        flush(client);
        spdlog::info("control: stop requested");
        if (handlers_.stop) handlers_.stop();
        return;
    }
    flush(client);
}

void ControlServer::queue(Client& client, Result<std::string> message) {
    if (!message) {
        spdlog::warn("control: cannot encode a reply: {}", message.error().to_string());
        message = proto::serialize_error(kErrorProtocol, json{{"reason", "reply not encodable"}});
        if (!message) return;
    }
    if (client.out.size() - client.out_pos + message->size() > kMaxPendingOutput) {
        spdlog::info("control: dropping a client that does not read its replies");
        return close_client(client);
    }
    client.out += *message;
}

void ControlServer::flush(Client& client) {
    if (client.dead) return;
    while (client.out_pos < client.out.size()) {
        ssize_t n = ::send(client.fd.get(), client.out.data() + client.out_pos,
                           client.out.size() - client.out_pos, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (n < 0) return close_client(client);
        client.out_pos += static_cast<std::size_t>(n);
    }
    if (client.out_pos == client.out.size()) {
        client.out.clear();
        client.out_pos = 0;
        if (client.closing) return close_client(client);
    }
    sd_event_source_set_io_events(client.source.get(),
                                  client.out.empty() ? EPOLLIN : EPOLLIN | EPOLLOUT);
}

void ControlServer::close_client(Client& client) {
    if (client.dead) return;
    client.dead = true;
    // The source may be the one dispatching right now: disable it here, free it in the sweep.
    sd_event_source_set_enabled(client.source.get(), SD_EVENT_OFF);
    schedule_sweep();
}

void ControlServer::schedule_sweep() {
    if (sweep_source_) {
        sd_event_source_set_enabled(sweep_source_.get(), SD_EVENT_ONESHOT);
        return;
    }
    sd_event_source* s = nullptr;
    if (sd_event_add_defer(event_, &s, &ControlServer::on_sweep, this) >= 0) {
        sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        sweep_source_.reset(s);
    }
}

int ControlServer::on_sweep(sd_event_source*, void* userdata) noexcept {
    auto* self = static_cast<ControlServer*>(userdata);
    std::erase_if(self->clients_, [](const std::unique_ptr<Client>& c) { return c->dead; });
    return 0;
}

void ControlServer::arm_watch_timer() {
    if (watch_timer_) {
        sd_event_source_set_enabled(watch_timer_.get(), SD_EVENT_ON);
        return;
    }
    sd_event_source* s = nullptr;
    if (sd_event_add_time_relative(event_, &s, CLOCK_MONOTONIC, kWatchIntervalUsec, 0,
                                   &ControlServer::on_watch_timer, this) >= 0) {
        sd_event_source_set_enabled(s, SD_EVENT_ON);
        watch_timer_.reset(s);
    }
}

int ControlServer::on_watch_timer(sd_event_source* s, uint64_t usec, void* userdata) noexcept {
    auto* self = static_cast<ControlServer*>(userdata);
    bool any = false;
    json status;
    bool have_status = false;
    for (auto& c : self->clients_) {
        if (c->dead || !c->watching) continue;
        any = true;
        if (!have_status) {
            status = self->handlers_.status();
            have_status = true;
        }
        std::string text = status.dump();
        if (text == c->last_watch) continue;  // nothing changed for this watcher
        c->last_watch = std::move(text);
        self->queue(*c, proto::serialize_reply(status, true));
        self->flush(*c);
    }
    if (any) {
        sd_event_source_set_time(s, usec + kWatchIntervalUsec);
        sd_event_source_set_enabled(s, SD_EVENT_ON);
    } else {
        sd_event_source_set_enabled(s, SD_EVENT_OFF);
    }
    return 0;
}

void ControlServer::finish_watchers() {
    json status;
    bool have_status = false;
    for (auto& c : clients_) {
        if (c->dead || !c->watching) continue;
        if (!have_status) {
            status = handlers_.status();
            have_status = true;
        }
        c->watching = false;
        c->closing = true;
        queue(*c, proto::serialize_reply(status, false));
        flush(*c);
    }
}

}  // namespace sshuttle::daemon

#include "daemon/ssh_forward.hpp"

#include <dirent.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

#include "daemon/tcp_diag.hpp"
#include "proto/bytes.hpp"
#include "proto/ssh_mux.hpp"

namespace sshuttle::daemon {

namespace mux = proto::sshmux;

namespace {

// ssh binds "PATH.XXXXXXXXXXXXXXXX" first (mux.c muxserver_listen): room for that in sun_path.
constexpr std::size_t kMaxControlPath = sizeof(sockaddr_un::sun_path) - 1 - 17;
// "/m15": the longest socket name we append to the directory.
constexpr std::size_t kSocketNameRoom = 4;

// One byte of data carrying one descriptor, as ssh's mm_send_fd does.
Result<void> send_fd(int sock, int fd) {
    char byte = 0;
    iovec iov{&byte, 1};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n != 1) return Error::from_errno("sendmsg(SCM_RIGHTS) to the ssh master");
    return ok();
}

}  // namespace

std::optional<ForwardState> next_forward_state(ForwardState state, ForwardEvent event) noexcept {
    switch (state) {
        case ForwardState::Requested:
            switch (event) {
                case ForwardEvent::Opened: return ForwardState::Open;
                case ForwardEvent::Refused:
                case ForwardEvent::Broken:
                case ForwardEvent::TimedOut: return ForwardState::Failed;
            }
            break;
        case ForwardState::Open:
            // Only the end of the control connection matters once ssh owns the socket.
            if (event == ForwardEvent::Broken) return ForwardState::Closed;
            return std::nullopt;
        case ForwardState::Failed:
        case ForwardState::Closed:
            return std::nullopt;
    }
    return std::nullopt;
}

const char* forward_state_name(ForwardState state) noexcept {
    switch (state) {
        case ForwardState::Requested: return "requested";
        case ForwardState::Open: return "open";
        case ForwardState::Failed: return "failed";
        case ForwardState::Closed: return "closed";
    }
    return "unknown";
}

// ---- ControlDir ----------------------------------------------------------------------------

Result<ControlDir> ControlDir::create(const std::string& runtime_directory,
                                      const std::string& xdg_runtime_dir) {
    std::vector<std::string> parents;
    // $RUNTIME_DIRECTORY may list several directories separated by ':'; the first is ours.
    if (!runtime_directory.empty()) parents.push_back(runtime_directory.substr(0, runtime_directory.find(':')));
    if (!xdg_runtime_dir.empty() && xdg_runtime_dir[0] == '/') parents.push_back(xdg_runtime_dir);
    parents.push_back("/tmp");
    Error last(Errc::Io, "no directory for the ssh control sockets");
    for (const std::string& parent : parents) {
        std::string templ = parent + "/sshuttle-ssh-XXXXXX";
        // Whitespace would need quoting in ssh's option parser; a path too long would make ssh
        // give up multiplexing. /tmp is always short enough.
        if (templ.size() + kSocketNameRoom > kMaxControlPath ||
            templ.find_first_of(" \t\n\"'\\") != std::string::npos)
            continue;
        std::vector<char> buf(templ.begin(), templ.end());
        buf.push_back('\0');
        if (::mkdtemp(buf.data()) == nullptr) {
            last = Error::from_errno("mkdtemp " + templ);
            continue;
        }
        return ControlDir(std::string(buf.data()));
    }
    return last;
}

ControlDir& ControlDir::operator=(ControlDir&& other) noexcept {
    if (this != &other) {
        remove();
        path_ = std::exchange(other.path_, {});
    }
    return *this;
}

ControlDir::~ControlDir() { remove(); }

std::string ControlDir::socket_path(std::size_t index) const {
    return path_ + "/m" + std::to_string(index);
}

void ControlDir::remove() noexcept {
    if (path_.empty()) return;
    // Only what we and our ssh children put there: control sockets (and ssh's temporary names
    // if one was killed while binding).
    if (DIR* d = ::opendir(path_.c_str())) {
        while (dirent* e = ::readdir(d)) {
            if (e->d_name[0] == '.') continue;
            ::unlink((path_ + "/" + e->d_name).c_str());
        }
        ::closedir(d);
    }
    ::rmdir(path_.c_str());
    path_.clear();
}

// ---- SshForwarder --------------------------------------------------------------------------

struct SshForwarder::Forward {
    SshForwarder* owner = nullptr;
    std::size_t master = 0;
    std::uint32_t request_id = 0;
    ForwardState state = ForwardState::Requested;
    bool hello_seen = false;
    UniqueFd control;
    UniqueFd client;  // our copy until the reply
    IpAddress ip;
    std::uint16_t port = 0;
    std::optional<TcpSocketId> id;  // the client socket, for its byte counters
    TcpCounters last;          // as of the last sample
    EventSourcePtr io;     // declared after the descriptors: disabled before they close
    EventSourcePtr timer;
    mux::ReplyReader reader;
};

SshForwarder::SshForwarder(sd_event* event, std::size_t fd_limit, FailedCallback on_failed)
    : event_(event), fd_limit_(fd_limit), on_failed_(std::move(on_failed)) {}

SshForwarder::~SshForwarder() = default;

std::size_t SshForwarder::add_master(std::string path) {
    masters_.push_back(Master{std::move(path)});
    return masters_.size() - 1;
}

void SshForwarder::set_up(std::size_t index) {
    if (index < masters_.size() && masters_[index].state == Master::State::Connecting)
        masters_[index].state = Master::State::Up;
}

void SshForwarder::set_gone(std::size_t index) {
    if (index < masters_.size()) masters_[index].state = Master::State::Gone;
}

bool SshForwarder::any_up() const noexcept {
    for (const Master& m : masters_)
        if (m.state == Master::State::Up) return true;
    return false;
}

std::size_t SshForwarder::budget() const noexcept {
    std::size_t by_fds = fd_limit_ > kMasterReserve ? (fd_limit_ - kMasterReserve) / 3 : 0;
    return std::min(by_fds, max_channels_);
}

std::optional<std::size_t> SshForwarder::pick() const noexcept {
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < masters_.size(); ++i) {
        const Master& m = masters_[i];
        if (m.state != Master::State::Up || m.opening >= kMaxOpening ||
            m.channels + m.opening >= budget())
            continue;
        if (!best || m.channels + m.opening < masters_[*best].channels + masters_[*best].opening)
            best = i;
    }
    return best;
}

bool SshForwarder::opens_saturated() const noexcept {
    bool any = false;
    for (const Master& m : masters_) {
        if (m.state != Master::State::Up || m.channels + m.opening >= budget()) continue;
        any = true;
        if (m.opening < kMaxOpening) return false;
    }
    return any;
}

std::size_t SshForwarder::channels() const noexcept {
    std::size_t n = 0;
    for (const Master& m : masters_) n += m.channels;
    return n;
}

std::size_t SshForwarder::opening() const noexcept {
    std::size_t n = 0;
    for (const Master& m : masters_) n += m.opening;
    return n;
}

std::vector<SshForwarder::MasterStats> SshForwarder::stats() const {
    std::vector<MasterStats> out;
    for (const Master& m : masters_) {
        const char* state = m.state == Master::State::Up     ? "up"
                            : m.state == Master::State::Gone ? "gone"
                                                             : "connecting";
        out.push_back({state, m.channels, m.opening, m.opened, m.failed, m.closed_in,
                       m.closed_out});
    }
    for (const auto& [key, f] : forwards_) {
        if (f->state != ForwardState::Open) continue;
        out[f->master].bytes_in += f->last.acked;
        out[f->master].bytes_out += f->last.received;
    }
    return out;
}

Result<void> SshForwarder::sample_bytes() {
    std::vector<TcpSocketId> wanted;
    for (const auto& [key, f] : forwards_)
        if (f->state == ForwardState::Open && f->id) wanted.push_back(*f->id);
    if (wanted.empty()) return ok();
    auto counters = read_tcp_counters(wanted);
    if (!counters) return std::move(counters).error();
    for (auto& [key, f] : forwards_) {
        if (!f->id) continue;
        auto it = counters->find(f->id->cookie);
        if (it != counters->end()) f->last = it->second;
    }
    return ok();
}

Result<UniqueFd> SshForwarder::send_request(const Master& master, int client, const IpAddress& ip,
                                            std::uint16_t port, std::uint32_t request_id) {
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!sock) return Error::from_errno("socket(AF_UNIX)");
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (master.path.size() >= sizeof sa.sun_path)
        return Error(Errc::InvalidArgument, "control socket path too long");
    std::memcpy(sa.sun_path, master.path.c_str(), master.path.size() + 1);
    // A unix stream connect completes at once or fails (EAGAIN: the master's backlog is full).
    if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) < 0)
        return Error::from_errno("connect " + master.path);
    auto request = mux::encode_stdio_fwd(request_id, ip.to_string(), port);
    if (!request) return std::move(request).error();
    std::vector<std::uint8_t> out = mux::encode_hello();
    out.insert(out.end(), request->begin(), request->end());
    // A fresh socket's buffer takes these ~60 bytes whole; anything else is a failure, not a
    // reason to wait.
    ssize_t n = ::send(sock.get(), out.data(), out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) return Error::from_errno("send to the ssh master");
    if (static_cast<std::size_t>(n) != out.size())
        return Error(Errc::Io, "short send to the ssh master");
    // The forward's stdin and stdout: the same socket, each in its own message (mux.c receives
    // them one by one after reading exactly the request packet).
    for (int i = 0; i < 2; ++i)
        if (auto r = send_fd(sock.get(), client); !r) return r.error();
    return sock;
}

void SshForwarder::forward(std::size_t index, UniqueFd client, const IpAddress& ip,
                           std::uint16_t port) {
    Master& m = masters_.at(index);
    std::uint32_t rid = next_request_++;
    if (next_request_ == 0) next_request_ = 1;
    auto control = send_request(m, client.get(), ip, port, rid);
    if (!control) {
        ++m.failed;
        fail_later({std::move(client), ip, port, index, std::move(control).error()});
        return;
    }
    auto f = std::make_unique<Forward>();
    f->owner = this;
    f->master = index;
    f->request_id = rid;
    f->control = std::move(*control);
    f->client = std::move(client);
    f->ip = ip;
    f->port = port;
    f->id = tcp_socket_id(f->client.get());
    sd_event_source* io = nullptr;
    int r = sd_event_add_io(event_, &io, f->control.get(), EPOLLIN | EPOLLRDHUP,
                            &SshForwarder::on_io, f.get());
    if (r < 0) {
        ++m.failed;
        fail_later({std::move(f->client), ip, port, index, Error::from_errno("sd_event_add_io", -r)});
        return;
    }
    f->io.reset(io);
    sd_event_source* timer = nullptr;
    r = sd_event_add_time_relative(event_, &timer, CLOCK_MONOTONIC, open_timeout_, 0,
                                   &SshForwarder::on_timeout, f.get());
    if (r < 0) {
        ++m.failed;
        f->io.reset();
        fail_later({std::move(f->client), ip, port, index, Error::from_errno("sd_event_add_time", -r)});
        return;
    }
    f->timer.reset(timer);
    ++m.opening;
    Forward* key = f.get();
    forwards_.emplace(key, std::move(f));
}

int SshForwarder::on_io(sd_event_source*, int, uint32_t revents, void* userdata) noexcept {
    auto* f = static_cast<Forward*>(userdata);
    f->owner->handle_io(*f, revents);
    return 0;
}

int SshForwarder::on_timeout(sd_event_source*, uint64_t, void* userdata) noexcept {
    auto* f = static_cast<Forward*>(userdata);
    f->owner->apply(*f, ForwardEvent::TimedOut,
                    Error(Errc::Timeout, "the ssh master did not answer within " +
                                             std::to_string(f->owner->open_timeout_ / 1'000'000) +
                                             " s"));
    return 0;
}

void SshForwarder::handle_io(Forward& f, uint32_t revents) {
    (void)revents;
    // Replies are tiny; once open, the master sends nothing more but the close. A bounded
    // number of reads per wakeup.
    std::uint8_t buf[4096];
    for (int i = 0; i < 4; ++i) {
        ssize_t n = ::recv(f.control.get(), buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        if (n <= 0) {
            Error why = n == 0 ? Error(Errc::Io, "the ssh master closed the control connection")
                               : Error::from_errno("read from the ssh master");
            return apply(f, ForwardEvent::Broken, std::move(why));
        }
        if (f.state != ForwardState::Requested) continue;  // open: nothing to read but the end
        f.reader.feed(proto::ByteView(buf, static_cast<std::size_t>(n)));
        for (;;) {
            auto reply = f.reader.next();
            if (!reply) return apply(f, ForwardEvent::Broken, std::move(reply).error());
            if (!*reply) break;
            const mux::Reply& r = **reply;
            if (!f.hello_seen) {
                if (r.kind != mux::Reply::Kind::Hello)
                    return apply(f, ForwardEvent::Broken,
                                 Error(Errc::Protocol, std::string("ssh mux: expected a hello, got ") +
                                                           mux::type_name(r.type)));
                if (r.value != mux::kVersion)
                    return apply(f, ForwardEvent::Broken,
                                 Error(Errc::Protocol, "ssh mux: the master speaks version " +
                                                           std::to_string(r.value) + ", not 4"));
                f.hello_seen = true;
                continue;
            }
            if (r.kind == mux::Reply::Kind::Other) continue;
            if (r.kind == mux::Reply::Kind::Hello || r.request_id != f.request_id)
                return apply(f, ForwardEvent::Broken,
                             Error(Errc::Protocol, std::string("ssh mux: unexpected ") +
                                                       mux::type_name(r.type)));
            if (r.kind == mux::Reply::Kind::SessionOpened) {
                apply(f, ForwardEvent::Opened);
                break;  // anything after it is read (and dropped) as an open forward
            }
            return apply(f, ForwardEvent::Refused,
                         Error(r.kind == mux::Reply::Kind::PermissionDenied ? Errc::PermissionDenied
                                                                           : Errc::Backend,
                               "the ssh master refused: " + proto::quote_bytes(r.reason)));
        }
    }
}

void SshForwarder::apply(Forward& f, ForwardEvent event, Error why) {
    auto next = next_forward_state(f.state, event);
    if (!next) return;
    Master& m = masters_.at(f.master);
    ForwardState was = f.state;
    f.state = *next;
    switch (*next) {
        case ForwardState::Open:
            --m.opening;
            ++m.channels;
            ++m.opened;
            f.client.reset();  // ssh holds the connection now
            f.timer.reset();
            if (on_capacity_) on_capacity_();
            return;
        case ForwardState::Failed: {
            --m.opening;
            ++m.failed;
            Failure failure{std::move(f.client), f.ip, f.port, f.master, std::move(why)};
            finish(f);  // closes the control connection: the master drops its copies
            if (on_failed_) on_failed_(std::move(failure));
            if (on_capacity_) on_capacity_();
            return;
        }
        case ForwardState::Closed:
            if (was == ForwardState::Open) --m.channels;
            m.closed_in += f.last.acked;
            m.closed_out += f.last.received;
            finish(f);
            return;
        case ForwardState::Requested:
            return;
    }
}

void SshForwarder::finish(Forward& f) {
    auto it = forwards_.find(&f);
    if (it != forwards_.end()) forwards_.erase(it);  // f is gone from here on
}

void SshForwarder::fail_later(Failure failure) {
    deferred_.push_back(std::move(failure));
    if (deferred_source_) return;
    sd_event_source* s = nullptr;
    if (sd_event_add_defer(event_, &s, &SshForwarder::on_deferred_failures, this) >= 0)
        deferred_source_.reset(s);
}

int SshForwarder::on_deferred_failures(sd_event_source*, void* userdata) noexcept {
    auto* self = static_cast<SshForwarder*>(userdata);
    self->deferred_source_.reset();
    std::vector<Failure> failures = std::move(self->deferred_);
    self->deferred_.clear();
    for (Failure& f : failures)
        if (self->on_failed_) self->on_failed_(std::move(f));
    return 0;
}

}  // namespace sshuttle::daemon

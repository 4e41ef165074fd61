#include "daemon/socket_poller.hpp"

#include <sys/epoll.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sshuttle::daemon {

namespace {
std::uint64_t pack(std::uint32_t slot, std::uint32_t generation) {
    return (std::uint64_t{generation} << 32) | slot;
}
}  // namespace

SocketPoller::Registration& SocketPoller::Registration::operator=(Registration&& other) noexcept {
    if (this != &other) {
        reset();
        poller_ = other.poller_;
        slot_ = other.slot_;
        other.poller_ = nullptr;
    }
    return *this;
}

Result<void> SocketPoller::Registration::set_events(std::uint32_t events) {
    if (!poller_) return Error(Errc::Internal, "set_events on an empty poller registration");
    return poller_->set_events(slot_, events);
}

void SocketPoller::Registration::reset() noexcept {
    if (poller_) poller_->remove(slot_);
    poller_ = nullptr;
}

SocketPoller::SocketPoller(sd_event* event) : event_(event) {}

SocketPoller::~SocketPoller() = default;

Result<void> SocketPoller::start(std::int64_t priority) {
    epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return Error::from_errno("epoll_create1");
    sd_event_source* source = nullptr;
    int r = sd_event_add_io(event_, &source, epoll_.get(), EPOLLIN, &SocketPoller::on_io, this);
    if (r < 0) return Error::from_errno("sd_event_add_io(socket poller)", -r);
    source_.reset(source);
    sd_event_source_set_priority(source, priority);
    return ok();
}

Result<SocketPoller::Registration> SocketPoller::add(int fd, Client* client) {
    if (!epoll_) return Error(Errc::Internal, "socket poller not started");
    std::uint32_t slot;
    if (!free_.empty()) {
        slot = free_.back();
        free_.pop_back();
    } else {
        slot = static_cast<std::uint32_t>(entries_.size());
        entries_.emplace_back();
    }
    Entry& e = entries_[slot];
    e.fd = fd;
    e.events = 0;
    e.client = client;
    return Registration(this, slot);
}

Result<void> SocketPoller::set_events(std::uint32_t slot, std::uint32_t events) {
    Entry& e = entries_[slot];
    if (events == e.events) return ok();
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = pack(slot, e.generation);
    int op = e.events == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (::epoll_ctl(epoll_.get(), op, e.fd, &ev) < 0) return Error::from_errno("epoll_ctl");
    if (e.events == 0) ++armed_;
    if (events == 0) --armed_;
    e.events = events;
    return ok();
}

void SocketPoller::remove(std::uint32_t slot) noexcept {
    Entry& e = entries_[slot];
    if (e.events != 0) {
        ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, e.fd, nullptr);
        --armed_;
    }
    e.fd = -1;
    e.events = 0;
    e.client = nullptr;
    ++e.generation;
    free_.push_back(slot);
}

int SocketPoller::on_io(sd_event_source*, int, uint32_t, void* userdata) noexcept {
    static_cast<SocketPoller*>(userdata)->dispatch();
    return 0;
}

void SocketPoller::dispatch() {
    epoll_event events[kBatch];
    int n = ::epoll_wait(epoll_.get(), events, kBatch, 0);
    if (n < 0) {
        if (errno != EINTR) spdlog::warn("epoll_wait (channel sockets): {}", std::strerror(errno));
        return;
    }
    for (int i = 0; i < n; ++i) {
        const std::uint64_t key = events[i].data.u64;
        const auto slot = static_cast<std::uint32_t>(key);
        // A handler earlier in this batch may have removed or re-armed this socket (or another
        // took its slot): only events that still match what is registered now are delivered.
        if (slot >= entries_.size()) continue;
        const Entry& e = entries_[slot];
        if (e.client == nullptr || e.generation != static_cast<std::uint32_t>(key >> 32)) continue;
        const std::uint32_t revents = events[i].events & (e.events | EPOLLHUP | EPOLLERR);
        if (e.events == 0 || revents == 0) continue;
        e.client->on_poll(revents);  // may add or remove registrations: `e` is not used after
    }
}

}  // namespace sshuttle::daemon

#include "daemon/dns_proxy.hpp"

#include <sys/socket.h>

#include <cstring>

#include <spdlog/spdlog.h>

namespace sshuttle::daemon {

namespace {

// Microseconds between sweeps for unanswered queries.
constexpr std::uint64_t kSweepInterval = 5'000'000;
// Datagrams read per wakeup before other sources get their turn.
constexpr int kReadBurst = 32;

// One query in flight. Lives in the mux's channel table so its id is not reused meanwhile.
class DnsChannel final : public Channel {
public:
    DnsChannel(DnsProxy& proxy, std::uint16_t id, int socket, const SockAddr& asker)
        : proxy_(proxy), id_(id), socket_(socket), asker_(asker) {}
    void on_frame(proto::Command command, proto::ByteView payload) override {
        if (command == proto::Command::DnsResponse) proxy_.answer(id_, socket_, asker_, payload);
    }

private:
    DnsProxy& proxy_;
    std::uint16_t id_;
    int socket_;
    SockAddr asker_;
};

}  // namespace

Result<UniqueFd> bind_udp(const IpAddress& ip, std::uint16_t port) {
    int family = ip.is_v4() ? AF_INET : AF_INET6;
    UniqueFd fd(::socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno("socket(udp)");
    int one = 1;
    if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    SockAddr sa = make_sockaddr(ip, port);
    if (::bind(fd.get(), sa.get(), sa.len) < 0)
        return Error::from_errno("bind udp " + ip.to_string() + ":" + std::to_string(port));
    return fd;
}

DnsProxy::DnsProxy(sd_event* event, Mux& mux) : event_(event), mux_(mux), buffer_(kMaxDatagram) {}
DnsProxy::~DnsProxy() = default;

Result<void> DnsProxy::add_socket(UniqueFd socket) {
    sockets_.push_back(std::move(socket));
    return ok();
}

Result<void> DnsProxy::start() {
    for (const UniqueFd& fd : sockets_) {
        sd_event_source* source = nullptr;
        int r = sd_event_add_io(event_, &source, fd.get(), EPOLLIN, &DnsProxy::on_io, this);
        if (r < 0) return Error::from_errno("sd_event_add_io(dns)", -r);
        sources_.emplace_back(source);
    }
    sd_event_source* timer = nullptr;
    int r = sd_event_add_time_relative(event_, &timer, CLOCK_MONOTONIC, kSweepInterval, 0,
                                       &DnsProxy::on_timer, this);
    if (r < 0) return Error::from_errno("sd_event_add_time_relative(dns)", -r);
    timer_.reset(timer);
    return ok();
}

int DnsProxy::on_io(sd_event_source*, int fd, uint32_t, void* userdata) noexcept {
    static_cast<DnsProxy*>(userdata)->read_queries(fd);
    return 0;
}

int DnsProxy::on_timer(sd_event_source* s, uint64_t usec, void* userdata) noexcept {
    static_cast<DnsProxy*>(userdata)->expire(usec);
    sd_event_source_set_time(s, usec + kSweepInterval);
    sd_event_source_set_enabled(s, SD_EVENT_ON);
    return 0;
}

void DnsProxy::read_queries(int fd) {
    for (int i = 0; i < kReadBurst; ++i) {
        SockAddr asker;
        asker.len = sizeof asker.storage;
        ssize_t n = ::recvfrom(fd, buffer_.data(), buffer_.size(), 0, asker.get(), &asker.len);
        if (n < 0) return;  // EAGAIN, or an ICMP error for an earlier answer
        std::uint16_t id = mux_.allocate_channel();
        if (id == 0) {
            spdlog::warn("too many open channels: dropping a DNS query");
            continue;
        }
        std::uint64_t now = 0;
        sd_event_now(event_, CLOCK_MONOTONIC, &now);
        deadlines_[id] = now + kQueryTimeout;
        mux_.attach(id, std::make_unique<DnsChannel>(*this, id, fd, asker));
        mux_.send(id, proto::Command::DnsReq,
                  proto::ByteView(buffer_.data(), static_cast<std::size_t>(n)));
        ++queries_;
    }
}

void DnsProxy::answer(std::uint16_t id, int socket, const SockAddr& asker, proto::ByteView reply) {
    if (::sendto(socket, reply.data(), reply.size(), 0, asker.get(), asker.len) < 0)
        spdlog::debug("DNS answer for channel {} not delivered: {}", id, std::strerror(errno));
    deadlines_.erase(id);
    mux_.release(id);
}

void DnsProxy::expire(std::uint64_t now) {
    for (auto it = deadlines_.begin(); it != deadlines_.end();) {
        if (it->second <= now) {
            mux_.release(it->first);
            it = deadlines_.erase(it);
        } else {
            ++it;
        }
    }
}

}  // namespace sshuttle::daemon

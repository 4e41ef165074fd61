#include "daemon/tcp_listener.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include <spdlog/spdlog.h>

#include "daemon/tcp_channel.hpp"

namespace sshuttle::daemon {

namespace {
// getsockopt option for the pre-NAT destination, for IPv4 (SOL_IP) and IPv6 (SOL_IPV6). The
// value is 80 in both <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>, which
// do not mix well with glibc's headers.
constexpr int kSoOriginalDst = 80;
// Connections accepted per wakeup before other sources get their turn.
constexpr int kAcceptBurst = 64;
}  // namespace

Result<std::pair<IpAddress, std::uint16_t>> original_destination(int fd) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) < 0)
        return Error::from_errno("getsockname");
    sockaddr_storage orig{};
    socklen_t olen = sizeof orig;
    int level = local.ss_family == AF_INET6 ? SOL_IPV6 : SOL_IP;
    if (::getsockopt(fd, level, kSoOriginalDst, &orig, &olen) == 0)
        return from_sockaddr(reinterpret_cast<sockaddr*>(&orig), olen);
    if (errno != ENOENT && errno != ENOPROTOOPT) return Error::from_errno("SO_ORIGINAL_DST");
    return from_sockaddr(reinterpret_cast<sockaddr*>(&local), len);
}

Result<UniqueFd> listen_tcp(const IpAddress& ip, std::uint16_t port) {
    int family = ip.is_v4() ? AF_INET : AF_INET6;
    UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno("socket");
    int one = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    SockAddr sa = make_sockaddr(ip, port);
    if (::bind(fd.get(), sa.get(), sa.len) < 0) {
        std::string where = ip.is_v4() ? ip.to_string() : "[" + ip.to_string() + "]";
        return Error::from_errno("bind " + where + ":" + std::to_string(port));
    }
    // The kernel caps the backlog at net.core.somaxconn (4096 by default).
    if (::listen(fd.get(), 65535) < 0) return Error::from_errno("listen");
    return fd;
}

std::string tcp_connect_payload(const IpAddress& ip, std::uint16_t port) {
    return (ip.is_v4() ? "2," : "10,") + ip.to_string() + "," + std::to_string(port);
}

TcpListener::TcpListener(sd_event* event, Mux& mux, IpAddress address, std::uint16_t port,
                         UniqueFd socket)
    : event_(event), mux_(mux), address_(address), port_(port), socket_(std::move(socket)) {}

Result<void> TcpListener::start() {
    sd_event_source* source = nullptr;
    int r = sd_event_add_io(event_, &source, socket_.get(), EPOLLIN, &TcpListener::on_io, this);
    if (r < 0) return Error::from_errno("sd_event_add_io(listener)", -r);
    source_.reset(source);
    return ok();
}

int TcpListener::on_io(sd_event_source*, int, uint32_t, void* userdata) noexcept {
    static_cast<TcpListener*>(userdata)->accept_some();
    return 0;
}

void TcpListener::accept_some() {
    for (int i = 0; i < kAcceptBurst; ++i) {
        int fd = ::accept4(socket_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                spdlog::warn("accept: out of file descriptors; connection waits in the backlog");
            else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                spdlog::warn("accept: {}", std::strerror(errno));
            return;
        }
        ++accepted_;
        // Small writes go out at once: a request/response protocol must not wait on Nagle
        // for the ACK of our previous segment (the agent does the same on the remote side).
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        open_channel(UniqueFd(fd));
    }
}

void TcpListener::open_channel(UniqueFd socket) {
    auto dst = original_destination(socket.get());
    if (!dst) {
        spdlog::warn("dropping a connection: {}", dst.error().to_string());
        return;
    }
    auto [ip, port] = *dst;
    if (port == port_ && (ip == address_ || ip.is_loopback())) {
        spdlog::debug("dropping a connection to my own address {}:{}", ip.to_string(), port);
        return;
    }
    std::uint16_t id = mux_.allocate_channel();
    if (id == 0) {
        spdlog::warn("too many open channels. Discarded connection.");
        return;
    }
    auto channel = std::make_unique<TcpChannel>(mux_, id, std::move(socket));
    if (auto r = channel->start(); !r) {
        spdlog::warn("dropping a connection: {}", r.error().to_string());
        return;
    }
    spdlog::debug("channel {}: connect to {}:{}", id, ip.to_string(), port);
    std::string payload = tcp_connect_payload(ip, port);
    mux_.send(id, proto::Command::TcpConnect, proto::as_bytes(payload));
    mux_.attach(id, std::move(channel));
}

}  // namespace sshuttle::daemon

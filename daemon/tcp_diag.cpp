#include "daemon/tcp_diag.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/unique_fd.hpp"

namespace sshuttle::daemon {

std::optional<TcpSocketId> tcp_socket_id(int fd) noexcept {
    TcpSocketId id;
    socklen_t len = sizeof id.cookie;
    if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &id.cookie, &len) != 0) return std::nullopt;
    len = sizeof id.local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&id.local), &len) != 0) return std::nullopt;
    len = sizeof id.remote;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&id.remote), &len) != 0) return std::nullopt;
    if (id.local.ss_family != AF_INET && id.local.ss_family != AF_INET6) return std::nullopt;
    return id;
}

namespace {

// Requests per system call: their answers (about 350 bytes each) fit the socket's buffer.
constexpr std::size_t kBatch = 128;

struct Request {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
};

Request make_request(const TcpSocketId& s, std::uint32_t seq) {
    Request r{};
    r.nlh.nlmsg_len = sizeof r;
    r.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    r.nlh.nlmsg_flags = NLM_F_REQUEST;
    r.nlh.nlmsg_seq = seq;
    r.req.sdiag_family = static_cast<std::uint8_t>(s.local.ss_family);
    r.req.sdiag_protocol = IPPROTO_TCP;
    r.req.idiag_ext = 1u << (INET_DIAG_INFO - 1);
    r.req.idiag_states = ~0u;
    r.req.id.idiag_cookie[0] = static_cast<std::uint32_t>(s.cookie);
    r.req.id.idiag_cookie[1] = static_cast<std::uint32_t>(s.cookie >> 32);
    if (s.local.ss_family == AF_INET) {
        sockaddr_in l{}, p{};
        std::memcpy(&l, &s.local, sizeof l);
        std::memcpy(&p, &s.remote, sizeof p);
        r.req.id.idiag_sport = l.sin_port;
        r.req.id.idiag_dport = p.sin_port;
        std::memcpy(r.req.id.idiag_src, &l.sin_addr, 4);
        std::memcpy(r.req.id.idiag_dst, &p.sin_addr, 4);
    } else {
        sockaddr_in6 l{}, p{};
        std::memcpy(&l, &s.local, sizeof l);
        std::memcpy(&p, &s.remote, sizeof p);
        r.req.id.idiag_sport = l.sin6_port;
        r.req.id.idiag_dport = p.sin6_port;
        std::memcpy(r.req.id.idiag_src, &l.sin6_addr, 16);
        std::memcpy(r.req.id.idiag_dst, &p.sin6_addr, 16);
    }
    r.req.id.idiag_if = 0;
    return r;
}

// Reads answers until `expected` of them (a socket's message or an error each) arrived.
// The netlink macros cast C-style; the walk is written out with memcpy instead.
Result<void> read_answers(int sock, std::size_t expected,
                          std::unordered_map<std::uint64_t, TcpCounters>& out) {
    constexpr std::size_t kAlign = 4;
    auto align = [](std::size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); };
    const std::size_t hdr = align(sizeof(nlmsghdr));
    const std::size_t msg_len = align(sizeof(inet_diag_msg));
    static thread_local std::vector<std::uint8_t> buf(256 * 1024);
    std::size_t answered = 0;
    for (int reads = 0; answered < expected && reads < 100'000; ++reads) {
        ssize_t n = ::recv(sock, buf.data(), buf.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("sock_diag recv");
        }
        const auto len = static_cast<std::size_t>(n);
        for (std::size_t off = 0; off + hdr <= len;) {
            nlmsghdr h{};
            std::memcpy(&h, buf.data() + off, sizeof h);
            if (h.nlmsg_len < hdr || off + h.nlmsg_len > len) break;
            const std::uint8_t* payload = buf.data() + off + hdr;
            const std::size_t payload_len = h.nlmsg_len - hdr;
            off += align(h.nlmsg_len);
            ++answered;
            // NLMSG_ERROR: ENOENT for a socket that is gone; nothing to count.
            if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY || payload_len < sizeof(inet_diag_msg))
                continue;
            inet_diag_msg msg{};
            std::memcpy(&msg, payload, sizeof msg);
            std::uint64_t cookie = std::uint64_t{msg.id.idiag_cookie[0]} |
                                   (std::uint64_t{msg.id.idiag_cookie[1]} << 32);
            // Attributes: u16 length (header included), u16 type, data; 4-byte aligned.
            for (std::size_t at = msg_len; at + 4 <= payload_len;) {
                std::uint16_t alen = 0, atype = 0;
                std::memcpy(&alen, payload + at, 2);
                std::memcpy(&atype, payload + at + 2, 2);
                if (alen < 4 || at + alen > payload_len) break;
                if (atype == INET_DIAG_INFO) {
                    tcp_info info{};
                    std::memcpy(&info, payload + at + 4,
                                std::min<std::size_t>(alen - 4, sizeof info));
                    out[cookie] = {info.tcpi_bytes_received, info.tcpi_bytes_acked};
                }
                at += align(alen);
            }
        }
    }
    if (answered < expected) return Error(Errc::Protocol, "sock_diag: answers missing");
    return ok();
}

}  // namespace

Result<std::unordered_map<std::uint64_t, TcpCounters>> read_tcp_counters(
    const std::vector<TcpSocketId>& sockets) {
    std::unordered_map<std::uint64_t, TcpCounters> out;
    if (sockets.empty()) return out;
    UniqueFd sock(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!sock) return Error::from_errno("socket(NETLINK_SOCK_DIAG)");
    std::vector<Request> batch;
    batch.reserve(kBatch);
    for (std::size_t i = 0; i < sockets.size(); i += kBatch) {
        batch.clear();
        std::size_t end = std::min(sockets.size(), i + kBatch);
        for (std::size_t j = i; j < end; ++j)
            batch.push_back(make_request(sockets[j], static_cast<std::uint32_t>(j + 1)));
        const std::size_t bytes = batch.size() * sizeof(Request);
        if (::send(sock.get(), batch.data(), bytes, 0) != static_cast<ssize_t>(bytes))
            return Error::from_errno("sock_diag send");
        if (auto r = read_answers(sock.get(), batch.size(), out); !r) return r.error();
    }
    return out;
}

}  // namespace sshuttle::daemon

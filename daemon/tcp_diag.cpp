#include "daemon/tcp_diag.hpp"

#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "common/unique_fd.hpp"

namespace sshuttle::daemon {

std::uint64_t socket_cookie(int fd) noexcept {
    std::uint64_t cookie = 0;
    socklen_t len = sizeof cookie;
    if (::getsockopt(fd, SOL_SOCKET, SO_COOKIE, &cookie, &len) != 0) return 0;
    return cookie;
}

namespace {

// Every state but LISTEN, SYN_RECV and TIME_WAIT (no tcp_info for the latter two).
constexpr std::uint32_t kStates = ((1u << 12) - 1) & ~((1u << 10) | (1u << 3) | (1u << 6));

Result<void> dump_family(int sock, std::uint8_t family,
                         const std::unordered_set<std::uint64_t>& wanted,
                         std::unordered_map<std::uint64_t, TcpCounters>& out) {
    struct {
        nlmsghdr nlh;
        inet_diag_req_v2 req;
    } request{};
    request.nlh.nlmsg_len = sizeof request;
    request.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    request.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.nlh.nlmsg_seq = family;
    request.req.sdiag_family = family;
    request.req.sdiag_protocol = IPPROTO_TCP;
    request.req.idiag_ext = 1u << (INET_DIAG_INFO - 1);
    request.req.idiag_states = kStates;
    if (::send(sock, &request, sizeof request, 0) < 0) return Error::from_errno("sock_diag send");

    // The netlink macros cast C-style; the walk is written out with memcpy instead.
    constexpr std::size_t kAlign = 4;
    auto align = [](std::size_t n) { return (n + kAlign - 1) & ~(kAlign - 1); };
    const std::size_t hdr = align(sizeof(nlmsghdr));
    const std::size_t msg_len = align(sizeof(inet_diag_msg));
    static thread_local std::vector<std::uint8_t> buf(64 * 1024);
    // Bounded: a dump ends with NLMSG_DONE; a namespace with millions of sockets still ends.
    for (int reads = 0; reads < 1'000'000; ++reads) {
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
            if (h.nlmsg_type == NLMSG_DONE) return ok();
            if (h.nlmsg_type == NLMSG_ERROR) {
                nlmsgerr e{};
                std::memcpy(&e, payload, std::min(payload_len, sizeof e));
                return Error::from_errno("sock_diag", -e.error);
            }
            if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY || payload_len < sizeof(inet_diag_msg))
                continue;
            inet_diag_msg msg{};
            std::memcpy(&msg, payload, sizeof msg);
            std::uint64_t cookie = std::uint64_t{msg.id.idiag_cookie[0]} |
                                   (std::uint64_t{msg.id.idiag_cookie[1]} << 32);
            if (wanted.count(cookie) == 0) continue;
            // Attributes: u16 length (header included), u16 type, data; 4-byte aligned.
            for (std::size_t at = msg_len; at + 4 <= payload_len;) {
                std::uint16_t alen = 0, atype = 0;
                std::memcpy(&alen, payload + at, 2);
                std::memcpy(&atype, payload + at + 2, 2);
                if (alen < 4 || at + alen > payload_len) break;
                if (atype == INET_DIAG_INFO) {
                    tcp_info info{};
                    std::memcpy(&info, payload + at + 4, std::min<std::size_t>(alen - 4, sizeof info));
                    out[cookie] = {info.tcpi_bytes_received, info.tcpi_bytes_acked};
                }
                at += align(alen);
            }
        }
    }
    return Error(Errc::TooLarge, "sock_diag: the dump did not end");
}

}  // namespace

Result<std::unordered_map<std::uint64_t, TcpCounters>> read_tcp_counters(
    const std::unordered_set<std::uint64_t>& wanted) {
    std::unordered_map<std::uint64_t, TcpCounters> out;
    if (wanted.empty()) return out;
    UniqueFd sock(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!sock) return Error::from_errno("socket(NETLINK_SOCK_DIAG)");
    for (std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}})
        if (auto r = dump_family(sock.get(), family, wanted, out); !r) return r.error();
    return out;
}

}  // namespace sshuttle::daemon

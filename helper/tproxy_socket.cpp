#include "helper/tproxy_socket.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

namespace sshuttle::helper {
namespace {

Result<void> set_int(int fd, int level, int option, const char* name) {
    int one = 1;
    if (setsockopt(fd, level, option, &one, sizeof one) != 0) {
        int err = errno;
        if (err == EPERM)
            return Error(Errc::PermissionDenied,
                         std::string(name) + ": needs CAP_NET_ADMIN or CAP_NET_RAW", err);
        return Error::from_errno(std::string("setsockopt ") + name, err);
    }
    return ok();
}

}  // namespace

Result<UniqueFd> make_transparent_socket(TransparentKind kind, const IpAddress& address,
                                         std::uint16_t port) {
    if (port == 0) return Error(Errc::InvalidArgument, "port: 0 is not a port");
    const bool v4 = address.is_v4();
    const bool tcp = kind == TransparentKind::TcpListener;
    UniqueFd fd(socket(v4 ? AF_INET : AF_INET6,
                       (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return Error::from_errno("socket");
    if (v4) {
        if (auto r = set_int(fd.get(), SOL_IP, IP_TRANSPARENT, "IP_TRANSPARENT"); !r) return r.error();
    } else {
        if (auto r = set_int(fd.get(), SOL_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY"); !r) return r.error();
        if (auto r = set_int(fd.get(), SOL_IPV6, IPV6_TRANSPARENT, "IPV6_TRANSPARENT"); !r)
            return r.error();
    }
    if (auto r = set_int(fd.get(), SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR"); !r) return r.error();
    if (kind == TransparentKind::UdpListener) {
        auto r = v4 ? set_int(fd.get(), SOL_IP, IP_RECVORIGDSTADDR, "IP_RECVORIGDSTADDR")
                    : set_int(fd.get(), SOL_IPV6, IPV6_RECVORIGDSTADDR, "IPV6_RECVORIGDSTADDR");
        if (!r) return r.error();
    }
    SockAddr sa = make_sockaddr(address, port);
    if (bind(fd.get(), sa.get(), sa.len) != 0)
        return Error::from_errno("bind " + address.to_string() + " port " + std::to_string(port));
    if (tcp && listen(fd.get(), SOMAXCONN) != 0) return Error::from_errno("listen");
    return fd;
}

}  // namespace sshuttle::helper

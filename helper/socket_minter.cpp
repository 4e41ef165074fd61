// The bridge from the service's SocketMinter seam to tproxy_socket.hpp: for a tproxy tunnel,
// the listening sockets its rules point at, on the ports of the spec the caller applied (never
// on ports or addresses named in the GetTransparentSockets request itself).
#include "helper/service.hpp"
#include "helper/tproxy_socket.hpp"

namespace sshuttle::helper {

namespace {

// `tproxy ... to :PORT` keeps the original destination address, so the listener must accept
// any local address: the wildcard of its family.
Result<IpAddress> wildcard(bool v6) {
    return IpAddress::parse(v6 ? "::" : "0.0.0.0");
}

Result<void> add(std::vector<MintedSocket>& out, TransparentKind kind, bool v6, std::uint16_t port,
                 const char* proto) {
    if (port == 0) return ok();
    auto any = wildcard(v6);
    if (!any) return std::move(any).error();
    auto fd = make_transparent_socket(kind, *any, port);
    if (!fd) return std::move(fd).error();
    out.push_back(MintedSocket{v6 ? "ipv6" : "ipv4", proto, std::move(*fd)});
    return ok();
}

}  // namespace

SocketMinter make_socket_minter() {
    return [](const TunnelSpec& spec) -> Result<std::vector<MintedSocket>> {
        std::vector<MintedSocket> out;
        for (bool v6 : {false, true}) {
            const std::uint16_t tcp = v6 ? spec.tcp_port_v6 : spec.tcp_port_v4;
            const std::uint16_t dns = v6 ? spec.dns_port_v6 : spec.dns_port_v4;
            if (auto r = add(out, TransparentKind::TcpListener, v6, tcp, "tcp"); !r)
                return std::move(r).error();
            if (spec.udp)
                if (auto r = add(out, TransparentKind::UdpListener, v6, tcp, "udp"); !r)
                    return std::move(r).error();
            if (auto r = add(out, TransparentKind::UdpListener, v6, dns, "dns"); !r)
                return std::move(r).error();
        }
        return out;
    };
}

}  // namespace sshuttle::helper

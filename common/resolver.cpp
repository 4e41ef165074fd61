#include "common/resolver.hpp"

#include <netdb.h>

#include <algorithm>
#include <memory>
#include <string>

namespace sshuttle {

namespace {
struct AddrInfoFree {
    void operator()(addrinfo* ai) const noexcept { ::freeaddrinfo(ai); }
};
using AddrInfoPtr = std::unique_ptr<addrinfo, AddrInfoFree>;
}  // namespace

Result<std::vector<IpAddress>> resolve_with_getaddrinfo(std::string_view host) {
    // getaddrinfo reads a C string: an embedded NUL would silently resolve a different name.
    if (host.empty() || host.find('\0') != std::string_view::npos)
        return Error(Errc::InvalidArgument, "'" + std::string(host.substr(0, host.find('\0'))) +
                                                "' is not a host name that can be resolved");
    std::string name(host);
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* raw = nullptr;
    int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &raw);
    int err = errno;  // meaningful only with EAI_SYSTEM
    AddrInfoPtr list(raw);
    if (rc == EAI_SYSTEM) return Error(Errc::Io, "Unable to resolve address: " + name, err);
    if (rc != 0)
        return Error(Errc::NotFound,
                     "Unable to resolve address: " + name + " (" + ::gai_strerror(rc) + ")");

    std::vector<IpAddress> out;
    for (const addrinfo* ai = list.get(); ai != nullptr; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
        auto ip = from_sockaddr(ai->ai_addr, ai->ai_addrlen);
        if (!ip) continue;
        if (std::find(out.begin(), out.end(), ip->first) == out.end()) out.push_back(ip->first);
    }
    if (out.empty()) return Error(Errc::NotFound, "Unable to resolve address: " + name);
    return out;
}

}  // namespace sshuttle

// Resolver: the seam between the address parsers and name resolution.
//
// The subnet and ip:port parsers never call getaddrinfo themselves; they take a Resolver. The
// programs pass resolve_with_getaddrinfo, tests pass a fake, so no unit test depends on DNS.
#pragma once

#include <functional>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"

namespace sshuttle {

// Every address `host` resolves to, in the resolver's order. A name that does not resolve is a
// NotFound error whose message is sshuttle's "Unable to resolve address: HOST"; an empty vector
// is treated the same way by the callers.
using Resolver = std::function<Result<std::vector<IpAddress>>(std::string_view host)>;

// The production resolver, as sshuttle does it: getaddrinfo(host, nullptr) with
// ai_socktype=SOCK_STREAM (one entry per address rather than one per socket type) and no
// AI_ADDRCONFIG (sshuttle passes flags 0). Duplicates are dropped, order is kept. It blocks for as
// long as the system resolver takes, so call it while parsing the command line, not from an event
// loop.
[[nodiscard]] Result<std::vector<IpAddress>> resolve_with_getaddrinfo(std::string_view host);

}  // namespace sshuttle

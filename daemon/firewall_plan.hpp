// From a tunnel's options to the firewall request the helper receives: sshuttle's "derived
// behaviour at startup" (reference §1.5 steps 4-7) as one pure function.
//
// What it decides:
//   * the DNS servers to capture: --ns-hosts, plus the nameservers of resolv.conf with --dns;
//   * IPv6: when off, IPv6 includes, excludes and DNS servers are dropped (a warning each);
//     nothing left to capture is an error;
//   * automatic excludes: the listen addresses (unless that exact address is an include) and
//     every address of the ssh server, so the tunnel never captures itself;
//   * features the method lacks (UDP, --user/--group) are errors naming the method.
// No I/O here: resolv.conf arrives as text, the server's addresses already resolved.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "common/subnet.hpp"
#include "helper/spec.hpp"

namespace sshuttle::daemon {

struct FirewallInputs {
    std::string name;                              // the tunnel (profile) name
    helper::Method method = helper::Method::Nft;
    std::vector<SubnetPort> includes;              // positional subnets and -s files
    std::vector<SubnetPort> excludes;              // -x and -X
    std::vector<IpAddress> listen_ips;             // the TCP listeners' addresses
    std::uint16_t tcp_port_v4 = 0;                 // 0: no IPv4 listener
    std::uint16_t tcp_port_v6 = 0;                 // 0: no IPv6 listener
    std::uint16_t dns_port_v4 = 0;                 // 0: no IPv4 DNS listener
    std::uint16_t dns_port_v6 = 0;
    bool dns = false;                              // --dns: capture resolv.conf's servers
    std::string resolv_conf;                       // its text (read by the caller)
    std::vector<IpAddress> ns_hosts;               // --ns-hosts
    std::vector<IpAddress> server_addresses;       // the ssh server, resolved
    bool udp = false;
    std::optional<std::uint32_t> uid;              // --user
    std::optional<std::uint32_t> gid;              // --group
};

struct FirewallPlan {
    helper::TunnelSpec spec;
    std::vector<std::string> warnings;             // things dropped, for the log
};

// The nameservers of a resolv.conf text, in order, without duplicates. Lines that are not
// `nameserver ADDRESS` are ignored, as the resolver does; a scope suffix (%eth0) is dropped.
std::vector<IpAddress> resolv_conf_nameservers(std::string_view text);

// The spec for the helper, validated with helper::validate(); errors are InvalidArgument
// with a message a user can act on.
[[nodiscard]] Result<FirewallPlan> plan_firewall(const FirewallInputs& inputs);

}  // namespace sshuttle::daemon

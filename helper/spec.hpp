// The typed request that describes one tunnel's firewall rules: the contract between the D-Bus
// front end (methods.*), the pure renderers (render_*.cpp) and the apply backends (backend.hpp).
//
// Nothing here trusts its input: spec_from_json() and validate() check every field and cap every
// list and string, and return a named InvalidArgument/TooLarge error that says which field is
// wrong. The renderers and backends assume a spec that validate() accepted.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "common/subnet.hpp"

namespace sshuttle::helper {

inline constexpr std::size_t kMaxTunnelNameBytes = 32;
inline constexpr std::size_t kMaxSubnetsPerSpec = 4096;   // includes and excludes, each
inline constexpr std::size_t kMaxDnsServersPerSpec = 64;
inline constexpr std::size_t kMaxServerAddresses = 64;

enum class Method : std::uint8_t { Nft, Nat, Tproxy, Pf };

// "nft", "nat", "tproxy", "pf".
std::string_view method_name(Method method) noexcept;
[[nodiscard]] Result<Method> parse_method(std::string_view text);

struct TunnelSpec {
    std::string name;                    // ^[a-z0-9_-]{1,32}$; names the table/chain/anchor
    Method method = Method::Nft;
    std::vector<SubnetPort> includes;    // captured destinations
    std::vector<SubnetPort> excludes;    // never captured (checked before includes)
    std::vector<IpAddress> dns_servers;  // UDP/53 to these goes to the DNS listener
    std::vector<IpAddress> server_addresses;  // the ssh server: always excluded (no loop)
    std::uint16_t tcp_port_v4 = 0;       // listener ports; 0 = that family is not captured
    std::uint16_t tcp_port_v6 = 0;
    std::uint16_t dns_port_v4 = 0;       // 0 = no DNS capture for that family
    std::uint16_t dns_port_v6 = 0;
    bool udp = false;                    // capture UDP too (tproxy only)
    std::optional<std::uint32_t> uid;    // capture only traffic of this uid (--user)
    std::optional<std::uint32_t> gid;    // capture only traffic of this gid (--group)

    friend bool operator==(const TunnelSpec&, const TunnelSpec&) = default;
};

// True when `name` matches ^[a-z0-9_-]{1,32}$.
bool valid_tunnel_name(std::string_view name) noexcept;

// A DNS name as /etc/hosts takes it: labels of [A-Za-z0-9-], 1..63 bytes, not starting or
// ending with '-', 253 bytes in all, one trailing '.' allowed. SetHosts checks every name with
// it; the daemon filters what a server reports with it before asking.
bool valid_host_name(std::string_view name) noexcept;

// FNV-1a (32 bits) of a name: the short stable suffix that keeps shortened names apart (nat
// chain names, the daemon's mapping of its tunnel names onto valid_tunnel_name()).
std::uint32_t name_hash(std::string_view name) noexcept;

// Checks the cross-field rules: name, at least one include or DNS server, families match the
// ports given, udp only with tproxy, uid/gid not with pf, caps on every list.
[[nodiscard]] Result<void> validate(const TunnelSpec& spec);

// The JSON shape of a spec (the helper interface is JSON-shaped so a varlink front end can be
// added later). Unknown fields, wrong types and out-of-range values are errors naming the field.
//   {"name":"corp","method":"nft","includes":["10.0.0.0/8","[fd00::/8]:80-90"],
//    "excludes":[...],"dns_servers":["10.0.0.53"],"server_addresses":["192.0.2.7"],
//    "tcp_port_v4":12300,"tcp_port_v6":12300,"dns_port_v4":12299,"dns_port_v6":0,
//    "udp":false,"uid":1000,"gid":null}
[[nodiscard]] Result<TunnelSpec> spec_from_json(const nlohmann::json& json);
nlohmann::json spec_to_json(const TunnelSpec& spec);

// sshuttle's rule order (reference §3.2): narrower port ranges first, then longer prefixes,
// then excludes before includes. Returns includes and excludes merged in that order.
struct OrderedRule {
    SubnetPort target;
    bool exclude = false;
};
std::vector<OrderedRule> ordered_rules(const TunnelSpec& spec);

}  // namespace sshuttle::helper

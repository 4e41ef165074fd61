// Pure renderers: a validated TunnelSpec -> the text a firewall tool reads. No I/O, no state;
// golden-file tests (helper/testdata/*.golden) pin every byte.
//
// Rule order inside every renderer (one "capture" sequence per family, first match wins):
//   1. DNS redirects (UDP/53 to each dns_server -> dns_port), as sshuttle >= 1.1.2;
//   2. local destinations return (nft `fib daddr type local`, iptables `addrtype LOCAL`), as
//      sshuttle's nft method does: traffic to this host's own addresses is never captured;
//   3. the ssh server's addresses return (all protocols), so a tunnel never captures itself even
//      with methods that act on every packet (tproxy) or when an include covers the server;
//   4. includes and excludes in ordered_rules() order (sshuttle's subnet_weight).
// pf is last-match, so its renderer writes the same decisions in the reverse order.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "helper/spec.hpp"

namespace sshuttle::helper {

// ---- nft and tproxy: one `table inet sshuttle_<name>` with `flags owner` -------------------
//
// Native nft syntax (nftables 1.0.6 drops the owner flag in JSON input). The text starts with
// `create table inet sshuttle_<name> { flags owner; }`, so a table of that name that already
// exists makes the whole transaction fail and change nothing; a second `table` block in the same
// buffer fills it (nft 1.0.6 ignores the contents of a `create table` block).

inline constexpr std::string_view kNftTablePrefix = "sshuttle_";

// "sshuttle_<name>".
std::string nft_table_name(std::string_view tunnel);

// method nft: nat chains `prerouting` (hook prerouting, dstnat) and `output` (hook output, -100)
// both jump to `capture`, which redirects TCP to tcp_port_v4/v6 and DNS to dns_port_v4/v6.
// With uid/gid only the output chain jumps, after `meta skuid/skgid != ... return` (forwarded
// traffic has no owner, so it is never captured then, as with sshuttle's --user).
std::string render_nft(const TunnelSpec& spec);

// method tproxy: chain `prerouting` (filter, priority mangle) diverts packets of existing
// transparent sockets and sends new ones to the listeners with `tproxy ip/ip6 to :port` and the
// fwmark below; chain `output` (route, priority mangle) sets that mark on locally generated
// packets to captured destinations, so the policy route below re-routes them through lo where
// prerouting sees them. TCP, and UDP too when spec.udp (same port as TCP, as sshuttle).
// With uid/gid: output returns early for other owners and prerouting only handles packets that
// arrive on lo (i.e. locally generated ones).
std::string render_tproxy(const TunnelSpec& spec);

// Either of the two above by spec.method (nft or tproxy).
std::string render_nft_table(const TunnelSpec& spec);

// "delete table inet sshuttle_<name>\n".
std::string render_nft_delete(std::string_view tunnel);

// The tproxy policy routing, shared by every tproxy tunnel of the helper (one mark, one table):
//   ip rule add fwmark 0x5348/0xffffffff lookup 21320 pref 21320        (and ip -6)
//   ip route add local default dev lo table 21320                      (and ip -6)
// 0x5348 is "SH"; 21320 is the same number in decimal. The rule's priority sits before `main`
// (32766) as it must, and is explicit so it is recognisable and removable exactly.
inline constexpr std::uint32_t kTproxyMark = 0x5348;
inline constexpr std::uint32_t kTproxyRouteTable = 21320;
inline constexpr std::uint32_t kTproxyRulePriority = 21320;

// ---- nat: iptables-restore input ----------------------------------------------------------

// Chain names are at most 28 characters (XT_EXTENSION_MAXNAMELEN - 1). The mapping:
//   name of 1..18 chars -> "sshuttle_" + name                      (10..27 chars)
//   name of 19..32 chars -> "sshuttle_" + first 10 chars + "-" + 8 lowercase hex digits of the
//                           32-bit FNV-1a hash of the whole name   (exactly 28 chars)
// The two forms never collide (different lengths). Two long names collide only if they share
// the first 10 characters and the hash; apply then fails cleanly because the chain exists.
// The underscore keeps us apart from upstream sshuttle's "sshuttle-<port>" chains.
inline constexpr std::string_view kNatChainPrefix = "sshuttle_";
inline constexpr std::size_t kMaxNatChainBytes = 28;
std::string nat_chain_name(std::string_view tunnel);

// The restore text for one family ("*nat ... COMMIT\n"), or "" when the spec captures nothing of
// that family. Declares the chain, fills it, and inserts jumps at the top of OUTPUT and (without
// uid/gid) PREROUTING; with uid/gid the OUTPUT jump carries `-m owner --uid-owner/--gid-owner`.
// Meant for `iptables-restore --noflush -w` / `ip6tables-restore --noflush -w`.
std::string render_nat(const TunnelSpec& spec, Family family);

// Exact removal, computed from what `iptables-save -t nat` shows now: every rule that jumps to
// `chain` is deleted with its own rule text (-A -> -D), then the chain is flushed and deleted.
// "" when the chain does not exist.
std::string render_nat_remove(std::string_view save_output, std::string_view chain);

// The chains in `iptables-save -t nat` output whose names start with kNatChainPrefix.
std::vector<std::string> nat_chains_in(std::string_view save_output);

// ---- pf: anchor rulesets (macOS/FreeBSD flavour of reference §3.6) -------------------------

struct PfAnchor {
    std::string name;   // "sshuttle_<name>" (IPv4) or "sshuttle6_<name>" (IPv6)
    std::string rules;  // for `pfctl -a <name> -f /dev/stdin`
};
// One anchor per family that has something to capture (IPv6 first, as sshuttle sets it up).
std::vector<PfAnchor> render_pf(const TunnelSpec& spec);

}  // namespace sshuttle::helper

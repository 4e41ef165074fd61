// The tproxy method's fwmark policy routing, done with rtnetlink messages (no `ip` binary):
//   rule:  fwmark kTproxyMark/0xffffffff lookup kTproxyRouteTable pref kTproxyRulePriority
//   route: local default dev lo table kTproxyRouteTable
// for one family. Constants and the reason for them are in render.hpp.
#pragma once

#include "common/error.hpp"
#include "common/ip_address.hpp"

namespace sshuttle::helper {

// Adds the rule and the route for `family`. Whichever already exists is left alone (a second
// helper, or a leftover the sweep has not removed yet, is not an error). On failure, what this
// call added is removed again.
[[nodiscard]] Result<void> add_tproxy_routing(Family family);

// Removes the rule and the route for `family`. Absent ones are not an error.
[[nodiscard]] Result<void> remove_tproxy_routing(Family family);

}  // namespace sshuttle::helper

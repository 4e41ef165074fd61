// The helper's privilege, checked and narrowed at start (libcap): CAP_NET_ADMIN is required;
// CAP_NET_RAW is kept only when asked for (tproxy, iptables-legacy); every other capability is
// dropped from the effective, permitted, inheritable and bounding sets, so neither the helper
// nor a program it runs (iptables-restore) can use it.
#pragma once

#include <string>
#include <vector>

#include <sys/capability.h>

#include "common/error.hpp"

namespace sshuttle::helper {

struct CapPlan {
    std::vector<cap_value_t> keep;  // what stays in every set
};

// The capabilities to keep: NET_ADMIN, plus NET_RAW when `net_raw`.
CapPlan capability_plan(bool net_raw);

// Checks that `have` (the permitted set, as cap values) contains every capability the plan
// keeps. Pure, for tests.
[[nodiscard]] Result<void> check_capabilities(const std::vector<cap_value_t>& have,
                                              const CapPlan& plan);

// Reads this process's permitted set, checks it, then drops everything outside the plan.
[[nodiscard]] Result<void> restrict_capabilities(const CapPlan& plan);

// The effective set as text ("cap_net_admin=ep"), for logs and tests.
std::string current_capabilities();

}  // namespace sshuttle::helper

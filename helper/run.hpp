// sshuttle-helper's process wiring: capabilities, the connection (system bus or --stdio peer),
// the Service, signals, idle exit, and cleanup on the way out.
#pragma once

#include <cstdint>

namespace sshuttle::helper {

struct HelperOptions {
    bool stdio = false;    // serve one peer on fds 0/1 instead of the system bus
    bool net_raw = false;  // keep CAP_NET_RAW (legacy iptables); tproxy needs only NET_ADMIN
    std::uint64_t idle_usec = 30'000'000;  // bus mode: exit after this long owning nothing; 0 never
    int verbosity = 0;
};

// Runs the helper until it is told to stop, the peer closes, or it is idle. Returns the exit
// status for main().
int run_helper(const HelperOptions& options);

}  // namespace sshuttle::helper

// sshuttled's command line (pure parsing into a TunnelConfig).
//
// Option names and meanings follow sshuttle 1.x where they exist there. Long options may be
// abbreviated to any unique prefix, as with sshuttle's argparse.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "daemon/mux.hpp"
#include "daemon/ssh_command.hpp"

namespace sshuttle::daemon {

struct ListenAddress {
    IpAddress ip;
    std::uint16_t port = 0;  // 0: search 12300 downwards
};

struct TunnelConfig {
    RemoteTarget remote;
    std::vector<std::string> ssh_words{"ssh"};
    RemoteLaunch launch;
    std::vector<ListenAddress> listen;  // one per family at most
    bool dns = false;                   // run the DNS listener
    std::string to_ns;                  // "ip@port" for the agent, empty: remote resolv.conf
    bool auto_nets = false;
    MuxOptions mux;
    int verbosity = 0;
};

struct ParsedArgs {
    TunnelConfig config;
    bool show_help = false;
    bool show_version = false;
};

// Errors are InvalidArgument with a message naming the option and the bad value.
[[nodiscard]] Result<ParsedArgs> parse_daemon_args(const std::vector<std::string>& args);
const char* daemon_usage();

}  // namespace sshuttle::daemon

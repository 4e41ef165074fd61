// sshuttled's command line: the shared option language (proto/tunnel_options.hpp) turned into
// the daemon's TunnelConfig.
//
// sshuttled reads the same options as the sshuttle CLI, with the same parser: the CLI starts it
// with the canonical argv of what the user typed, and a systemd unit may start it with an @file
// profile directly. SSHUTTLE_ARGS is the CLI's business and is not read here (the CLI has
// already put it in front of the arguments it passes on).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "daemon/mux.hpp"
#include "daemon/ssh_command.hpp"
#include "proto/tunnel_options.hpp"

namespace sshuttle::daemon {

struct ListenAddress {
    IpAddress ip;
    std::uint16_t port = 0;  // 0: search 12300 downwards
};

// What the firewall should capture, as the user said it; Tunnel turns it into a helper request
// (firewall_plan.hpp) once the listener ports are known.
struct FirewallConfig {
    bool enabled = true;  // false with --no-firewall: someone else redirects to the listeners
    proto::Method method = proto::Method::Auto;
    std::vector<SubnetPort> includes;  // subnets and -s files
    std::vector<SubnetPort> excludes;  // -x and -X files
    std::vector<IpAddress> ns_hosts;   // --ns-hosts
    bool dns = false;                  // --dns: also capture resolv.conf's nameservers
    std::string user;                  // --user: capture only this user's traffic
    std::string group;                 // --group
};

struct TunnelConfig {
    std::string name;  // the tunnel's name (control socket, helper rules); set by main
    RemoteTarget remote;
    std::vector<std::string> ssh_words{"ssh"};
    RemoteLaunch launch;
    std::vector<ListenAddress> listen;  // one per family at most
    bool dns = false;                   // run the DNS listener (--dns or --ns-hosts)
    std::string to_ns;                  // "ip@port" for the agent, empty: remote resolv.conf
    bool auto_nets = false;
    bool auto_hosts = false;              // -H: names the server reports go to /etc/hosts
    std::vector<std::string> seed_hosts;  // --seed-hosts: names to resolve on the server
    MuxOptions mux;
    FirewallConfig firewall;
    proto::TcpPath tcp_path = proto::TcpPath::Auto;  // --tcp-path
    int ssh_connections = 1;                         // --ssh-connections: ssh masters
    // Where the masters' control sockets go (a private directory is made inside): main sets
    // them from $RUNTIME_DIRECTORY and $XDG_RUNTIME_DIR; /tmp when both are empty.
    std::string runtime_directory;
    std::string xdg_runtime_dir;
    int verbosity = 0;
};

struct ParsedArgs {
    TunnelConfig config;
    proto::TunnelOptions options;  // as parsed, for status (subnets, method, name)
    bool show_help = false;
    bool show_version = false;
};

// Usage errors (exit 2): InvalidArgument naming the option, the bad value and where it came
// from (an @file's FILE:LINE), and options not backed by a feature yet. Start errors (exit 99):
// -r missing or malformed. `exit_code` tells which.
struct ArgsError {
    Error error;
    int exit_code = proto::kExitUsage;
};

// Parses argv (without argv[0]); host names resolve with `resolver`, @files and -s/-X files are
// read with `reader`. Help and version requests return before any check.
[[nodiscard]] std::variant<ParsedArgs, ArgsError> parse_daemon_args(
    const std::vector<std::string>& args, const Resolver& resolver,
    const proto::FileReader& reader);

// The daemon's settings from parsed options (no I/O): -r parsed into its parts, the default
// listeners (127.0.0.1 and ::1, port search) when --listen is not given.
[[nodiscard]] Result<TunnelConfig> tunnel_config(const proto::TunnelOptions& options);

// The tunnel name when --name is not given: the remote host with characters a name may not
// hold replaced by '-' (so "corp.example.com" stays, "[fd00::1]" becomes "fd00--1").
std::string default_tunnel_name(const RemoteTarget& remote);

const char* daemon_usage();

}  // namespace sshuttle::daemon

// The tunnel's option language: sshuttle 1.1's command line as typed values.
//
// One parser for both programs. The sshuttle CLI parses what the user typed (command line,
// SSHUTTLE_ARGS, @files, profiles) and starts sshuttled with the canonical argv to_args() writes;
// sshuttled parses that argv (or an @file profile under systemd) with the same code. So an
// option means the same thing everywhere and is checked once, at the door.
//
// The machinery follows Python argparse as sshuttle configures it:
//  * long options may be abbreviated to any unique prefix (--no-lat); an ambiguous prefix is an
//    error naming the candidates; --opt=value and --opt value; short flags combine (-vNr host);
//  * @FILE is replaced by the file's lines, one argument per line: a line whose first character
//    is '#' is dropped, others are stripped of surrounding whitespace and of one pair of matching
//    quotes; an empty line is an empty argument (which then fails as a subnet); files nest;
//  * SSHUTTLE_ARGS is split like a shell would and put in front of the command line, so explicit
//    arguments win for single-valued options and lists accumulate.
// Where sshuttle intermixes positionals and options badly (argparse's nargs='*' group), we
// accept subnets anywhere.
//
// Parsing is pure apart from two seams: a Resolver for host names (subnets, --listen, --to-ns)
// and a FileReader for @files and -s/-X files.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "common/resolver.hpp"
#include "common/subnet.hpp"

namespace sshuttle::proto {

// sshuttle's exit codes (reference §1.1).
inline constexpr int kExitOk = 0;
inline constexpr int kExitInterrupted = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitAlreadyRunning = 5;
inline constexpr int kExitFatal = 99;

// Nesting of @files inside @files; a file that names itself fails here instead of looping.
inline constexpr int kMaxArgsFileDepth = 8;
// @files read in one expansion: a file naming itself twice per line would otherwise take
// exponential time within the depth limit.
inline constexpr std::size_t kMaxArgsFiles = 256;
// Arguments after expansion: far beyond any real profile, small enough to bound the work.
inline constexpr std::size_t kMaxArgs = 10'000;
// Characters in a tunnel name: a systemd instance name and a socket file name, both short.
inline constexpr std::size_t kMaxTunnelName = 64;

// One argument and where it came from: "" for the command line, "SSHUTTLE_ARGS", or "FILE:LINE"
// for a line of an @file. Errors name the origin.
struct Arg {
    std::string text;
    std::string origin;
};

// Reads a whole file (@files, -s/-X files). Errors name the path.
using FileReader = std::function<Result<std::string>(const std::string& path)>;
// The production reader: regular files up to kMaxSubnetFileBytes.
[[nodiscard]] Result<std::string> read_text_file(const std::string& path);

// Python's shlex.split (POSIX mode): whitespace separates words, '' literal, "" with \" \\ \$ \`
// escapes, backslash outside quotes escapes the next character. No expansion.
[[nodiscard]] Result<std::vector<std::string>> split_shell_words(std::string_view text);
// A word quoted for a POSIX shell so that split_shell_words gives it back.
std::string quote_shell_word(std::string_view word);

// The lines of an @file as arguments, with sshuttle's rules (see the top of this file). `path`
// only names the origin of each line.
std::vector<Arg> args_file_lines(std::string_view contents, const std::string& path);

// SSHUTTLE_ARGS (when given) in front of `args`, then every argument starting with '@' replaced
// by its file's arguments, recursively.
[[nodiscard]] Result<std::vector<Arg>> expand_args(const std::vector<std::string>& args,
                                                   const std::optional<std::string>& env_args,
                                                   const FileReader& reader);
// As expand_args for arguments that already carry origins (a profile's lines).
[[nodiscard]] Result<std::vector<Arg>> expand_arg_files(const std::vector<Arg>& args,
                                                        const FileReader& reader);

enum class Method { Auto, Nft, Nat, Tproxy, Pf, Ipfw };
const char* method_name(Method method) noexcept;

// --tcp-path: how captured TCP travels. auto: in ssh's own channels through a ControlMaster,
// the agent when the server forbids that; ssh: only ssh channels; agent: only the agent (the
// sshuttle 1.x data path).
enum class TcpPath { Auto, Ssh, Agent };
const char* tcp_path_name(TcpPath path) noexcept;
// --ssh-connections: at most this many ssh connections (masters) per tunnel.
inline constexpr int kMaxSshConnections = 16;

struct ListenItem {
    IpAddress ip;
    std::uint16_t port = 0;         // 0: search from 12300 down
    std::string to_string() const;  // "127.0.0.1:0", "[::1]:12300"
};

struct TunnelOptions {
    // sshuttle 1.1
    std::string remote;                // -r, as typed; sshuttled parses its parts
    std::vector<SubnetPort> subnets;   // positionals and -s files
    std::vector<SubnetPort> excludes;  // -x and -X files
    std::vector<ListenItem> listen;    // -l: at most one per family
    bool listen_given = false;
    bool auto_hosts = false;          // -H
    bool auto_nets = false;           // -N
    bool dns = false;                 // --dns
    std::vector<IpAddress> ns_hosts;  // --ns-hosts
    std::optional<ListenItem> to_ns;  // --to-ns (port 0: 53 on the server)
    Method method = Method::Auto;
    std::string python;                         // --python
    std::vector<std::string> ssh_cmd{"ssh"};    // -e, split
    std::vector<std::string> seed_hosts;        // --seed-hosts
    bool latency_control = true;                // --no-latency-control clears it
    std::uint32_t latency_buffer_size = 32768;  // bytes
    std::uint16_t wrap = 65535;                 // highest channel number
    bool disable_ipv6 = false;
    bool daemon = false;  // -D
    std::string pidfile = "sshuttle.pid";
    bool syslog = false;
    int verbose = 0;
    std::string user;            // --user
    std::string group;           // --group (1.1.2)
    std::string tmark = "0x01";  // -t, normalised: lower case with 0x
    bool sudoers_no_modify = false;
    std::string sudoers_user;
    bool no_sudo_pythonpath = false;
    // ours
    std::string server_cmd;      // --server-cmd: run this remotely instead of uploading the agent
    std::string name;            // --name: the tunnel's name (control socket, status)
    std::string control_socket;  // --control-socket: path instead of the default
    bool no_firewall = false;    // --no-firewall: install no rules; someone else redirects
    TcpPath tcp_path = TcpPath::Auto;  // --tcp-path
    int ssh_connections = 1;           // --ssh-connections: ssh masters carrying TCP
    // requests
    bool help = false;
    bool version = false;
};

// Parses expanded arguments (expand_args). Errors are InvalidArgument (exit kExitUsage) and name
// the option, the value and its origin.
[[nodiscard]] Result<TunnelOptions> parse_tunnel_options(const std::vector<Arg>& args,
                                                         const Resolver& resolver,
                                                         const FileReader& reader);
// For arguments without origins (tests, sshuttled's own argv after expansion).
[[nodiscard]] Result<TunnelOptions> parse_tunnel_options(const std::vector<std::string>& args,
                                                         const Resolver& resolver,
                                                         const FileReader& reader);

// sshuttle's usage error: no subnet, no -s file and no -N (exit kExitUsage). --no-firewall, ours,
// stands for "no subnets on purpose".
[[nodiscard]] Result<void> check_usage(const TunnelOptions& options);
// sshuttle's fatal start errors (exit kExitFatal): -r missing, empty or "-".
[[nodiscard]] Result<void> check_fatal(const TunnelOptions& options);
// Options that parse but are not backed by a feature yet give an error naming them; nothing is
// silently ignored. Shrinks as features land. Exit kExitUsage, not sshuttle's kExitFatal for a
// missing feature: like a usage error, retrying cannot fix it, and sshuttle@.service does not
// restart on status 2 (RestartPreventExitStatus=2).
[[nodiscard]] Result<void> check_supported(const TunnelOptions& options);

// Whether a tunnel name is usable: 1..kMaxTunnelName of [A-Za-z0-9_.@-], not starting with '.'
// or '-' (a file name and a systemd instance name).
bool is_tunnel_name(std::string_view name) noexcept;

// The canonical argv for the options: parse_tunnel_options(to_args(o)) gives o back. Host names
// are already resolved, files already read, so the result needs no resolver and no file.
std::vector<std::string> to_args(const TunnelOptions& options);

// The --help text for the classic invocation.
const char* tunnel_options_help();

}  // namespace sshuttle::proto

// Building the ssh command line that starts the remote side (pure functions, no I/O).
//
// The daemon runs `<ssh-cmd words> [-p PORT] [user@]host -- <remote command>`. The remote command
// either starts python and uploads our agent (the default), or runs the user's --server-cmd.
// The upload works like sshuttle's: a short "stage 1" python program given with -c reads exactly
// N bytes from stdin with os.read (never a buffered reader, which could swallow bytes sent after
// them) and executes them. The N bytes are the agent source plus a final call of its main().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace sshuttle::daemon {

// Splits a command line like POSIX sh / Python's shlex.split: whitespace separates words,
// single quotes are literal, double quotes allow \" \\ \$ \` escapes, backslash escapes outside
// quotes. No expansion of any kind. Unterminated quotes are an InvalidArgument error.
[[nodiscard]] Result<std::vector<std::string>> shell_split(std::string_view text);

// Quotes one word for a POSIX shell: plain words stay as they are, others get single quotes.
std::string shell_quote(std::string_view word);

// -r/--remote: [USER@]HOST[:PORT], HOST may be "[v6]" or a bare IPv6 address (then no port).
struct RemoteTarget {
    std::string user;  // empty: ssh's default (~/.ssh/config or the local user)
    std::string host;
    std::optional<std::uint16_t> port;
    std::string to_string() const;  // "user@host:port" as given back to humans
};
[[nodiscard]] Result<RemoteTarget> parse_remote(std::string_view text);

// What runs on the remote host.
struct RemoteLaunch {
    std::string python;      // --python; empty: python3, falling back to python
    std::string server_cmd;  // --server-cmd; when set, no agent is uploaded
};

// The stage-1 program for `python -c`: reads `payload_size` bytes from fd 0, executes them.
std::string agent_stage1(std::size_t payload_size);

// The command string passed to ssh after "--" (run by the remote login shell).
std::string remote_command(const RemoteLaunch& launch, std::size_t payload_size);

// The full argv: ssh words from -e (already split), -p when a port was given, the target, "--",
// and the remote command.
std::vector<std::string> ssh_argv(const std::vector<std::string>& ssh_words,
                                  const RemoteTarget& target, const std::string& command);

// The options that make ssh a ControlMaster listening on control_path ('%' doubled for ssh's
// %-tokens). ControlPersist=no so that a ControlPersist in ~/.ssh/config cannot fork the master
// away from us. They go after the user's -e words: ssh keeps the first value of an option, so
// a user who sets ControlMaster or ControlPath in -e wins (and TCP then takes the agent path).
std::vector<std::string> control_master_options(const std::string& control_path);

// An extra ssh connection of a tunnel (--ssh-connections): `<ssh words> <master options> -N
// [-p PORT] [user@]host`, a ControlMaster without a remote command.
std::vector<std::string> ssh_master_argv(const std::vector<std::string>& ssh_words,
                                         const RemoteTarget& target,
                                         const std::string& control_path);

// `<ssh words> -G [-p PORT] [user@]host`: ssh prints its resolved configuration and exits
// without connecting. The daemon reads the real host name from it, so that an ssh_config alias
// (Host corp / HostName 192.0.2.7) still gets the server's address excluded from capture.
std::vector<std::string> ssh_config_argv(const std::vector<std::string>& ssh_words,
                                         const RemoteTarget& target);
// The value of the "hostname" line of `ssh -G` output; empty when there is none.
std::string ssh_config_hostname(std::string_view output);

// The bytes written to ssh's stdin to start the agent: its source, then a call of
// main(json.loads(<options JSON>)). Empty when --server-cmd is used.
std::string agent_payload(std::string_view agent_source, std::string_view options_json);

// A one-line explanation of a remote exit status, following sshuttle's codes: 97 no python,
// 98 agent returned, 99 agent failed, 127 not executable, 255 ssh failed.
std::string explain_remote_exit(int status);

}  // namespace sshuttle::daemon

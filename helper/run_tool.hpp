// Running a fixed external tool (iptables-restore, iptables-save) without a shell: a fixed argv,
// a clean environment, text on stdin, stdout and stderr collected.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace sshuttle::helper {

struct ToolOutput {
    int exit_code = -1;   // the exit status, or 128 + signal number when it was killed
    std::string out;      // stdout (capped at kMaxToolOutputBytes)
    std::string err;      // stderr (capped likewise)
};

inline constexpr std::size_t kMaxToolOutputBytes = 16 * 1024 * 1024;

// Spawns `path` with `argv` (argv[0] included) and the environment PATH=/usr/sbin:/usr/bin:
// /sbin:/bin LC_ALL=C, writes `input` to its stdin and closes it, and waits for it to exit.
// A child still running after `timeout` is killed (SIGKILL, by its pid) and reported as a
// Timeout error. Writing never raises SIGPIPE (stdin is a socket written with MSG_NOSIGNAL).
[[nodiscard]] Result<ToolOutput> run_tool(const std::string& path,
                                          const std::vector<std::string>& argv,
                                          std::string_view input,
                                          std::chrono::milliseconds timeout =
                                              std::chrono::seconds(30));

// The first of /usr/sbin/NAME, /sbin/NAME, /usr/bin/NAME, /bin/NAME that is executable, or a
// NotFound error naming the places looked at.
[[nodiscard]] Result<std::string> find_tool(std::string_view name);

}  // namespace sshuttle::helper

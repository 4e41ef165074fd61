// Running a fixed external tool (iptables-restore, iptables-save) without a shell: a fixed argv,
// a clean environment, text on stdin, stdout and stderr collected.
#pragma once

#include <chrono>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "common/process.hpp"

namespace sshuttle::helper {

using ToolOutput = ProgramOutput;
inline constexpr std::size_t kMaxToolOutputBytes = kMaxProgramOutputBytes;

// Spawns `path` with `argv` (argv[0] included) and the environment PATH=/usr/sbin:/usr/bin:
// /sbin:/bin LC_ALL=C, writes `input` to its stdin and closes it, and waits for it to exit.
// common/process.hpp's run_program() with that fixed environment: a timeout kills the child and
// is a Timeout error; writing never raises SIGPIPE.
[[nodiscard]] Result<ToolOutput> run_tool(const std::string& path,
                                          const std::vector<std::string>& argv,
                                          std::string_view input,
                                          std::chrono::milliseconds timeout =
                                              std::chrono::seconds(30));

// The first of /usr/sbin/NAME, /sbin/NAME, /usr/bin/NAME, /bin/NAME that is executable, or a
// NotFound error naming the places looked at.
[[nodiscard]] Result<std::string> find_tool(std::string_view name);

}  // namespace sshuttle::helper

// Child processes and facts about our own: one place for what the daemon, the helper and the
// CLI each needed.
//
// Every program of ours blocks the signals sd-event handles and ignores SIGPIPE; a child must
// start with an empty mask and default dispositions, or it would, say, never die of SIGTERM.
// spawn_process() does that for every child; run_program() adds the collection of its output
// with a deadline.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"

namespace sshuttle {

// The child's descriptor `child_fd` becomes a copy of our `parent_fd`; a negative parent_fd
// means /dev/null.
struct Redirect {
    int child_fd;
    int parent_fd;
};

struct SpawnOptions {
    bool search_path = false;           // argv[0] looked up in PATH (posix_spawnp)
    const std::vector<std::string>* environment = nullptr;  // null: ours
};

// Starts `path` (or argv[0] with search_path) with argv, the redirects, an empty signal mask and
// default dispositions. The caller reaps the child. Errors name the program.
[[nodiscard]] Result<pid_t> spawn_process(const std::string& path,
                                          const std::vector<std::string>& argv,
                                          const std::vector<Redirect>& redirects,
                                          const SpawnOptions& options = {});

struct ProgramOutput {
    int exit_code = -1;  // the exit status, or 128 + signal number when it was killed
    std::string out;     // stdout, capped at kMaxProgramOutputBytes
    std::string err;     // stderr, capped likewise
};

inline constexpr std::size_t kMaxProgramOutputBytes = 16 * 1024 * 1024;

// Runs a program to its end: writes `input` to its stdin (a socket written with MSG_NOSIGNAL, so
// a child that stops reading cannot SIGPIPE us) and closes it, collects stdout and stderr, and
// waits. A child still running after `timeout` is killed (SIGKILL, by its pid) and reported as
// a Timeout error. Blocking: for start-up and for the helper's one-shot tools.
[[nodiscard]] Result<ProgramOutput> run_program(const std::string& path,
                                                const std::vector<std::string>& argv,
                                                std::string_view input,
                                                std::chrono::milliseconds timeout,
                                                const SpawnOptions& options = {});

// A regular file we may execute.
bool is_executable_file(const std::string& path);
// The first of `candidates` that is_executable_file() accepts, or a NotFound error saying what
// `what` is and listing the candidates.
[[nodiscard]] Result<std::string> first_executable(const std::vector<std::string>& candidates,
                                                   std::string_view what);

// readlink(/proc/self/exe); "" when /proc is not there.
std::string self_exe_path();

// This process's network namespace as readlink(/proc/self/ns/net) shows it ("net:[4026531840]"),
// "" when /proc is not there. The helper reports its own in Capabilities; the daemon compares.
std::string network_namespace_id();

}  // namespace sshuttle

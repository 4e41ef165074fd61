// Starting other programs: sshuttled in the foreground or detached, and systemctl.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

#include "common/error.hpp"

namespace sshuttle::client {

// sshuttled next to this executable (an install where bindir == sbindir), in the build tree
// (build/client/sshuttle -> build/daemon/sshuttled), or in the configured sbindir.
[[nodiscard]] Result<std::string> find_sshuttled();

// Runs argv in the foreground and returns the exit status the CLI should exit with: the child's
// own, 128+N when it died of signal N, and sshuttle's 1 when the user interrupted it (SIGINT).
// SIGINT, SIGTERM and SIGHUP that reach us are passed on to the child.
int run_foreground(const std::vector<std::string>& argv);

// Starts argv in its own session with stdin from /dev/null and stdout+stderr appended to
// log_path; returns its pid. The caller may waitpid() it while it waits for readiness.
[[nodiscard]] Result<pid_t> start_detached(const std::vector<std::string>& argv,
                                           const std::string& log_path);

// Runs a command and returns its exit status (127 when it cannot run). With `quiet` its stdout
// and stderr go to /dev/null, else it shares ours.
int run_command(const std::vector<std::string>& argv, bool quiet = false);

// True when systemd is the init system (the directory it creates at boot exists).
bool systemd_running();

}  // namespace sshuttle::client

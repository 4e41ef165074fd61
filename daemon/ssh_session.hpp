// SshSession: the ssh child process. Spawns it with one end of a socketpair as its stdin and
// stdout (as sshuttle does) and reports its exit through sd-event. The stream itself belongs to
// the Mux.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"

namespace sshuttle::daemon {

class SshSession {
public:
    // exit status (0..255) or, when killed, 128 + signal number.
    using ExitCallback = std::function<void(int status, bool signaled)>;

    SshSession(sd_event* event, ExitCallback on_exit);
    ~SshSession();
    SshSession(const SshSession&) = delete;
    SshSession& operator=(const SshSession&) = delete;

    // Spawns argv (argv[0] looked up in PATH). Returns our end of the stream. SIGCHLD must be
    // blocked in this process (sd-event's child watching needs it).
    [[nodiscard]] Result<UniqueFd> spawn(const std::vector<std::string>& argv);

    pid_t pid() const noexcept { return pid_; }
    bool running() const noexcept { return pid_ > 0 && !exited_; }
    // Sends a signal if the child still runs.
    void signal(int sig) const;

private:
    static int on_child(sd_event_source* s, const siginfo_t* si, void* userdata) noexcept;

    sd_event* event_;
    ExitCallback on_exit_;
    EventSourcePtr child_source_;
    pid_t pid_ = -1;
    bool exited_ = false;
};

}  // namespace sshuttle::daemon

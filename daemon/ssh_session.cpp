#include "daemon/ssh_session.hpp"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include "common/process.hpp"

namespace sshuttle::daemon {

SshSession::SshSession(sd_event* event, ExitCallback on_exit)
    : event_(event), on_exit_(std::move(on_exit)) {}

SshSession::~SshSession() {
    if (running()) {
        // The child outlives us only as long as it takes to see its stdin close.
        ::kill(pid_, SIGTERM);
    }
}

Result<UniqueFd> SshSession::spawn(const std::vector<std::string>& argv) {
    if (argv.empty()) return Error(Errc::InvalidArgument, "empty ssh command");
    auto pair = make_socketpair(false);
    if (!pair) return pair.error();

    SpawnOptions options;
    options.search_path = true;
    auto pid = spawn_process(argv[0], argv,
                             {{STDIN_FILENO, pair->second.get()}, {STDOUT_FILENO, pair->second.get()}},
                             options);
    if (!pid) return std::move(pid).error();
    pid_ = *pid;

    sd_event_source* source = nullptr;
    int r = sd_event_add_child(event_, &source, pid_, WEXITED, &SshSession::on_child, this);
    if (r < 0) return Error::from_errno("sd_event_add_child", -r);
    child_source_.reset(source);
    if (auto nb = set_nonblocking(pair->first.get(), true); !nb) return nb.error();
    return std::move(pair->first);
}

int SshSession::on_child(sd_event_source*, const siginfo_t* si, void* userdata) noexcept {
    auto* self = static_cast<SshSession*>(userdata);
    self->exited_ = true;
    bool signaled = si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED;
    int status = signaled ? 128 + si->si_status : si->si_status;
    if (self->on_exit_) self->on_exit_(status, signaled);
    return 0;
}

void SshSession::signal(int sig) const {
    if (running()) ::kill(pid_, sig);
}

}  // namespace sshuttle::daemon

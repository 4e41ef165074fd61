#include "daemon/ssh_session.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <spdlog/spdlog.h>

extern char** environ;

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

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, pair->second.get(), STDIN_FILENO);
    posix_spawn_file_actions_adddup2(&actions, pair->second.get(), STDOUT_FILENO);

    // The daemon blocks signals for sd-event; ssh must start with a clean mask and defaults.
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int sig : {SIGINT, SIGTERM, SIGCHLD, SIGPIPE, SIGHUP}) sigaddset(&defaults, sig);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_t pid = -1;
    int err = ::posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (err != 0) return Error::from_errno("cannot run '" + argv[0] + "'", err);
    pid_ = pid;

    sd_event_source* source = nullptr;
    int r = sd_event_add_child(event_, &source, pid, WEXITED, &SshSession::on_child, this);
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

#include "client/spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <csignal>

#include "common/process.hpp"
#include "common/unique_fd.hpp"

extern char** environ;

namespace sshuttle::client {

namespace {

volatile sig_atomic_t g_child = 0;
volatile sig_atomic_t g_interrupted = 0;

void forward(int sig) {
    if (sig == SIGINT) g_interrupted = 1;
    if (g_child > 0) ::kill(static_cast<pid_t>(g_child), sig);
}

std::vector<char*> c_argv(const std::vector<std::string>& argv) {
    std::vector<char*> out;
    for (const std::string& a : argv) out.push_back(const_cast<char*>(a.c_str()));
    out.push_back(nullptr);
    return out;
}

// In a forked child before exec: default dispositions and an empty mask, whatever we had.
void reset_signals() {
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGCHLD}) ::signal(sig, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
}

}  // namespace

Result<std::string> find_sshuttled() {
    const std::string exe = self_exe_path();
    std::vector<std::string> candidates;
    if (!exe.empty()) {
        std::string dir = exe.substr(0, exe.rfind('/'));
        candidates.push_back(dir + "/sshuttled");
        candidates.push_back(dir + "/../daemon/sshuttled");
    }
    candidates.push_back(std::string(SSHUTTLE_SBINDIR) + "/sshuttled");
    return first_executable(candidates, "sshuttled");
}

int run_foreground(const std::vector<std::string>& argv) {
    struct sigaction sa {};
    sa.sa_handler = forward;
    sigemptyset(&sa.sa_mask);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) ::sigaction(sig, &sa, nullptr);
    auto args = c_argv(argv);
    pid_t pid = ::fork();
    if (pid < 0) return ::perror("sshuttle: fork"), 99;
    if (pid == 0) {
        reset_signals();
        ::execv(args[0], args.data());
        ::perror(args[0]);
        ::_exit(127);
    }
    g_child = pid;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return ::perror("sshuttle: waitpid"), 99;
    }
    g_child = 0;
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    int code = WEXITSTATUS(status);
    // sshuttle exits 1 after Ctrl-C (Python's KeyboardInterrupt); the daemon's clean stop is 0.
    if (g_interrupted && code == 0) return 1;
    return code;
}

Result<pid_t> start_detached(const std::vector<std::string>& argv, const std::string& log_path) {
    UniqueFd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    UniqueFd log(
        ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600));
    if (!null) return Error::from_errno("open /dev/null");
    if (!log) return Error::from_errno("open " + log_path);
    auto args = c_argv(argv);
    pid_t pid = ::fork();
    if (pid < 0) return Error::from_errno("fork");
    if (pid == 0) {
        reset_signals();
        ::setsid();
        ::dup2(null.get(), 0);
        ::dup2(log.get(), 1);
        ::dup2(log.get(), 2);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    return pid;
}

int run_command(const std::vector<std::string>& argv, bool quiet) {
    auto args = c_argv(argv);
    pid_t pid = 0;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (quiet) {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
        posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
    }
    int rc = ::posix_spawnp(&pid, args[0], &actions, nullptr, args.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) return 127;
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0)
        if (errno != EINTR) return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool systemd_running() {
    struct stat st {};
    return ::lstat("/run/systemd/system", &st) == 0 && S_ISDIR(st.st_mode);
}

}  // namespace sshuttle::client

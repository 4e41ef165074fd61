#include "common/process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include "common/unique_fd.hpp"

extern char** environ;

namespace sshuttle {
namespace {

struct SpawnActions {
    posix_spawn_file_actions_t actions;
    SpawnActions() { posix_spawn_file_actions_init(&actions); }
    ~SpawnActions() { posix_spawn_file_actions_destroy(&actions); }
    SpawnActions(const SpawnActions&) = delete;
    SpawnActions& operator=(const SpawnActions&) = delete;
};

struct SpawnAttr {
    posix_spawnattr_t attr;
    SpawnAttr() { posix_spawnattr_init(&attr); }
    ~SpawnAttr() { posix_spawnattr_destroy(&attr); }
    SpawnAttr(const SpawnAttr&) = delete;
    SpawnAttr& operator=(const SpawnAttr&) = delete;
};

std::vector<char*> c_strings(const std::vector<std::string>& words) {
    std::vector<char*> out;
    out.reserve(words.size() + 1);
    for (const auto& w : words) out.push_back(const_cast<char*>(w.c_str()));
    out.push_back(nullptr);
    return out;
}

Result<FdPair> make_pipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) return Error::from_errno("pipe2");
    return FdPair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

int wait_exit(pid_t pid) {
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return -1;
    }
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

}  // namespace

Result<pid_t> spawn_process(const std::string& path, const std::vector<std::string>& argv,
                            const std::vector<Redirect>& redirects, const SpawnOptions& options) {
    if (argv.empty()) return Error(Errc::Internal, "spawn_process: empty argv");
    SpawnActions actions;
    for (const Redirect& r : redirects) {
        if (r.parent_fd < 0)
            posix_spawn_file_actions_addopen(&actions.actions, r.child_fd, "/dev/null", O_RDWR, 0);
        else
            posix_spawn_file_actions_adddup2(&actions.actions, r.parent_fd, r.child_fd);
    }
    SpawnAttr attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr.attr, &none);
    posix_spawnattr_setsigdefault(&attr.attr, &all);
    posix_spawnattr_setflags(&attr.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    auto args = c_strings(argv);
    std::vector<char*> env;
    char** envp = environ;
    if (options.environment) {
        env = c_strings(*options.environment);
        envp = env.data();
    }
    pid_t pid = -1;
    int err = options.search_path
                  ? posix_spawnp(&pid, path.c_str(), &actions.actions, &attr.attr, args.data(), envp)
                  : posix_spawn(&pid, path.c_str(), &actions.actions, &attr.attr, args.data(), envp);
    if (err != 0) return Error::from_errno("cannot run '" + path + "'", err);
    return pid;
}

Result<ProgramOutput> run_program(const std::string& path, const std::vector<std::string>& argv,
                                  std::string_view input, std::chrono::milliseconds timeout,
                                  const SpawnOptions& options) {
    auto in = make_socketpair(false);
    if (!in) return in.error();
    auto out = make_pipe();
    if (!out) return out.error();
    auto err = make_pipe();
    if (!err) return err.error();
    // The child reads stdin from its end; we never read from it, so shut our reading side.
    shutdown(in->first.get(), SHUT_RD);

    auto pid = spawn_process(path, argv,
                             {{0, in->second.get()}, {1, out->second.get()}, {2, err->second.get()}},
                             options);
    if (!pid) return std::move(pid).error();
    in->second.reset();
    out->second.reset();
    err->second.reset();

    ProgramOutput result;
    UniqueFd to_child = std::move(in->first);
    UniqueFd from_out = std::move(out->first);
    UniqueFd from_err = std::move(err->first);
    if (input.empty()) to_child.reset();
    else if (auto nb = set_nonblocking(to_child.get(), true); !nb) return nb.error();
    std::size_t written = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    bool timed_out = false;
    std::array<char, 65536> buf;
    while (from_out || from_err || to_child) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) {
            timed_out = true;
            break;
        }
        std::array<pollfd, 3> fds = {pollfd{from_out.get(), POLLIN, 0},
                                     pollfd{from_err.get(), POLLIN, 0},
                                     pollfd{to_child.get(), POLLOUT, 0}};
        int n = poll(fds.data(), fds.size(), static_cast<int>(std::min<long long>(left.count(), 1000)));
        if (n < 0 && errno != EINTR) {
            kill(*pid, SIGKILL);
            wait_exit(*pid);
            return Error::from_errno("poll");
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            UniqueFd& fd = i == 0 ? from_out : from_err;
            std::string& sink = i == 0 ? result.out : result.err;
            ssize_t got = read(fd.get(), buf.data(), buf.size());
            if (got > 0) {
                std::size_t room =
                    kMaxProgramOutputBytes - std::min(kMaxProgramOutputBytes, sink.size());
                sink.append(buf.data(), std::min(room, static_cast<std::size_t>(got)));
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                fd.reset();
            }
        }
        if (to_child && fds[2].revents != 0) {
            ssize_t sent = send(to_child.get(), input.data() + written, input.size() - written,
                                MSG_NOSIGNAL);
            if (sent > 0) written += static_cast<std::size_t>(sent);
            // EPIPE: the program exited without reading everything; its exit status says why.
            if ((sent < 0 && errno != EINTR && errno != EAGAIN) || written == input.size())
                to_child.reset();
        }
    }
    if (timed_out) {
        kill(*pid, SIGKILL);
        wait_exit(*pid);
        return Error(Errc::Timeout, path + " did not finish in " +
                                        std::to_string(timeout.count()) + " ms; killed");
    }
    result.exit_code = wait_exit(*pid);
    return result;
}

bool is_executable_file(const std::string& path) {
    struct stat st{};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

Result<std::string> first_executable(const std::vector<std::string>& candidates,
                                     std::string_view what) {
    for (const auto& c : candidates)
        if (is_executable_file(c)) return c;
    std::string tried;
    for (const auto& c : candidates) tried += (tried.empty() ? "" : ", ") + c;
    return Error(Errc::NotFound, std::string(what) + " not found (tried " + tried + ")");
}

std::string self_exe_path() {
    char buf[4096];
    ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
    return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
}

std::string network_namespace_id() {
    struct stat st{};
    if (::stat("/proc/self/ns/net", &st) != 0) return "";
    return "net:[" + std::to_string(st.st_ino) + "]";
}

}  // namespace sshuttle

#include "helper/run_tool.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>

#include "common/unique_fd.hpp"

namespace sshuttle::helper {
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

Result<std::string> find_tool(std::string_view name) {
    for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
        std::string path = std::string(dir) + std::string(name);
        if (access(path.c_str(), X_OK) == 0) return path;
    }
    return Error(Errc::NotFound,
                 std::string(name) + " not found in /usr/sbin, /sbin, /usr/bin or /bin");
}

Result<ToolOutput> run_tool(const std::string& path, const std::vector<std::string>& argv,
                            std::string_view input, std::chrono::milliseconds timeout) {
    if (argv.empty()) return Error(Errc::Internal, "run_tool: empty argv");
    auto in = make_socketpair(false);
    if (!in) return in.error();
    auto out = make_pipe();
    if (!out) return out.error();
    auto err = make_pipe();
    if (!err) return err.error();
    // The child reads stdin from its end; we never read from it, so shut our reading side.
    shutdown(in->first.get(), SHUT_RD);

    SpawnActions actions;
    posix_spawn_file_actions_adddup2(&actions.actions, in->second.get(), 0);
    posix_spawn_file_actions_adddup2(&actions.actions, out->second.get(), 1);
    posix_spawn_file_actions_adddup2(&actions.actions, err->second.get(), 2);
    SpawnAttr attr;
    sigset_t empty, all;
    sigemptyset(&empty);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr.attr, &empty);
    posix_spawnattr_setsigdefault(&attr.attr, &all);
    posix_spawnattr_setflags(&attr.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    std::array<char*, 3> env = {const_cast<char*>("PATH=/usr/sbin:/usr/bin:/sbin:/bin"),
                                const_cast<char*>("LC_ALL=C"), nullptr};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, path.c_str(), &actions.actions, &attr.attr, args.data(), env.data());
    if (rc != 0) return Error::from_errno("spawning " + path, rc);
    in->second.reset();
    out->second.reset();
    err->second.reset();

    ToolOutput result;
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
            kill(pid, SIGKILL);
            wait_exit(pid);
            return Error::from_errno("poll");
        }
        for (int i = 0; i < 2; ++i) {
            if (fds[i].fd < 0 || fds[i].revents == 0) continue;
            UniqueFd& fd = i == 0 ? from_out : from_err;
            std::string& sink = i == 0 ? result.out : result.err;
            ssize_t got = read(fd.get(), buf.data(), buf.size());
            if (got > 0) {
                std::size_t room = kMaxToolOutputBytes - std::min(kMaxToolOutputBytes, sink.size());
                sink.append(buf.data(), std::min(room, static_cast<std::size_t>(got)));
            } else if (got == 0 || (errno != EINTR && errno != EAGAIN)) {
                fd.reset();
            }
        }
        if (to_child && fds[2].revents != 0) {
            ssize_t sent = send(to_child.get(), input.data() + written, input.size() - written,
                                MSG_NOSIGNAL);
            if (sent > 0) written += static_cast<std::size_t>(sent);
            // EPIPE: the tool exited without reading everything; its exit status says why.
            if ((sent < 0 && errno != EINTR && errno != EAGAIN) || written == input.size())
                to_child.reset();
        }
    }
    if (timed_out) {
        kill(pid, SIGKILL);
        wait_exit(pid);
        return Error(Errc::Timeout, path + " did not finish in " +
                                        std::to_string(timeout.count()) + " ms; killed");
    }
    result.exit_code = wait_exit(pid);
    return result;
}

}  // namespace sshuttle::helper

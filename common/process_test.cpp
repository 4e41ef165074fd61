#include "common/process.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

using namespace sshuttle;

TEST_CASE("run_program searches PATH and passes our environment when asked") {
    ::setenv("SSHUTTLE_PROCESS_TEST", "from-parent", 1);
    SpawnOptions options;
    options.search_path = true;
    auto out = run_program("sh", {"sh", "-c", "echo \"$SSHUTTLE_PROCESS_TEST\""}, "",
                           std::chrono::seconds(10), options);
    REQUIRE(out);
    CHECK(out->exit_code == 0);
    CHECK(out->out == "from-parent\n");
    // Without search_path a bare name is a path relative to the current directory.
    CHECK_FALSE(run_program("no-such-program-sshuttle", {"x"}, "", std::chrono::seconds(10)));
}

TEST_CASE("spawn_process redirects, maps /dev/null and resets the signal mask") {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigprocmask(SIG_BLOCK, &block, &old);
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    SpawnOptions options;
    options.search_path = true;
    // The child reports its blocked-signal mask; /dev/null on stdin reads as empty.
    auto pid = spawn_process("sh", {"sh", "-c", "grep SigBlk /proc/self/status; cat"},
                             {{0, -1}, {1, fds[1]}}, options);
    ::close(fds[1]);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    REQUIRE(pid);
    std::string text;
    char buf[256];
    for (ssize_t n; (n = ::read(fds[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    REQUIRE(::waitpid(*pid, &status, 0) == *pid);
    CHECK(WIFEXITED(status));
    CHECK(text.find("SigBlk:\t0000000000000000") != std::string::npos);
    auto missing = spawn_process("/nonexistent/program", {"program"}, {});
    REQUIRE_FALSE(missing);
    CHECK(missing.error().message.find("/nonexistent/program") != std::string::npos);
}

TEST_CASE("first_executable takes the first executable regular file, else names them all") {
    char tmpl[] = "/tmp/sshuttle-proctest-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    const std::string dir = tmpl;
    const std::string a = dir + "/a", b = dir + "/b";
    auto none = first_executable({a, b}, "the thing");
    REQUIRE_FALSE(none);
    CHECK(none.error().code == Errc::NotFound);
    CHECK(none.error().message == "the thing not found (tried " + a + ", " + b + ")");
    std::ofstream(a) << "#!/bin/sh\n";
    std::ofstream(b) << "#!/bin/sh\n";
    chmod(a.c_str(), 0644);  // not executable: skipped
    chmod(b.c_str(), 0755);
    CHECK(*first_executable({a, b}, "x") == b);
    CHECK_FALSE(is_executable_file(dir));  // a directory is not a program
    unlink(a.c_str());
    unlink(b.c_str());
    rmdir(dir.c_str());
}

TEST_CASE("our own executable and network namespace, as /proc shows them") {
    const std::string exe = self_exe_path();
    CHECK(exe.find("common_test") != std::string::npos);
    const std::string ns = network_namespace_id();
    REQUIRE_FALSE(ns.empty());
    char link[64] = {};
    REQUIRE(readlink("/proc/self/ns/net", link, sizeof link - 1) > 0);
    CHECK(ns == link);
}

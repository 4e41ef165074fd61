#include "helper/run_tool.hpp"

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::helper;

TEST_CASE("run_tool feeds stdin and collects stdout, stderr and the exit code") {
    auto sh = find_tool("sh");
    REQUIRE(sh.has_value());
    auto out = run_tool(*sh, {"sh", "-c", "cat; echo oops >&2; exit 3"}, "line one\nline two\n");
    REQUIRE(out.has_value());
    CHECK(out->out == "line one\nline two\n");
    CHECK(out->err == "oops\n");
    CHECK(out->exit_code == 3);
}

TEST_CASE("run_tool moves more than a pipe buffer each way without deadlock") {
    auto cat = find_tool("cat");
    REQUIRE(cat.has_value());
    std::string big(4 * 1024 * 1024, 'x');
    for (std::size_t i = 0; i < big.size(); i += 1000) big[i] = '\n';
    auto out = run_tool(*cat, {"cat"}, big);
    REQUIRE(out.has_value());
    CHECK(out->exit_code == 0);
    CHECK(out->out == big);
}

TEST_CASE("a tool that stops reading early does not kill us with SIGPIPE") {
    auto sh = find_tool("sh");
    REQUIRE(sh.has_value());
    auto out = run_tool(*sh, {"sh", "-c", "exit 1"}, std::string(1024 * 1024, 'y'));
    REQUIRE(out.has_value());
    CHECK(out->exit_code == 1);
}

TEST_CASE("run_tool passes arguments as words, never through a shell") {
    auto echo = find_tool("echo");
    REQUIRE(echo.has_value());
    auto out = run_tool(*echo, {"echo", "$(id)", "a;b", "`x`"}, "");
    REQUIRE(out.has_value());
    CHECK(out->out == "$(id) a;b `x`\n");
}

TEST_CASE("run_tool gives the child a fixed environment") {
    auto env = find_tool("env");
    REQUIRE(env.has_value());
    auto out = run_tool(*env, {"env"}, "");
    REQUIRE(out.has_value());
    CHECK(out->out == "PATH=/usr/sbin:/usr/bin:/sbin:/bin\nLC_ALL=C\n");
}

TEST_CASE("a tool that does not finish is killed and reported as a timeout") {
    auto sleep = find_tool("sleep");
    REQUIRE(sleep.has_value());
    auto out = run_tool(*sleep, {"sleep", "30"}, "", std::chrono::milliseconds(200));
    REQUIRE_FALSE(out.has_value());
    CHECK(out.error().code == Errc::Timeout);
}

TEST_CASE("missing tools and paths are named errors") {
    auto missing = find_tool("no-such-tool-sshuttle");
    REQUIRE_FALSE(missing.has_value());
    CHECK(missing.error().code == Errc::NotFound);
    CHECK(missing.error().message.find("no-such-tool-sshuttle") != std::string::npos);
    auto spawn = run_tool("/nonexistent/tool", {"tool"}, "");
    CHECK_FALSE(spawn.has_value());
}

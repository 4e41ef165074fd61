#include "common/unique_fd.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <utility>

using namespace sshuttle;

namespace {
bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) >= 0; }
}  // namespace

TEST_CASE("UniqueFd closes its fd when it goes out of scope") {
    int raw = -1;
    {
        auto pair = make_socketpair(false);
        REQUIRE(pair);
        raw = pair->first.get();
        CHECK(fd_is_open(raw));
    }
    CHECK_FALSE(fd_is_open(raw));
}

TEST_CASE("moving a UniqueFd transfers ownership without closing") {
    auto pair = make_socketpair(false);
    REQUIRE(pair);
    int raw = pair->first.get();
    UniqueFd moved = std::move(pair->first);
    CHECK(moved.get() == raw);
    CHECK_FALSE(pair->first);
    CHECK(fd_is_open(raw));
    UniqueFd target;
    target = std::move(moved);
    CHECK(target.get() == raw);
    CHECK(fd_is_open(raw));
}

TEST_CASE("release hands the fd out and reset closes the old one") {
    auto pair = make_socketpair(false);
    REQUIRE(pair);
    int raw = pair->first.release();
    CHECK_FALSE(pair->first);
    CHECK(fd_is_open(raw));
    UniqueFd adopt(raw);
    adopt.reset();
    CHECK_FALSE(fd_is_open(raw));
}

TEST_CASE("duplicate returns a distinct close-on-exec fd") {
    auto pair = make_socketpair(true);
    REQUIRE(pair);
    auto dup = pair->first.duplicate();
    REQUIRE(dup);
    CHECK(dup->get() != pair->first.get());
    CHECK((::fcntl(dup->get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK((::fcntl(pair->second.get(), F_GETFL) & O_NONBLOCK) != 0);
    REQUIRE(set_nonblocking(pair->second.get(), false));
    CHECK((::fcntl(pair->second.get(), F_GETFL) & O_NONBLOCK) == 0);
}

TEST_CASE("duplicate of an empty UniqueFd is an Io error") {
    UniqueFd empty;
    auto dup = empty.duplicate();
    REQUIRE_FALSE(dup);
    CHECK(dup.error().sys_errno == EBADF);
}

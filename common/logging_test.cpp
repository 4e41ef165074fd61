#include "common/logging.hpp"

#include <doctest/doctest.h>

#include <cstdlib>

using namespace sshuttle;

TEST_CASE("verbosity counts map to sshuttle's levels") {
    CHECK(level_for_verbosity(0) == spdlog::level::info);
    CHECK(level_for_verbosity(1) == spdlog::level::debug);
    CHECK(level_for_verbosity(3) == spdlog::level::trace);
}

TEST_CASE("journal prefixes are syslog priorities") {
    CHECK(journal_prefix(spdlog::level::err) == "<3>");
    CHECK(journal_prefix(spdlog::level::warn) == "<4>");
    CHECK(journal_prefix(spdlog::level::info) == "<6>");
    CHECK(journal_prefix(spdlog::level::debug) == "<7>");
}

TEST_CASE("a JOURNAL_STREAM that is not our stderr is ignored") {
    ::setenv("JOURNAL_STREAM", "1:1", 1);
    CHECK_FALSE(stderr_is_journal());
    ::setenv("JOURNAL_STREAM", "garbage", 1);
    CHECK_FALSE(stderr_is_journal());
    ::unsetenv("JOURNAL_STREAM");
    CHECK_FALSE(stderr_is_journal());
}

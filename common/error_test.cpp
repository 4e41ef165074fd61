#include "common/error.hpp"

#include <doctest/doctest.h>

#include <memory>
#include <string>

using namespace sshuttle;

namespace {
Result<int> half(int x) {
    if (x % 2 != 0) return Error(Errc::InvalidArgument, "odd number " + std::to_string(x));
    return x / 2;
}
}  // namespace

TEST_CASE("Result carries a value or an error, never both") {
    auto good = half(4);
    REQUIRE(good.has_value());
    CHECK(*good == 2);
    auto bad = half(3);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().code == Errc::InvalidArgument);
    CHECK(bad.error().message == "odd number 3");
    CHECK(bad.value_or(-1) == -1);
}

TEST_CASE("Result holds move-only values") {
    Result<std::unique_ptr<int>> r = std::make_unique<int>(7);
    REQUIRE(r);
    std::unique_ptr<int> p = std::move(r).value();
    CHECK(*p == 7);
}

TEST_CASE("Result<void> defaults to success") {
    Result<void> r = ok();
    CHECK(r.has_value());
    Result<void> e = Error(Errc::Timeout, "late");
    CHECK_FALSE(e);
    CHECK(e.error().code == Errc::Timeout);
}

TEST_CASE("Error::from_errno maps common errnos and formats strerror once") {
    auto e = Error::from_errno("open /nowhere", ENOENT);
    CHECK(e.code == Errc::NotFound);
    CHECK(e.to_string() == "open /nowhere: No such file or directory");
    CHECK(Error::from_errno("x", EACCES).code == Errc::PermissionDenied);
    CHECK(Error::from_errno("x", EIO).code == Errc::Io);
    CHECK(Error(Errc::Protocol, "plain").to_string() == "plain");
}

TEST_CASE("with_context prefixes the message and keeps code and errno") {
    auto e = Error::from_errno("read", EPIPE).with_context("ssh stdout");
    CHECK(e.message == "ssh stdout: read");
    CHECK(e.sys_errno == EPIPE);
    CHECK(std::string(errc_name(Errc::TooLarge)) == "TooLarge");
}

#include "proto/bytes.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace sshuttle::proto;
using namespace std::string_literals;

TEST_CASE("escape_bytes keeps printable ASCII and escapes everything else") {
    CHECK(escape_bytes(as_bytes("abc XYZ 09")) == "abc XYZ 09");
    CHECK(escape_bytes(as_bytes("a\nb\rc\td")) == "a\\nb\\rc\\td");
    CHECK(escape_bytes(as_bytes("\0A"s)) == "\\x00A");
    CHECK(escape_bytes(as_bytes("\x7f\xff\x1b")) == "\\x7f\\xff\\x1b");
    CHECK(escape_bytes(as_bytes("it's a\\b")) == "it\\'s a\\\\b");
}

TEST_CASE("escape_bytes truncates long input and says so") {
    const std::string long_text(100, 'x');
    CHECK(escape_bytes(as_bytes(long_text), 5) == "xxxxx...");
    CHECK(escape_bytes(as_bytes("xxxxx"), 5) == "xxxxx");
}

TEST_CASE("quote_bytes wraps in single quotes with the ellipsis outside") {
    CHECK(quote_bytes("SS") == "'SS'");
    CHECK(quote_bytes(std::string(60, 'a'), 3) == "'aaa'...");
    CHECK(quote_bytes("") == "''");
}

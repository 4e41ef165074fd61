#include "daemon/output_buffer.hpp"

#include <cstring>
#include <string>

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::daemon;

namespace {
std::string contents(const OutputBuffer& b) {
    return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}
}  // namespace

TEST_CASE("output buffer: append, consume from the front, empty again") {
    OutputBuffer b;
    CHECK(b.empty());
    b.append(proto::as_bytes("hello "));
    b.append(proto::as_bytes("world"));
    CHECK(contents(b) == "hello world");
    b.consume(6);
    CHECK(contents(b) == "world");
    b.consume(100);  // more than queued: all of it
    CHECK(b.empty());
    b.append(proto::as_bytes("again"));
    CHECK(contents(b) == "again");
    b.clear();
    CHECK(b.size() == 0);
}

TEST_CASE("output buffer: prepare reserves without changing the size; commit takes a prefix") {
    OutputBuffer b;
    b.append(proto::as_bytes("head:"));
    auto area = b.prepare(65536);
    CHECK(area.size() == 65536);
    CHECK(b.size() == 5);  // nothing joins until commit
    std::memcpy(area.data(), "64 bytes or so", 14);
    b.commit(14);
    CHECK(contents(b) == "head:64 bytes or so");
    b.commit(0);
    CHECK(contents(b) == "head:64 bytes or so");
    // Written out, the same reservation again reuses the block: no reallocation.
    const std::size_t capacity = b.capacity();
    b.consume(b.size());
    area = b.prepare(65536);
    CHECK(b.capacity() == capacity);
    CHECK(b.empty());
}

TEST_CASE("output buffer: queued bytes survive moves to the front and growth, in order") {
    OutputBuffer b;
    std::string expect;
    std::size_t consumed = 0;
    for (int i = 0; i < 5000; ++i) {
        std::string piece = std::to_string(i) + std::string(static_cast<std::size_t>(i % 97), 'x') + ";";
        if (i % 3 == 0) {
            b.append(proto::as_bytes(piece));
        } else {
            auto area = b.prepare(piece.size() + 4096);  // more than needed, as a recv() would
            std::memcpy(area.data(), piece.data(), piece.size());
            b.commit(piece.size());
        }
        expect += piece;
        if (i % 7 == 0) {
            const std::size_t n = b.size() / 2 + 1;
            b.consume(n);
            consumed += n;
        }
        REQUIRE(b.size() == expect.size() - consumed);
    }
    CHECK(contents(b) == expect.substr(consumed));
    CHECK(b.capacity() < 4 * (b.size() + 4096 + 4096));  // bounded by what is queued
}

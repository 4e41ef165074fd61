// Helpers shared by proto/'s unit tests (not part of the library).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "proto/bytes.hpp"

namespace sshuttle::proto::testing {

inline std::vector<std::uint8_t> bytes_of(std::string_view text) {
    return {text.begin(), text.end()};
}

inline std::string string_of(ByteView bytes) {
    return std::string(as_chars(bytes));
}

// Heap allocations made through operator new so far in this process (testing_alloc.cpp replaces
// the global operator new to count them), so that tests can show a path allocates nothing.
long allocation_count() noexcept;

}  // namespace sshuttle::proto::testing

// Byte views and their rendering in error messages.
//
// Everything in proto/ takes and returns bytes as ByteView: a non-owning span over a caller's
// buffer (a socket read buffer, the decoder's buffer, a frame under construction). Error
// messages quote peer bytes through escape_bytes() so that a hostile or confused peer can neither
// inject control characters into logs nor make a message arbitrarily long.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace sshuttle::proto {

using ByteView = std::span<const std::uint8_t>;

// How many bytes of peer input an error message quotes by default: enough to recognise a shell
// error or a banner line, short enough to keep a log line on one screen.
inline constexpr std::size_t kQuoteBytes = 48;

inline ByteView as_bytes(std::string_view text) noexcept {
    return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}
inline std::string_view as_chars(ByteView bytes) noexcept {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// The first max_bytes bytes, printable ASCII kept, quote and backslash escaped, \n \r \t as
// such, anything else as \xNN; "..." appended when bytes were left out. No surrounding quotes.
std::string escape_bytes(ByteView bytes, std::size_t max_bytes = kQuoteBytes);
// escape_bytes() inside single quotes: 'abc\x00'... for use in messages.
std::string quote_bytes(ByteView bytes, std::size_t max_bytes = kQuoteBytes);
inline std::string quote_bytes(std::string_view text, std::size_t max_bytes = kQuoteBytes) {
    return quote_bytes(as_bytes(text), max_bytes);
}

}  // namespace sshuttle::proto

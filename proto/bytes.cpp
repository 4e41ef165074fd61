#include "proto/bytes.hpp"

#include <algorithm>

namespace sshuttle::proto {

std::string escape_bytes(ByteView bytes, std::size_t max_bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    const std::size_t shown = bytes.size() < max_bytes ? bytes.size() : max_bytes;
    std::string out;
    out.reserve(shown + 8);
    for (std::size_t i = 0; i < shown; ++i) {
        const std::uint8_t c = bytes[i];
        switch (c) {
            case '\n':
                out += "\\n";
                break;
            case '\r':
                out += "\\r";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\'':
                out += "\\'";
                break;
            default:
                if (c >= 0x20 && c < 0x7f) {
                    out += static_cast<char>(c);
                } else {
                    out += "\\x";
                    out += kHex[c >> 4];
                    out += kHex[c & 0xf];
                }
        }
    }
    if (shown < bytes.size()) out += "...";
    return out;
}

std::string quote_bytes(ByteView bytes, std::size_t max_bytes) {
    std::string body = escape_bytes(bytes.first(std::min(bytes.size(), max_bytes)), max_bytes);
    std::string out = "'" + body + "'";
    if (bytes.size() > max_bytes) out += "...";
    return out;
}

}  // namespace sshuttle::proto

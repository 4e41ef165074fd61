// The payloads of our extensions (docs/EXTENSIONS.md): WINDOW and CONNECT_ERROR. Declared in
// mux_messages.hpp with the upstream ones, so that Message covers every command.
#include "proto/mux_messages.hpp"

#include <string_view>

#include "proto/payload_text.hpp"

namespace sshuttle::proto {

using namespace payload_text;

Result<Window> Window::parse(ByteView payload) {
    if (payload.size() != 4)
        return malformed(
            kCommand, payload,
            "expected a 4-byte increment, got " + std::to_string(payload.size()) + " bytes");
    const std::uint32_t increment = (std::uint32_t{payload[0]} << 24) |
                                    (std::uint32_t{payload[1]} << 16) |
                                    (std::uint32_t{payload[2]} << 8) | std::uint32_t{payload[3]};
    if (increment == 0 || increment > kMaxWindowIncrement)
        return malformed(kCommand, payload,
                         "increment " + std::to_string(increment) + " is not in 1..2147483647");
    return Window{increment};
}

Result<void> Window::append_payload(std::vector<std::uint8_t>& out) const {
    if (increment == 0 || increment > kMaxWindowIncrement)
        return Error(Errc::InvalidArgument,
                     "WINDOW: increment " + std::to_string(increment) + " is not in 1..2147483647");
    out.push_back(static_cast<std::uint8_t>(increment >> 24));
    out.push_back(static_cast<std::uint8_t>(increment >> 16));
    out.push_back(static_cast<std::uint8_t>(increment >> 8));
    out.push_back(static_cast<std::uint8_t>(increment));
    return ok();
}

Result<ConnectError> ConnectError::parse(ByteView payload) {
    if (payload.size() > kMaxConnectErrorPayload)
        return Error(Errc::TooLarge, "CONNECT_ERROR payload of " + std::to_string(payload.size()) +
                                         " bytes is longer than 256");
    const std::string_view text = as_chars(payload);
    const std::size_t comma = text.find(',');
    if (comma == std::string_view::npos)
        return malformed(kCommand, payload, "expected '<errno>,<message>'");
    auto number = parse_decimal(text.substr(0, comma), kMaxU16Digits);
    if (!number || *number == 0 || *number > 65535)
        return malformed(kCommand, payload,
                         "errno " + quote_bytes(text.substr(0, comma)) +
                             " is not a number in "
                             "1..65535");
    const std::string_view message = text.substr(comma + 1);
    if (!is_printable_ascii(message))
        return malformed(kCommand, payload, "the message is not printable ASCII");
    return ConnectError{static_cast<int>(*number), std::string(message)};
}

Result<void> ConnectError::append_payload(std::vector<std::uint8_t>& out) const {
    const std::string text = std::to_string(error_number) + "," + message;
    if (error_number <= 0 || error_number > 65535 || !is_printable_ascii(message))
        return Error(Errc::InvalidArgument,
                     "CONNECT_ERROR: " + quote_bytes(text) + " is not '<errno>,<printable text>'");
    if (text.size() > kMaxConnectErrorPayload)
        return Error(Errc::TooLarge,
                     "CONNECT_ERROR: " + std::to_string(text.size()) + " bytes is longer than 256");
    append_text(out, text);
    return ok();
}

}  // namespace sshuttle::proto

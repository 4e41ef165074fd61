// ControlDecoder: splits the control-socket byte stream into messages.
//
// The CLI and the daemon speak varlink's framing (docs/PROTOCOL.md, "Control socket"): each
// message is one JSON object followed by a NUL byte. JSON text never contains a raw NUL (it
// escapes U+0000 as \u0000), so the NUL is an unambiguous terminator. This class only frames;
// control.hpp parses the JSON.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.hpp"
#include "proto/bytes.hpp"

namespace sshuttle::proto {

class ControlDecoder {
  public:
    // Bytes: the longest message. Status for many tunnels fits in a few KiB; a peer that sends
    // more without a NUL is broken or hostile, and the daemon must not buffer it.
    static constexpr std::size_t kDefaultMaxMessage = 64 * 1024;

    explicit ControlDecoder(std::size_t max_message = kDefaultMaxMessage)
        : max_message_(max_message) {}

    // Appends bytes. TooLarge, and the decoder fails for good, as soon as more than max_message
    // bytes are pending without a terminating NUL (so a peer cannot make it buffer more than
    // max_message plus one read).
    [[nodiscard]] Result<void> feed(ByteView bytes);
    [[nodiscard]] Result<void> feed(std::string_view bytes) { return feed(as_bytes(bytes)); }

    // The next complete message without its NUL, nullopt when none is complete yet. The view is
    // valid until the next call to feed() or next(). A complete message longer than max_message
    // is TooLarge (final).
    [[nodiscard]] Result<std::optional<std::string_view>> next();

    // Bytes received and not yet returned.
    std::size_t buffered() const noexcept { return buf_.size() - begin_; }
    bool failed() const noexcept { return failed_.has_value(); }

  private:
    Error fail(Error error);

    std::size_t max_message_;
    std::string buf_;
    std::size_t begin_ = 0;  // start of the first message not yet returned
    std::size_t tail_ = 0;   // bytes at the end of buf_ after its last NUL
    std::optional<Error> failed_;
};

}  // namespace sshuttle::proto

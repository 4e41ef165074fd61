#include "proto/control_decoder.hpp"

#include <cstring>

namespace sshuttle::proto {

Error ControlDecoder::fail(Error error) {
    failed_ = error;
    return error;
}

Result<void> ControlDecoder::feed(ByteView bytes) {
    if (failed_) return *failed_;
    // Drop what next() has returned once it is at least half the buffer: amortised O(1) per
    // byte, and the buffer stays near one message plus one read.
    if (begin_ > 0 && begin_ >= buf_.size() / 2) {
        buf_.erase(0, begin_);
        begin_ = 0;
    }
    const void* last_nul = bytes.empty() ? nullptr : ::memrchr(bytes.data(), 0, bytes.size());
    if (last_nul == nullptr) {
        tail_ += bytes.size();
    } else {
        const auto* after = static_cast<const std::uint8_t*>(last_nul) + 1;
        tail_ = static_cast<std::size_t>(bytes.data() + bytes.size() - after);
    }
    if (tail_ > max_message_)
        return fail(Error(Errc::TooLarge, "control message longer than " +
                                              std::to_string(max_message_) +
                                              " bytes without a terminating NUL"));
    buf_.append(as_chars(bytes));
    return ok();
}

Result<std::optional<std::string_view>> ControlDecoder::next() {
    if (failed_) return *failed_;
    const std::size_t end = buf_.find('\0', begin_);
    if (end == std::string::npos) return std::optional<std::string_view>{};
    const std::string_view message(buf_.data() + begin_, end - begin_);
    if (message.size() > max_message_)
        return fail(Error(Errc::TooLarge, "control message of " + std::to_string(message.size()) +
                                              " bytes is longer than the limit of " +
                                              std::to_string(max_message_)));
    begin_ = end + 1;
    return std::optional<std::string_view>{message};
}

}  // namespace sshuttle::proto

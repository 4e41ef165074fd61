#include "proto/sync_scanner.hpp"

#include "proto/mux_frame.hpp"

namespace sshuttle::proto {

namespace {
// The 12 bytes after the two NULs.
constexpr std::string_view kSyncMagic = kSyncHeader.substr(2);
static_assert(kSyncMagic.size() == 12);
}  // namespace

void SyncScanner::remember(std::uint8_t byte) {
    // One byte past the quote limit, so that quote_bytes() shows that there was more.
    if (prefix_.size() <= kQuoteBytes) prefix_ += static_cast<char>(byte);
}

Error SyncScanner::fail(Error error) {
    state_ = State::Failed;
    failed_ = error;
    return error;
}

Result<SyncScanner::Progress> SyncScanner::feed(ByteView chunk) {
    if (state_ == State::Failed) return *failed_;
    if (state_ == State::Done) return Progress{true, 0};
    for (std::size_t i = 0; i < chunk.size(); ++i) {
        const std::uint8_t byte = chunk[i];
        remember(byte);
        if (state_ == State::Magic) {
            magic_ += static_cast<char>(byte);
            if (magic_.size() < kSyncMagic.size()) continue;
            if (magic_ != kSyncMagic) {
                std::string got =
                    garbage_ == 0
                        ? quote_bytes(prefix_)
                        : quote_bytes(magic_) + " after two NULs and " + std::to_string(garbage_) +
                              " bytes of other output beginning " + quote_bytes(prefix_);
                return fail(Error(Errc::Protocol, "expected server init string " +
                                                      quote_bytes(kSyncHeader) + ", got " + got));
            }
            state_ = State::Done;
            return Progress{true, i + 1};
        }
        if (byte == 0) {
            state_ = state_ == State::FirstNul ? State::SecondNul : State::Magic;
            continue;
        }
        if (++garbage_ > max_garbage_)
            return fail(Error(Errc::TooLarge, "no server init string after " +
                                                  std::to_string(max_garbage_) +
                                                  " bytes of output from the remote, which began " +
                                                  quote_bytes(prefix_)));
    }
    return Progress{false, chunk.size()};
}

Error SyncScanner::eof_error() const {
    if (prefix_.empty())
        return Error(Errc::Protocol,
                     "the ssh session ended before the server init string; the remote wrote "
                     "nothing");
    return Error(Errc::Protocol,
                 "the ssh session ended before the server init string; the remote wrote " +
                     quote_bytes(prefix_));
}

}  // namespace sshuttle::proto

#include "daemon/output_buffer.hpp"

#include <algorithm>
#include <cstring>

namespace sshuttle::daemon {

namespace {
constexpr std::size_t kMinCapacity = 4096;
}  // namespace

void OutputBuffer::append(proto::ByteView bytes) {
    if (bytes.empty()) return;
    std::span<std::uint8_t> area = prepare(bytes.size());
    std::memcpy(area.data(), bytes.data(), bytes.size());
    commit(bytes.size());
}

std::span<std::uint8_t> OutputBuffer::prepare(std::size_t n) {
    if (capacity_ - end_ < n) {
        const std::size_t queued = size();
        // Moving the queued bytes to the front pays for itself only when the written-out
        // prefix is at least as large as they are; otherwise grow (amortised O(1) either way).
        if (begin_ >= queued && capacity_ - queued >= n) {
            std::memmove(storage_.get(), storage_.get() + begin_, queued);
        } else {
            const std::size_t capacity = std::max({kMinCapacity, 2 * capacity_, queued + n});
            // Default-initialised: the new block is not zero-filled.
            auto storage = std::make_unique_for_overwrite<std::uint8_t[]>(capacity);
            if (queued > 0) std::memcpy(storage.get(), storage_.get() + begin_, queued);
            storage_ = std::move(storage);
            capacity_ = capacity;
        }
        begin_ = 0;
        end_ = queued;
    }
    return {storage_.get() + end_, n};
}

void OutputBuffer::consume(std::size_t n) noexcept {
    begin_ += std::min(n, size());
    if (begin_ == end_) begin_ = end_ = 0;
}

}  // namespace sshuttle::daemon

#include "proto/mux_decoder.hpp"

#include <algorithm>
#include <cstring>
#include <string>

namespace sshuttle::proto {

FrameDecoder::FrameDecoder(std::size_t buffer_limit, std::size_t max_payload)
    : max_payload_(std::min(max_payload, kMaxPayload)) {
    limit_ = std::max(buffer_limit, kHeaderSize + max_payload_);
    // Uninitialised on purpose: every byte is written by feed()/commit() before it is read.
    buf_ = std::make_unique_for_overwrite<std::uint8_t[]>(limit_);
}

Result<void> FrameDecoder::feed(ByteView bytes) {
    if (failed_) return *failed_;
    if (bytes.size() > space())
        return Error(Errc::TooLarge, "mux input of " + std::to_string(bytes.size()) +
                                         " bytes does not fit the decoder buffer (" +
                                         std::to_string(space()) + " of " + std::to_string(limit_) +
                                         " bytes free)");
    if (bytes.empty()) return ok();
    if (limit_ - end_ < bytes.size()) compact();
    std::memcpy(buf_.get() + end_, bytes.data(), bytes.size());
    end_ += bytes.size();
    return ok();
}

std::span<std::uint8_t> FrameDecoder::prepare() {
    // Compact only when the free tail is smaller than a largest frame: then a read(2) into the
    // area can always take a whole frame, and data moves at most once per (limit - frame) bytes.
    if (begin_ > 0 && limit_ - end_ < kMaxFrameSize) compact();
    return {buf_.get() + end_, limit_ - end_};
}

void FrameDecoder::commit(std::size_t n) noexcept {
    end_ += std::min(n, limit_ - end_);
}

void FrameDecoder::compact() noexcept {
    const std::size_t n = end_ - begin_;
    if (begin_ > 0 && n > 0) std::memmove(buf_.get(), buf_.get() + begin_, n);
    begin_ = 0;
    end_ = n;
}

Error FrameDecoder::fail(Error error) {
    failed_ = error;
    return error;
}

Result<std::optional<FrameView>> FrameDecoder::next() {
    if (failed_) return *failed_;
    const std::size_t avail = end_ - begin_;
    const std::uint8_t* p = buf_.get() + begin_;
    // A wrong magic is reported as soon as its two bytes are in, not after eight: a stream that
    // is not frames (a shell message after the sync header) should fail early. Waiting for both
    // bytes keeps the message the same however the input was split.
    if (avail >= 2 && (p[0] != kMagic || p[1] != kMagic))
        return fail(Error(Errc::Protocol, "bad mux frame magic: expected 'SS', got " +
                                              quote_bytes(ByteView(p, 2))));
    if (avail < kHeaderSize) return std::optional<FrameView>{};
    auto header = parse_header(std::span<const std::uint8_t, kHeaderSize>(p, kHeaderSize));
    if (!header) return fail(std::move(header).error());
    if (header->payload_size > max_payload_)
        return fail(Error(Errc::TooLarge, std::string(command_name(header->command)) +
                                              " frame on channel " +
                                              std::to_string(header->channel) + " announces " +
                                              std::to_string(header->payload_size) +
                                              " payload bytes, more than the limit of " +
                                              std::to_string(max_payload_)));
    const std::size_t frame_size = kHeaderSize + header->payload_size;
    if (avail < frame_size) return std::optional<FrameView>{};
    FrameView frame{header->channel, header->command,
                    ByteView(p + kHeaderSize, header->payload_size)};
    begin_ += frame_size;
    // An empty buffer restarts at the front for free; the frame's bytes stay where they are
    // until the next feed()/commit() overwrites them, which the FrameView contract allows.
    if (begin_ == end_) begin_ = end_ = 0;
    return std::optional<FrameView>{frame};
}

}  // namespace sshuttle::proto

// FrameDecoder: turns the byte stream after the sync header back into frames, incrementally.
//
// Bytes go in through feed() (a copy) or prepare()/commit() (the caller reads from the socket
// straight into the decoder's buffer, no copy at all). Frames come out of next() as views into
// that buffer: no allocation and no copy per frame. The buffer is allocated once, never grows,
// and is compacted only when its free tail runs out, so data is moved at most once per buffer's
// worth of input, not once per frame.
//
// The buffer limit is the backpressure point: when space() is 0 the caller stops reading the
// ssh socket until it has consumed frames with next(). Feeding more than space() is a TooLarge
// error that leaves the decoder usable; a malformed stream (bad magic, unknown command, payload
// over the limit) fails the decoder for good, because a byte stream cannot be resynchronised.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>

#include "common/error.hpp"
#include "proto/bytes.hpp"
#include "proto/mux_frame.hpp"

namespace sshuttle::proto {

// One decoded frame. payload points into the decoder's buffer and is valid until the next call
// to next(), feed(), prepare() or commit() on that decoder.
struct FrameView {
    std::uint16_t channel = 0;
    Command command = Command::Exit;
    ByteView payload;
};

class FrameDecoder {
  public:
    // Bytes: four largest frames. Enough that the peer's burst (upstream sends ~32 KiB per round
    // trip; our own peer writes up to a few frames per writev) never waits on our buffer, small
    // enough to be nothing per session.
    static constexpr std::size_t kDefaultBufferLimit = 256 * 1024;

    // buffer_limit: most bytes held at once (raised to one header + max_payload if smaller, so
    // that every acceptable frame fits). max_payload: longest payload accepted (at most
    // kMaxPayload); a longer one is a TooLarge error.
    explicit FrameDecoder(std::size_t buffer_limit = kDefaultBufferLimit,
                          std::size_t max_payload = kMaxPayload);

    FrameDecoder(FrameDecoder&&) noexcept = default;
    FrameDecoder& operator=(FrameDecoder&&) noexcept = default;
    FrameDecoder(const FrameDecoder&) = delete;
    FrameDecoder& operator=(const FrameDecoder&) = delete;

    // Bytes feed() accepts right now (buffer limit minus bytes not yet consumed by next()).
    std::size_t space() const noexcept { return limit_ - (end_ - begin_); }
    // Bytes fed but not yet returned as frames.
    std::size_t buffered() const noexcept { return end_ - begin_; }
    std::size_t buffer_limit() const noexcept { return limit_; }
    std::size_t max_payload() const noexcept { return max_payload_; }
    // True once next() has reported a malformed stream; every later call repeats that error.
    bool failed() const noexcept { return failed_.has_value(); }

    // Copies bytes in. TooLarge, taking nothing, when bytes.size() > space(): the caller fed
    // without checking space(); consume frames with next() and retry.
    [[nodiscard]] Result<void> feed(ByteView bytes);

    // The zero-copy path: a writable area to read(2) into, then commit(n) with the count
    // actually written (n <= the area's size). The area is at least min(space(), kMaxFrameSize)
    // bytes; it is empty only when space() is 0.
    std::span<std::uint8_t> prepare();
    void commit(std::size_t n) noexcept;

    // The next complete frame, nullopt when more bytes are needed, or the error that makes the
    // stream unusable. Header errors are reported as soon as the header is complete, without
    // waiting for the payload.
    [[nodiscard]] Result<std::optional<FrameView>> next();

  private:
    Error fail(Error error);
    // Moves the unconsumed bytes to the front of the buffer.
    void compact() noexcept;

    std::unique_ptr<std::uint8_t[]> buf_;
    std::size_t limit_ = 0;
    std::size_t max_payload_ = kMaxPayload;
    std::size_t begin_ = 0;  // first byte not yet returned by next()
    std::size_t end_ = 0;    // one past the last byte fed
    std::optional<Error> failed_;
};

}  // namespace sshuttle::proto

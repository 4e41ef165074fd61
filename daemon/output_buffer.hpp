// OutputBuffer: the mux's queue of bytes for the ssh stream. Bytes are appended at the back and
// written from the front.
//
// Its capacity is managed apart from its size: prepare(n) hands out n bytes of uninitialised
// space at the back and commit(k) makes the first k of them part of the buffer. A frame read
// straight from a socket reserves room for a whole payload (up to 64 KiB) but pays only for what
// recv() returns; std::vector::resize() zero-filled the whole reservation before every recv,
// even one that brought 64 bytes.
#pragma once

#include <cstdint>
#include <memory>
#include <span>

#include "proto/bytes.hpp"

namespace sshuttle::daemon {

class OutputBuffer {
public:
    std::size_t size() const noexcept { return end_ - begin_; }
    bool empty() const noexcept { return end_ == begin_; }
    std::size_t capacity() const noexcept { return capacity_; }
    // The queued bytes, oldest first.
    const std::uint8_t* data() const noexcept { return storage_.get() + begin_; }

    void append(proto::ByteView bytes);
    // n bytes of uninitialised space at the back; valid until the next call that changes the
    // buffer. The queued bytes are kept (moved to the front or to a larger block if needed).
    std::span<std::uint8_t> prepare(std::size_t n);
    // The first n bytes of the space of the last prepare() join the queue.
    void commit(std::size_t n) noexcept { end_ += n; }
    // Drops n bytes from the front (written out).
    void consume(std::size_t n) noexcept;
    void clear() noexcept { begin_ = end_ = 0; }

private:
    std::unique_ptr<std::uint8_t[]> storage_;
    std::size_t capacity_ = 0;
    std::size_t begin_ = 0;  // first queued byte
    std::size_t end_ = 0;    // one past the last
};

}  // namespace sshuttle::daemon

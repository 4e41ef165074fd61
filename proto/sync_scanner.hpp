// SyncScanner: finds the server's sync header ("\0\0SSHUTTLE0001") at the start of its stdout.
//
// It reproduces the sshuttle 1.x client (sshuttle-upstream.md §2.3): skip bytes up to a NUL,
// skip bytes up to a second NUL, then the next 12 bytes must be "SSHUTTLE0001". So output from
// the remote login (a banner, an rc file's echo) is tolerated as long as it contains no NUL,
// which is what makes sshuttle work on chatty accounts. Unlike upstream we cap that output and
// read exactly 12 bytes (upstream's single recv(12) may return fewer and then fail spuriously).
//
// Fed arbitrary chunks. When it finishes, feed() says how many bytes of that chunk were the
// header (and what preceded it); the rest of the chunk is the first frames and belongs to the
// FrameDecoder.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "common/error.hpp"
#include "proto/bytes.hpp"

namespace sshuttle::proto {

class SyncScanner {
  public:
    // Bytes of output tolerated before the header: far more than any login banner or rc file
    // noise, small enough that a remote that never prints the header is diagnosed early.
    static constexpr std::size_t kDefaultMaxGarbage = 64 * 1024;

    struct Progress {
        bool done = false;         // the header has been seen in full
        std::size_t consumed = 0;  // bytes of this chunk used; chunk.size() unless done
    };

    explicit SyncScanner(std::size_t max_garbage = kDefaultMaxGarbage)
        : max_garbage_(max_garbage) {}

    // Scans one chunk. Protocol error when the 12 bytes after the NULs are not "SSHUTTLE0001"
    // (the message quotes what the remote wrote), TooLarge when more than max_garbage bytes
    // arrive before the header. Errors are final. After done, feed() consumes nothing.
    [[nodiscard]] Result<Progress> feed(ByteView chunk);

    bool done() const noexcept { return state_ == State::Done; }
    // Bytes skipped before the header (not counting the NULs themselves).
    std::size_t garbage() const noexcept { return garbage_; }
    // The error to report when the stream ends before the header: names what the remote wrote,
    // e.g. "bash: python3: command not found", which is usually the whole diagnosis.
    Error eof_error() const;

  private:
    enum class State { FirstNul, SecondNul, Magic, Done, Failed };

    Error fail(Error error);
    void remember(std::uint8_t byte);

    std::size_t max_garbage_;
    State state_ = State::FirstNul;
    std::size_t garbage_ = 0;
    std::string magic_;   // those bytes, for the mismatch message
    std::string prefix_;  // the first kQuoteBytes bytes received, for messages
    std::optional<Error> failed_;
};

}  // namespace sshuttle::proto

// UniqueFd: sole owner of one file descriptor. Move-only; copying is never implicit (use
// duplicate(), which says so). Every fd in this project lives in one of these or in an
// sd-event source that owns it.
#pragma once

#include <utility>

#include "common/error.hpp"

namespace sshuttle {

class UniqueFd {
public:
    UniqueFd() noexcept = default;
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    UniqueFd(UniqueFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) reset(std::exchange(other.fd_, -1));
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }

    [[nodiscard]] int get() const noexcept { return fd_; }
    // Gives up ownership; the caller must close the returned fd.
    [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
    explicit operator bool() const noexcept { return fd_ >= 0; }

    // Closes the current fd (an EINTR from close() still counts as closed on Linux) and adopts fd.
    void reset(int fd = -1) noexcept;

    // A new descriptor for the same open file, with FD_CLOEXEC set (F_DUPFD_CLOEXEC, from 3 up).
    [[nodiscard]] Result<UniqueFd> duplicate() const;

private:
    int fd_ = -1;
};

// A connected AF_UNIX stream socketpair, both ends close-on-exec.
struct FdPair {
    UniqueFd first;
    UniqueFd second;
};
[[nodiscard]] Result<FdPair> make_socketpair(bool nonblocking);

// Sets or clears O_NONBLOCK.
[[nodiscard]] Result<void> set_nonblocking(int fd, bool on);

}  // namespace sshuttle

#include "common/unique_fd.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace sshuttle {

void UniqueFd::reset(int fd) noexcept {
    if (fd_ >= 0 && fd_ != fd) ::close(fd_);
    fd_ = fd;
}

Result<UniqueFd> UniqueFd::duplicate() const {
    int copy = ::fcntl(fd_, F_DUPFD_CLOEXEC, 3);
    if (copy < 0) return Error::from_errno("fcntl(F_DUPFD_CLOEXEC)");
    return UniqueFd(copy);
}

Result<FdPair> make_socketpair(bool nonblocking) {
    int fds[2];
    int type = SOCK_STREAM | SOCK_CLOEXEC | (nonblocking ? SOCK_NONBLOCK : 0);
    if (::socketpair(AF_UNIX, type, 0, fds) < 0) return Error::from_errno("socketpair");
    return FdPair{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

Result<void> set_nonblocking(int fd, bool on) {
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0) return Error::from_errno("fcntl(F_GETFL)");
    int wanted = on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK);
    if (wanted != flags && ::fcntl(fd, F_SETFL, wanted) < 0)
        return Error::from_errno("fcntl(F_SETFL)");
    return ok();
}

}  // namespace sshuttle

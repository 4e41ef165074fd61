#include "common/error.hpp"

#include <cstring>

namespace sshuttle {

const char* errc_name(Errc code) noexcept {
    switch (code) {
        case Errc::InvalidArgument: return "InvalidArgument";
        case Errc::Protocol: return "Protocol";
        case Errc::TooLarge: return "TooLarge";
        case Errc::Io: return "Io";
        case Errc::PermissionDenied: return "PermissionDenied";
        case Errc::NotFound: return "NotFound";
        case Errc::Timeout: return "Timeout";
        case Errc::Backend: return "Backend";
        case Errc::Internal: return "Internal";
    }
    return "Internal";
}

Error Error::from_errno(const std::string& what, int err) {
    Errc code = Errc::Io;
    if (err == EACCES || err == EPERM) code = Errc::PermissionDenied;
    if (err == ENOENT) code = Errc::NotFound;
    if (err == ETIMEDOUT) code = Errc::Timeout;
    return Error(code, what, err);
}

std::string Error::to_string() const {
    if (sys_errno == 0) return message;
    std::string reason = std::strerror(sys_errno);
    if (message.find(reason) != std::string::npos) return message;
    return message + ": " + reason;
}

Error Error::with_context(const std::string& context) const {
    Error e = *this;
    e.message = context + ": " + message;
    return e;
}

}  // namespace sshuttle

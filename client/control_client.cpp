#include "client/control_client.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

namespace sshuttle::client {

std::vector<std::string> control_socket_dirs() {
    std::vector<std::string> dirs;
    const char* xdg = std::getenv("XDG_RUNTIME_DIR");
    if (xdg && xdg[0] == '/') dirs.push_back(std::string(xdg) + "/sshuttle");
    if (::geteuid() == 0)
        dirs.insert(dirs.begin(), "/run/sshuttle");
    else
        dirs.push_back("/run/sshuttle");
    return dirs;
}

std::vector<std::string> control_socket_candidates(const std::string& name) {
    std::vector<std::string> out;
    for (const std::string& dir : control_socket_dirs()) out.push_back(dir + "/" + name + ".sock");
    return out;
}

Result<ControlClient> ControlClient::connect(const std::string& path) {
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    if (path.size() >= sizeof sa.sun_path)
        return Error(Errc::InvalidArgument, path + ": path too long");
    std::memcpy(sa.sun_path, path.data(), path.size());
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return Error::from_errno("socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
        int err = errno;
        if (err == ENOENT || err == ECONNREFUSED)
            return Error(Errc::NotFound, "no tunnel answers on " + path, err);
        if (err == EACCES || err == EPERM)
            return Error(Errc::PermissionDenied,
                         "permission denied on " + path + ": the tunnel belongs to another user",
                         err);
        return Error::from_errno("connect " + path, err);
    }
    return ControlClient(std::move(fd));
}

Result<proto::Reply> ControlClient::call(std::string_view method, bool more) {
    proto::Call c;
    c.method = std::string(method);
    c.more = more;
    auto text = proto::serialize_call(c);
    if (!text) return text.error();
    std::size_t off = 0;
    while (off < text->size()) {
        ssize_t n = ::send(fd_.get(), text->data() + off, text->size() - off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        // EPIPE: the daemon refused us and closed; its reason may still be readable.
        if (n < 0 && errno == EPIPE) break;
        if (n < 0) return Error::from_errno("send");
        off += static_cast<std::size_t>(n);
    }
    return next();
}

Result<proto::Reply> ControlClient::next(int timeout_ms) {
    for (;;) {
        auto msg = decoder_.next();
        if (!msg) return msg.error();
        if (*msg) return proto::parse_reply(**msg);
        pollfd p{fd_.get(), POLLIN, 0};
        int r = ::poll(&p, 1, timeout_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) return Error::from_errno("poll");
        if (r == 0)
            return Error(Errc::Timeout, "the tunnel did not answer within " +
                                            std::to_string(timeout_ms / 1000) + " s");
        char buf[16384];
        ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == ECONNRESET) return Error(Errc::Protocol, "connection closed");
        if (n < 0) return Error::from_errno("recv");
        if (n == 0) return Error(Errc::Protocol, "connection closed");
        if (auto f = decoder_.feed(std::string_view(buf, static_cast<std::size_t>(n))); !f)
            return f.error();
    }
}

std::string describe_error(const proto::Reply& reply) {
    if (reply.parameters.contains("reason") && reply.parameters["reason"].is_string())
        return reply.parameters["reason"].get<std::string>() + " (" + reply.error + ")";
    return reply.error + (reply.parameters.empty() ? "" : " " + reply.parameters.dump());
}

}  // namespace sshuttle::client

// Test driver for the real firewall backends (not installed): tests/integration/
// helper_rules_test.sh runs it as root inside a network namespace it created.
//
//   rules_tool status             one line per method: "nft ok" / "nat unavailable: why"
//   rules_tool session            reads commands from stdin, one per line, answers one line each:
//       apply <spec json>    -> "ok" | "error <Errc>: <message>"
//       remove <name>        -> "ok" | "error ..."
//       installed            -> "names a b c"
//       sweep                -> "names a b c"
//       quit (or EOF)        -> exits; the backend's destructor removes what it applied
//   rules_tool tproxy-serve ADDR PORT
//                                 transparent TCP and UDP listeners on ADDR:PORT (from
//                                 tproxy_socket); prints "listening", then for the first TCP
//                                 connection "tcp ORIGINAL-DESTINATION" (and sends "hello\n"),
//                                 for the first datagram "udp ORIGINAL-DESTINATION" (and answers
//                                 "pong\n" from a reply socket bound to that destination).
//                                 Exits after both, or after 20 s.
// The backend (and its nft context, owner of the tables) lives for the whole session.
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "helper/backend.hpp"
#include "helper/tproxy_socket.hpp"

using namespace sshuttle;
using namespace sshuttle::helper;

namespace {

void answer(const std::string& line) {
    std::cout << line << std::endl;  // flush: the test reads answers as they come
}

void answer_error(const Error& error) {
    std::string message = error.to_string();
    for (char& c : message)
        if (c == '\n') c = ' ';
    answer(std::string("error ") + errc_name(error.code) + ": " + message);
}

void answer_names(const Result<std::vector<std::string>>& names) {
    if (!names) return answer_error(names.error());
    std::string line = "names";
    for (const auto& n : *names) line += " " + n;
    answer(line);
}

int session() {
    auto backend = make_system_backend();
    if (!backend) {
        answer_error(backend.error());
        return 1;
    }
    std::string line;
    for (int count = 0; count < 10000 && std::getline(std::cin, line); ++count) {
        std::string command = line.substr(0, line.find(' '));
        std::string rest = line.size() > command.size() ? line.substr(command.size() + 1) : "";
        if (command == "apply") {
            auto json = nlohmann::json::parse(rest, nullptr, false);
            if (json.is_discarded()) {
                answer("error InvalidArgument: not JSON");
                continue;
            }
            auto spec = spec_from_json(json);
            if (!spec) {
                answer_error(spec.error());
                continue;
            }
            auto r = (*backend)->apply(*spec);
            r ? answer("ok") : answer_error(r.error());
        } else if (command == "remove") {
            auto r = (*backend)->remove(rest);
            r ? answer("ok") : answer_error(r.error());
        } else if (command == "installed") {
            answer_names((*backend)->installed());
        } else if (command == "sweep") {
            answer_names((*backend)->sweep());
        } else if (command == "quit") {
            break;
        } else {
            answer("error InvalidArgument: unknown command");
        }
    }
    return 0;
}

std::string endpoint(const sockaddr* sa, socklen_t len) {
    auto ep = from_sockaddr(sa, len);
    if (!ep) return "?";
    return ep->first.to_string() + ":" + std::to_string(ep->second);
}

int tproxy_serve(const std::string& address_text, const std::string& port_text) {
    auto address = IpAddress::parse(address_text);
    int port = std::atoi(port_text.c_str());
    if (!address || port <= 0 || port > 65535) {
        std::cerr << "bad address or port\n";
        return 2;
    }
    auto p = static_cast<std::uint16_t>(port);
    auto tcp = make_transparent_socket(TransparentKind::TcpListener, *address, p);
    auto udp = make_transparent_socket(TransparentKind::UdpListener, *address, p);
    if (!tcp || !udp) {
        answer_error(!tcp ? tcp.error() : udp.error());
        return 1;
    }
    answer("listening");
    bool tcp_done = false, udp_done = false;
    for (int round = 0; round < 200 && !(tcp_done && udp_done); ++round) {
        pollfd fds[2] = {{tcp->get(), POLLIN, 0}, {udp->get(), POLLIN, 0}};
        if (poll(fds, 2, 100) <= 0) continue;
        if (!tcp_done && (fds[0].revents & POLLIN)) {
            UniqueFd conn(accept4(tcp->get(), nullptr, nullptr, SOCK_CLOEXEC));
            if (!conn) continue;
            sockaddr_storage local{};
            socklen_t len = sizeof local;
            getsockname(conn.get(), reinterpret_cast<sockaddr*>(&local), &len);
            answer("tcp " + endpoint(reinterpret_cast<sockaddr*>(&local), len));
            (void)!write(conn.get(), "hello\n", 6);
            tcp_done = true;
        }
        if (!udp_done && (fds[1].revents & POLLIN)) {
            char data[512];
            char control[256];
            sockaddr_storage peer{};
            iovec iov{data, sizeof data};
            msghdr msg{};
            msg.msg_name = &peer;
            msg.msg_namelen = sizeof peer;
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            if (recvmsg(udp->get(), &msg, 0) < 0) continue;
            std::optional<std::pair<IpAddress, std::uint16_t>> original;
            for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
                if ((c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) ||
                    (c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_ORIGDSTADDR)) {
                    sockaddr_storage dst{};
                    std::size_t n = std::min<std::size_t>(c->cmsg_len - CMSG_LEN(0), sizeof dst);
                    std::memcpy(&dst, CMSG_DATA(c), n);
                    auto ep = from_sockaddr(reinterpret_cast<sockaddr*>(&dst),
                                            static_cast<socklen_t>(n));
                    if (ep) original = *ep;
                }
            }
            if (!original) {
                answer("udp without original destination");
                continue;
            }
            answer("udp " + original->first.to_string() + ":" + std::to_string(original->second));
            auto reply = make_transparent_socket(TransparentKind::UdpReply, original->first,
                                                 original->second);
            if (!reply) {
                answer_error(reply.error());
            } else {
                sendto(reply->get(), "pong\n", 5, 0, reinterpret_cast<sockaddr*>(&peer),
                       msg.msg_namelen);
            }
            udp_done = true;
        }
    }
    return tcp_done && udp_done ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
    std::string mode = argc >= 2 ? argv[1] : "";
    if (mode == "status") {
        for (const auto& status : method_status())
            std::cout << method_name(status.method)
                      << (status.available ? " ok" : " unavailable: " + status.reason) << "\n";
        return 0;
    }
    if (mode == "session") return session();
    if (argc == 4 && std::string(argv[1]) == "tproxy-serve") return tproxy_serve(argv[2], argv[3]);
    std::cerr << "usage: rules_tool status | session | tproxy-serve ADDR PORT\n";
    return 2;
}

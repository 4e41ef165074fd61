// DnsProxy: the local UDP listener that captured DNS queries are redirected to.
//
// Each query becomes one mux channel: DNS_REQ with the raw datagram; the DNS_RESPONSE on the same
// channel goes back to the asker from the same socket (conntrack un-NATs it). Queries without an
// answer are forgotten after kQueryTimeout; the asker's resolver retries on its own.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>
#include <vector>

#include "common/ip_address.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"
#include "daemon/mux.hpp"

namespace sshuttle::daemon {

class DnsProxy {
public:
    // Microseconds a query waits for its answer (sshuttle: 30 s).
    static constexpr std::uint64_t kQueryTimeout = 30'000'000;
    // Bytes: the largest datagram we accept and relay (sshuttle truncates at 4096).
    static constexpr std::size_t kMaxDatagram = 65535;

    DnsProxy(sd_event* event, Mux& mux);
    ~DnsProxy();
    // Adds a socket bound to address:port (bind_udp below).
    [[nodiscard]] Result<void> add_socket(UniqueFd socket);
    [[nodiscard]] Result<void> start();
    std::uint64_t queries() const noexcept { return queries_; }

    // Called by a query's channel.
    void answer(std::uint16_t id, int socket, const SockAddr& asker, proto::ByteView reply);

private:
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata) noexcept;
    static int on_timer(sd_event_source* s, uint64_t usec, void* userdata) noexcept;
    void read_queries(int fd);
    void expire(std::uint64_t now);

    sd_event* event_;
    Mux& mux_;
    std::vector<UniqueFd> sockets_;
    std::vector<EventSourcePtr> sources_;
    EventSourcePtr timer_;
    std::unordered_map<std::uint16_t, std::uint64_t> deadlines_;  // channel -> usec
    std::vector<std::uint8_t> buffer_;
    std::uint64_t queries_ = 0;
};

// A bound non-blocking UDP socket (IPv6: v6-only).
[[nodiscard]] Result<UniqueFd> bind_udp(const IpAddress& ip, std::uint16_t port);

}  // namespace sshuttle::daemon

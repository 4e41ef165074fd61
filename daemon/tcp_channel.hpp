// TcpChannel: one redirected TCP connection, carried on one mux channel.
//
// Half-close follows sshuttle (sshuttle-upstream.md §2.9): local EOF -> TCP_EOF; TCP_EOF from the
// peer -> shutdown(SHUT_WR) once buffered data is written; a local write failure -> TCP_STOP_SENDING
// and the buffer is dropped; TCP_STOP_SENDING -> stop reading the local socket. Read errors count
// as EOF in both directions. The channel ends when both directions are done; there is no close
// frame. With the connect-error extension a failed remote connect resets the local connection.
//
// Memory: data from the peer waits in pending_ only when the local socket does not take it at once.
// With the credit extension the peer cannot send more than the window; with a stock peer the
// channel holds the whole mux input above kMaxPending (head-of-line blocking, but bounded).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "common/ip_address.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"
#include "daemon/mux.hpp"

namespace sshuttle::daemon {

class TcpChannel final : public Channel, private SocketPoller::Client {
public:
    // Bytes buffered for a slow local reader before a stock peer's stream is held.
    static constexpr std::size_t kMaxPending = 1024 * 1024;

    TcpChannel(Mux& mux, std::uint16_t id, UniqueFd socket);
    // Registers the socket with the mux's poller.
    [[nodiscard]] Result<void> start();
    // Called once with what the remote connect did, as far as the peer shows it: true on the
    // first TCP_DATA (or TCP_EOF when the connect-error extension would have said otherwise),
    // false on CONNECT_ERROR. A stock peer's EOF without data says nothing: no call.
    void on_outcome(std::function<void(bool connected)> fn) { on_outcome_ = std::move(fn); }

    void on_frame(proto::Command command, proto::ByteView payload) override;
    void on_can_send() override;
    void on_batch_end() override;

    // TCP_DATA of at least this size goes to the socket at once when nothing is queued; smaller
    // pieces are gathered until the end of the stream read that brought them (one send() for
    // a stock server's run of 2 KB frames instead of one each).
    static constexpr std::size_t kDirectWrite = 16 * 1024;

private:
    void on_poll(std::uint32_t revents) override;
    void read_local();
    void write_local();
    void on_data(proto::ByteView payload);
    void on_connect_error(proto::ByteView payload);
    // Local write side failed: tell the peer to stop, drop what we hold.
    void stop_writing();
    void finish_read();
    void finish_write();
    void maybe_close();
    void update_events();

    void report_outcome(bool connected);

    Mux& mux_;
    std::uint16_t id_;
    UniqueFd fd_;
    SocketPoller::Registration poll_;  // declared after fd_: removed before the close
    std::vector<std::uint8_t> pending_;
    std::size_t pending_pos_ = 0;
    bool want_read_ = true;     // false while the mux cannot take our data
    bool read_done_ = false;    // no more reading from the local socket
    bool write_done_ = false;   // no more writing to the local socket
    bool eof_received_ = false; // peer sent TCP_EOF; shut down once pending_ is written
    bool holding_input_ = false;
    bool reset_ = false;        // close with RST (remote connect failed)
    bool closed_ = false;
    bool batched_ = false;      // waiting for on_batch_end() to write pending_
    std::function<void(bool)> on_outcome_;
};

// The TCP_CONNECT payload for a destination: "2,<ip>,<port>" or "10,<ip>,<port>" (Linux AF
// values, which the stock server maps: 2 is IPv4, anything else IPv6).
std::string tcp_connect_payload(const IpAddress& ip, std::uint16_t port);

// The agent path for one captured connection: a mux channel with TCP_CONNECT to ip:port, the
// socket handed to a TcpChannel. False (and the socket closed) when no channel id is free or
// the socket cannot be watched.
bool open_agent_channel(Mux& mux, UniqueFd socket, const IpAddress& ip, std::uint16_t port,
                        std::function<void(bool connected)> on_outcome = {});

// Closes a connection so that the application sees a reset (RST), not an end of file.
void reset_connection(UniqueFd socket);

}  // namespace sshuttle::daemon

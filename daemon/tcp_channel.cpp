#include "daemon/tcp_channel.hpp"

#include <sys/socket.h>

#include <cstring>

#include <spdlog/spdlog.h>

namespace sshuttle::daemon {

using proto::Command;

TcpChannel::TcpChannel(Mux& mux, std::uint16_t id, UniqueFd socket)
    : mux_(mux), id_(id), fd_(std::move(socket)) {}

Result<void> TcpChannel::start() {
    auto registration = mux_.poller().add(fd_.get(), this);
    if (!registration) return registration.error();
    poll_ = std::move(*registration);
    if (auto r = poll_.set_events(EPOLLIN); !r) return r.error().with_context("tcp channel");
    update_events();
    return ok();
}

void TcpChannel::on_poll(std::uint32_t revents) {
    if (closed_) return;
    if (revents & EPOLLOUT) write_local();
    if (closed_) return;
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (!read_done_ && want_read_) {
            read_local();
        } else if ((revents & (EPOLLHUP | EPOLLERR)) && !(revents & EPOLLOUT)) {
            // Nothing to read for now and the socket is dead: stop writing to it.
            if (!write_done_) stop_writing();
        }
    }
    if (!closed_) update_events();
}

void TcpChannel::read_local() {
    // A few reads per wakeup, then back to the loop so other channels get their turn.
    for (int round = 0; round < 4 && !read_done_; ++round) {
        std::size_t allowed = mux_.may_send_data(id_);
        if (allowed == 0) {
            // No data may go now, but an end of file behind the data already taken costs only
            // a TCP_EOF, which is never held back: forward it rather than park a half-closed
            // socket (in CLOSE-WAIT) until the output drains.
            char c;
            if (::recv(fd_.get(), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0) {
                finish_read();
                return;
            }
            want_read_ = false;
            mux_.wait_for_send(id_);
            return;
        }
        auto got = mux_.send_data_from(id_, fd_.get(), allowed);
        if (!got) {
            if (got.error().sys_errno == EAGAIN || got.error().sys_errno == EINTR) return;
            spdlog::debug("channel {}: local read failed: {}", id_, got.error().to_string());
            finish_read();
            if (!write_done_) stop_writing();
            return;
        }
        if (*got == 0) {
            finish_read();
            return;
        }
        if (*got < allowed) return;  // the socket is drained
    }
}

void TcpChannel::finish_read() {
    if (read_done_) return;
    read_done_ = true;
    mux_.send(id_, Command::TcpEof);
    maybe_close();
}

void TcpChannel::on_can_send() {
    if (closed_) return;
    want_read_ = true;
    // Read now rather than on the next poll: the mux goes on waking waiters only while its
    // buffer has room, which it can tell only if we take our share at once.
    if (!read_done_) read_local();
    if (!closed_) update_events();
}

void TcpChannel::report_outcome(bool connected) {
    auto fn = std::move(on_outcome_);
    on_outcome_ = nullptr;
    fn(connected);
}

void TcpChannel::on_frame(Command command, proto::ByteView payload) {
    if (closed_) return;
    if (on_outcome_) {
        if (command == Command::TcpData)
            report_outcome(true);
        else if (command == Command::ConnectError)
            report_outcome(false);
        else if (command == Command::TcpEof && mux_.connect_error_enabled())
            report_outcome(true);
    }
    switch (command) {
        case Command::TcpData: on_data(payload); break;
        case Command::TcpEof:
            eof_received_ = true;
            if (pending_pos_ == pending_.size()) finish_write();
            break;
        case Command::TcpStopSending:
            if (!read_done_) {
                read_done_ = true;
                ::shutdown(fd_.get(), SHUT_RD);
                maybe_close();
            }
            break;
        case Command::ConnectError: on_connect_error(payload); break;
        default:
            spdlog::debug("channel {}: ignoring {}", id_, proto::command_name(command));
            break;
    }
    if (!closed_) update_events();
}

void TcpChannel::on_data(proto::ByteView payload) {
    if (!mux_.accept_incoming(id_, payload.size())) {
        spdlog::warn("channel {}: peer sent more than its window; closing the channel", id_);
        reset_ = true;
        read_done_ = write_done_ = true;
        mux_.send(id_, Command::TcpEof);
        mux_.send(id_, Command::TcpStopSending);
        maybe_close();
        return;
    }
    if (write_done_) {
        mux_.consumed(id_, payload.size());  // dropped, but the peer's window must not stall
        return;
    }
    std::size_t written = 0;
    if (pending_pos_ == pending_.size() && !batched_ && payload.size() >= kDirectWrite) {
        ssize_t n = ::send(fd_.get(), payload.data(), payload.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            spdlog::debug("channel {}: local write failed: {}", id_, std::strerror(errno));
            mux_.consumed(id_, payload.size());
            stop_writing();
            return;
        }
        written = n > 0 ? static_cast<std::size_t>(n) : 0;
        mux_.consumed(id_, written);
    }
    if (written < payload.size()) {
        const bool was_empty = pending_pos_ == pending_.size();
        pending_.insert(pending_.end(), payload.begin() + static_cast<std::ptrdiff_t>(written),
                        payload.end());
        // Gathered small pieces are written at the end of this read; a socket that was
        // already full waits for EPOLLOUT as before.
        if (was_empty && !batched_) {
            batched_ = true;
            mux_.defer_to_batch_end(id_);
        }
        if (!mux_.credit_enabled() && !holding_input_ && pending_.size() - pending_pos_ > kMaxPending) {
            holding_input_ = true;
            mux_.hold_input();
        }
    }
}

void TcpChannel::write_local() {
    while (pending_pos_ < pending_.size()) {
        ssize_t n = ::send(fd_.get(), pending_.data() + pending_pos_, pending_.size() - pending_pos_,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            spdlog::debug("channel {}: local write failed: {}", id_, std::strerror(errno));
            mux_.consumed(id_, pending_.size() - pending_pos_);
            stop_writing();
            return;
        }
        pending_pos_ += static_cast<std::size_t>(n);
        mux_.consumed(id_, static_cast<std::size_t>(n));
    }
    std::size_t left = pending_.size() - pending_pos_;
    if (left == 0) {
        pending_.clear();
        pending_pos_ = 0;
        if (eof_received_) finish_write();
    } else if (pending_pos_ > pending_.size() / 2) {
        pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(pending_pos_));
        pending_pos_ = 0;
    }
    if (holding_input_ && left < kMaxPending / 2) {
        holding_input_ = false;
        mux_.release_input();
    }
}

void TcpChannel::on_batch_end() {
    batched_ = false;
    if (closed_ || write_done_) return;
    write_local();
    if (!closed_) update_events();
}

void TcpChannel::on_connect_error(proto::ByteView payload) {
    spdlog::info("channel {}: remote connect failed: {}", id_,
                 proto::escape_bytes(payload, 128));
    reset_ = true;
}

void TcpChannel::stop_writing() {
    if (write_done_) return;
    write_done_ = true;
    pending_.clear();
    pending_pos_ = 0;
    mux_.send(id_, Command::TcpStopSending);
    maybe_close();
}

void TcpChannel::finish_write() {
    if (write_done_) return;
    write_done_ = true;
    // After CONNECT_ERROR the connection ends with a reset in maybe_close(): a FIN first would
    // let the application read a clean end of file (curl's "empty reply") before the RST.
    if (!reset_) ::shutdown(fd_.get(), SHUT_WR);
    maybe_close();
}

void TcpChannel::maybe_close() {
    if (closed_ || !read_done_ || !write_done_) return;
    closed_ = true;
    if (holding_input_) {
        holding_input_ = false;
        mux_.release_input();
    }
    poll_.reset();
    if (reset_)
        reset_connection(std::move(fd_));  // RST, so the application sees the failure
    else
        fd_.reset();
    mux_.release(id_);  // destroys this object later, outside our callback
}

void TcpChannel::update_events() {
    if (!poll_) return;
    std::uint32_t events = 0;
    if (!read_done_ && want_read_) events |= EPOLLIN;
    // While batched, on_batch_end() writes first; EPOLLOUT only for what it could not.
    if (pending_pos_ < pending_.size() && !batched_) events |= EPOLLOUT;
    // No events: out of the poller's epoll set, so a hung-up socket cannot keep it busy.
    if (auto r = poll_.set_events(events); !r)
        spdlog::warn("channel {}: {}", id_, r.error().to_string());
}

bool open_agent_channel(Mux& mux, UniqueFd socket, const IpAddress& ip, std::uint16_t port,
                        std::function<void(bool connected)> on_outcome) {
    std::uint16_t id = mux.allocate_channel();
    if (id == 0) {
        spdlog::warn("too many open channels. Discarded connection.");
        return false;
    }
    auto channel = std::make_unique<TcpChannel>(mux, id, std::move(socket));
    if (auto r = channel->start(); !r) {
        spdlog::warn("dropping a connection: {}", r.error().to_string());
        return false;
    }
    if (on_outcome) channel->on_outcome(std::move(on_outcome));
    spdlog::debug("channel {}: connect to {}:{}", id, ip.to_string(), port);
    std::string payload = tcp_connect_payload(ip, port);
    mux.send(id, Command::TcpConnect, proto::as_bytes(payload));
    mux.attach(id, std::move(channel));
    return true;
}

std::string tcp_connect_payload(const IpAddress& ip, std::uint16_t port) {
    return (ip.is_v4() ? "2," : "10,") + ip.to_string() + "," + std::to_string(port);
}

void reset_connection(UniqueFd socket) {
    if (!socket) return;
    linger lg{1, 0};
    ::setsockopt(socket.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    socket.reset();
}

}  // namespace sshuttle::daemon

#include "daemon/mux.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>

namespace sshuttle::daemon {

using proto::Command;

namespace {

constexpr std::uint16_t kControl = proto::kControlChannel;

// Commands that open a channel (or close a UDP one): client -> server only (PROTOCOL.md 1.4).
bool opens_channel(Command c) {
    return c == Command::TcpConnect || c == Command::DnsReq || c == Command::UdpOpen ||
           c == Command::UdpClose;
}

std::uint32_t read_be32(proto::ByteView p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) |
           (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

}  // namespace

Mux::Mux(sd_event* event, UniqueFd stream, MuxOptions options, Callbacks callbacks)
    : event_(event),
      stream_(std::move(stream)),
      options_(options),
      callbacks_(std::move(callbacks)),
      poller_(event),
      decoder_(2 * kReadChunk),
      channels_(65536) {}

Mux::~Mux() = default;

Result<void> Mux::start(std::string bootstrap) {
    out_.clear();
    out_.append(proto::as_bytes(bootstrap));
    if (auto r = poller_.start(kChannelPriority); !r) return r;
    sd_event_source* source = nullptr;
    int r = sd_event_add_io(event_, &source, stream_.get(), EPOLLIN, &Mux::on_io, this);
    if (r < 0) return Error::from_errno("sd_event_add_io(ssh stream)", -r);
    io_source_.reset(source);
    // sd-event dispatches one ready source per iteration. At the channels' priority the stream
    // would be written after every channel's read, one frame per write() (and one wakeup of the
    // peer's loop per frame); below them, it writes what all ready channels queued at once.
    sd_event_source_set_priority(source, kStreamPriority);
    r = sd_event_add_defer(event_, &source, &Mux::on_cleanup, this);
    if (r < 0) return Error::from_errno("sd_event_add_defer", -r);
    cleanup_source_.reset(source);
    sd_event_source_set_enabled(source, SD_EVENT_OFF);
    r = sd_event_add_defer(event_, &source, &Mux::on_flush, this);
    if (r < 0) return Error::from_errno("sd_event_add_defer", -r);
    flush_source_.reset(source);
    sd_event_source_set_priority(source, kStreamPriority + 1);
    sd_event_source_set_enabled(source, SD_EVENT_OFF);
    update_events();
    return ok();
}

int Mux::on_io(sd_event_source*, int, uint32_t revents, void* userdata) noexcept {
    static_cast<Mux*>(userdata)->handle_io(revents);
    return 0;
}

int Mux::on_flush(sd_event_source*, void* userdata) noexcept {
    auto* self = static_cast<Mux*>(userdata);
    if (self->failed_) return 0;
    // fail() may destroy the Mux: touch nothing after it.
    if (auto r = self->write_stream(); !r) return self->fail(r.error()), 0;
    self->update_events();
    return 0;
}

int Mux::on_cleanup(sd_event_source*, void* userdata) noexcept {
    auto* self = static_cast<Mux*>(userdata);
    self->graveyard_.clear();
    // Frames left in the decoder while input was held are delivered here, outside any
    // channel's callback, so a channel never re-enters itself.
    if (!self->failed_ && self->synced_ && self->input_holds_ == 0 && self->decoder_.buffered() > 0) {
        // fail() may destroy the Mux (the owner's on_failure tears the session down): touch
        // nothing after it.
        if (auto r = self->process_frames(); !r) return self->fail(r.error()), 0;
        self->finish_batch();
    }
    if (!self->failed_) self->update_events();
    return 0;
}

void Mux::schedule_deferred() {
    if (cleanup_source_) sd_event_source_set_enabled(cleanup_source_.get(), SD_EVENT_ONESHOT);
}

void Mux::handle_io(uint32_t revents) {
    if (failed_) return;
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (auto r = read_stream(); !r) return fail(r.error());
    }
    if (failed_) return;
    if (revents & EPOLLOUT) {
        if (auto r = write_stream(); !r) return fail(r.error());
    }
    update_events();
}

Result<void> Mux::read_stream() {
    // A bounded number of reads per wakeup keeps the loop fair to the local sockets.
    for (int round = 0; round < 4 && input_holds_ == 0 && !failed_; ++round) {
        std::span<std::uint8_t> area = decoder_.prepare();
        if (area.empty()) break;
        if (area.size() > kReadChunk) area = area.first(kReadChunk);
        ssize_t n = ::read(stream_.get(), area.data(), area.size());
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            return Error::from_errno("read from ssh");
        }
        if (n == 0) {
            if (!synced_) return sync_.eof_error();
            return Error(Errc::Io, "the ssh connection closed");
        }
        bytes_in_ += static_cast<std::uint64_t>(n);
        std::size_t got = static_cast<std::size_t>(n);
        if (!synced_) {
            auto progress = sync_.feed(area.first(got));
            if (!progress) return progress.error();
            if (!progress->done) continue;  // all of it was banner or header: nothing to commit
            synced_ = true;
            // The frames that followed the header in this read move to the front of the area.
            std::size_t rest = got - progress->consumed;
            std::memmove(area.data(), area.data() + progress->consumed, rest);
            decoder_.commit(rest);
            after_handshake();
        } else {
            decoder_.commit(got);
        }
        auto processed = process_frames();
        if (!processed) return processed;
        finish_batch();
        if (got < area.size()) break;  // drained the socket
    }
    return ok();
}

void Mux::defer_to_batch_end(std::uint16_t channel) {
    ChannelState& st = channels_[channel];
    if (st.in_batch) return;
    st.in_batch = true;
    batch_.push_back(channel);
}

void Mux::finish_batch() {
    std::vector<std::uint16_t> batch;
    batch.swap(batch_);
    for (std::uint16_t id : batch) {
        ChannelState& st = channels_[id];
        if (!st.in_batch) continue;  // released (and maybe reused) meanwhile
        st.in_batch = false;
        if (failed_) return;
        if (st.channel) st.channel->on_batch_end();
    }
}

void Mux::after_handshake() {
    spdlog::debug("sync header received after {} bytes of remote output", sync_.garbage());
    send(kControl, Command::Ping, proto::as_bytes("chicken"));
    send(kControl, Command::Ping, proto::as_bytes(kExtensionOffer));
}

Result<void> Mux::process_frames() {
    while (!failed_ && input_holds_ == 0) {
        auto frame = decoder_.next();
        if (!frame) return frame.error();
        if (!*frame) return ok();
        const proto::FrameView& f = **frame;
        // The peer is untrusted: a command on the wrong kind of channel, or one that only the
        // client may send, means the stream is not what we think it is.
        if (auto r = proto::check_channel(f.command, f.channel); !r) return r.error();
        if (opens_channel(f.command))
            return Error(Errc::Protocol, std::string(proto::command_name(f.command)) + " on channel " +
                                             std::to_string(f.channel) +
                                             " from the server: only the client opens channels");
        if (f.channel == kControl) {
            if (auto r = handle_control(f); !r) return r;
            continue;
        }
        ChannelState& st = channels_[f.channel];
        if (!st.channel) {
            spdlog::trace("closed channel {} got {}", f.channel, proto::command_name(f.command));
            continue;
        }
        if (f.command == Command::Window) {
            // Only our agent sends WINDOW, and only after agreeing to the credit extension.
            if (!credit_) return Error(Errc::Protocol, "WINDOW without the credit extension");
            if (f.payload.size() != 4) return Error(Errc::Protocol, "WINDOW payload is not 4 bytes");
            std::uint32_t inc = read_be32(f.payload);
            st.send_credit = std::min<std::uint64_t>(std::uint64_t{st.send_credit} + inc, 0x7fffffff);
            if (st.credit_wait && st.send_credit > 0) {
                // Its turn comes after the channels already waiting for room in the output.
                st.credit_wait = false;
                waiters_.push_back(f.channel);
                wake_waiters();
            }
            continue;
        }
        st.channel->on_frame(f.command, f.payload);
    }
    return ok();
}

Result<void> Mux::handle_control(const proto::FrameView& f) {
    switch (f.command) {
        case Command::Ping:
            send(kControl, Command::Pong, f.payload);
            return ok();
        case Command::Pong: {
            bool was_full = too_full_;
            too_full_ = false;
            fullness_ = 0;
            std::string_view text = proto::as_chars(f.payload);
            if (!ready_ && (text == kExtensionOffer || text.rfind(kExtensionAcceptPrefix, 0) == 0)) {
                if (text != kExtensionOffer) {
                    credit_ = text.find(" credit") != std::string_view::npos;
                    connect_error_ = text.find(" connect-error") != std::string_view::npos;
                }
                ready_ = true;
                spdlog::info("remote side ready ({})",
                             credit_ ? "our agent: per-channel flow control"
                                     : "stock sshuttle server: latency control");
                if (callbacks_.on_ready) callbacks_.on_ready();
            }
            if (was_full) wake_waiters();
            return ok();
        }
        case Command::Routes:
            if (callbacks_.on_routes) callbacks_.on_routes(proto::as_chars(f.payload));
            return ok();
        case Command::HostList:
            if (callbacks_.on_host_list)
                callbacks_.on_host_list(proto::as_chars(f.payload));
            else
                spdlog::debug("ignoring HOST_LIST ({} bytes): -H is off", f.payload.size());
            return ok();
        case Command::Exit:
            return Error(Errc::Io, "the remote side sent EXIT");
        default:
            return Error(Errc::Protocol, "unexpected " + std::string(proto::command_name(f.command)) +
                                             " on the control channel");
    }
}

Result<void> Mux::write_stream() {
    while (!out_.empty()) {
        ssize_t n = ::write(stream_.get(), out_.data(), out_.size());
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) break;
            return Error::from_errno("write to ssh");
        }
        out_.consume(static_cast<std::size_t>(n));
        bytes_out_ += static_cast<std::uint64_t>(n);
    }
    write_blocked_ = !out_.empty();
    if (out_.size() < kOutputHighWater / 2 && !waiters_.empty()) wake_waiters();
    return ok();
}

void Mux::update_events() {
    if (!io_source_ || failed_) return;
    std::uint32_t events = 0;
    if (input_holds_ == 0) events |= EPOLLIN;
    if (!out_.empty()) {
        if (write_blocked_)
            events |= EPOLLOUT;
        else if (flush_source_)
            sd_event_source_set_enabled(flush_source_.get(), SD_EVENT_ONESHOT);
    }
    sd_event_source_set_io_events(io_source_.get(), events);
}

void Mux::fail(Error error) {
    if (failed_) return;
    failed_ = true;
    io_source_.reset();
    if (callbacks_.on_failure) callbacks_.on_failure(error);
}

std::uint16_t Mux::allocate_channel() {
    for (int i = 0; i < kAllocTries; ++i) {
        next_id_ = next_id_ >= options_.max_channel ? 1 : static_cast<std::uint16_t>(next_id_ + 1);
        if (!channels_[next_id_].channel) return next_id_;
    }
    return 0;
}

void Mux::attach(std::uint16_t id, std::unique_ptr<Channel> channel) {
    ChannelState& st = channels_[id];
    st = ChannelState{};
    st.channel = std::move(channel);
    st.send_credit = kInitialCredit;
    st.recv_window = kInitialCredit;
    ++live_channels_;
}

void Mux::release(std::uint16_t id) {
    ChannelState& st = channels_[id];
    if (!st.channel) return;
    if (st.waiting) --waiting_channels_;  // a stale entry in waiters_ is skipped later
    graveyard_.push_back(std::move(st.channel));
    st = ChannelState{};
    --live_channels_;
    schedule_deferred();
}

void Mux::queued(std::size_t frame_bytes) {
    if (!credit_ && options_.latency_control) {
        fullness_ += frame_bytes;
        if (!too_full_ && fullness_ > options_.latency_buffer_size) {
            too_full_ = true;
            std::uint8_t header[proto::kHeaderSize];
            proto::write_header(std::span<std::uint8_t, proto::kHeaderSize>(header), kControl,
                                Command::Ping, 6);
            out_.append(header);
            out_.append(proto::as_bytes("rttest"));
        }
    }
    update_events();
}

void Mux::send(std::uint16_t channel, Command command, proto::ByteView payload) {
    if (failed_) return;
    // Payloads we build ourselves are bounded well below the limit; anything else is a bug.
    if (payload.size() > proto::kMaxPayload)
        return fail(Error(Errc::TooLarge, std::string(proto::command_name(command)) +
                                              " payload of " + std::to_string(payload.size()) +
                                              " bytes does not fit a mux frame (at most 65535)")
                        .with_context("internal"));
    std::span<std::uint8_t> area = out_.prepare(proto::kHeaderSize + payload.size());
    proto::write_header(area.first<proto::kHeaderSize>(), channel, command,
                        static_cast<std::uint16_t>(payload.size()));
    if (!payload.empty())
        std::memcpy(area.data() + proto::kHeaderSize, payload.data(), payload.size());
    out_.commit(area.size());
    queued(proto::kHeaderSize + payload.size());
}

std::size_t Mux::may_send_data(std::uint16_t channel) const noexcept {
    if (failed_ || !ready_) return 0;
    if (out_.size() >= kOutputHighWater) return 0;
    if (credit_) return std::min<std::size_t>(channels_[channel].send_credit, proto::kMaxPayload);
    if (too_full_) return 0;
    return proto::kMaxPayload;
}

void Mux::wait_for_send(std::uint16_t channel) {
    ChannelState& st = channels_[channel];
    if (st.waiting || !st.channel) return;
    st.waiting = true;
    ++waiting_channels_;
    if (credit_ && st.send_credit == 0) {
        st.credit_wait = true;  // its own WINDOW queues it
        return;
    }
    waiters_.push_back(channel);
}

bool Mux::output_open() const noexcept {
    if (failed_ || !ready_) return false;
    if (out_.size() >= kOutputHighWater) return false;
    return credit_ || !too_full_;
}

void Mux::wake_waiters() {
    // Oldest first, and only while the output has room: each channel called back reads its
    // socket at once, so the pass ends as soon as the buffer is full again and the rest keep
    // their place. (Waking every waiter at once re-armed thousands of sockets that could not
    // send anyway, each costing a dispatch to be parked again: issue 10.)
    if (waking_) return;
    waking_ = true;
    // Channels queued again during this pass wait for the next one.
    for (std::size_t n = waiters_.size(); n > 0 && !waiters_.empty() && output_open(); --n) {
        std::uint16_t id = waiters_.front();
        waiters_.pop_front();
        ChannelState& st = channels_[id];
        // Released meanwhile (a stale entry), or already queued again after its WINDOW.
        if (!st.waiting || st.credit_wait || !st.channel) continue;
        if (may_send_data(id) == 0) {  // out of credit: its WINDOW queues it again
            st.credit_wait = true;
            continue;
        }
        st.waiting = false;
        --waiting_channels_;
        st.channel->on_can_send();
        if (failed_) break;
    }
    waking_ = false;
}

Result<std::size_t> Mux::send_data_from(std::uint16_t channel, int fd, std::size_t max_bytes) {
    // The frame is built in place: room for the header and a whole payload, of which only what
    // recv() returns is committed (the space is not zero-filled first).
    max_bytes = std::min(max_bytes, proto::kMaxPayload);
    std::span<std::uint8_t> area = out_.prepare(proto::kHeaderSize + max_bytes);
    ssize_t n = ::recv(fd, area.data() + proto::kHeaderSize, max_bytes, 0);
    int err = errno;
    if (n <= 0) {
        if (n == 0) return std::size_t{0};
        return Error::from_errno("recv", err);
    }
    proto::write_header(area.first<proto::kHeaderSize>(), channel, Command::TcpData,
                        static_cast<std::uint16_t>(n));
    out_.commit(proto::kHeaderSize + static_cast<std::size_t>(n));
    if (credit_) channels_[channel].send_credit -= static_cast<std::uint32_t>(n);
    queued(proto::kHeaderSize + static_cast<std::size_t>(n));
    return static_cast<std::size_t>(n);
}

bool Mux::accept_incoming(std::uint16_t channel, std::size_t bytes) {
    if (!credit_) return true;
    ChannelState& st = channels_[channel];
    if (bytes > st.recv_window) return false;
    st.recv_window -= static_cast<std::uint32_t>(bytes);
    return true;
}

void Mux::consumed(std::uint16_t channel, std::size_t bytes) {
    if (!credit_) return;
    ChannelState& st = channels_[channel];
    if (!st.channel) return;
    st.unacked += static_cast<std::uint32_t>(bytes);
    if (st.unacked < kInitialCredit / 2) return;
    std::uint8_t inc[4] = {static_cast<std::uint8_t>(st.unacked >> 24),
                           static_cast<std::uint8_t>(st.unacked >> 16),
                           static_cast<std::uint8_t>(st.unacked >> 8),
                           static_cast<std::uint8_t>(st.unacked)};
    st.recv_window += st.unacked;
    st.unacked = 0;
    send(channel, Command::Window, proto::ByteView(inc, 4));
}

void Mux::hold_input() {
    ++input_holds_;
    update_events();
}

void Mux::release_input() {
    // Frames may already be buffered in the decoder: the deferred pass delivers them without
    // waiting for more input.
    if (input_holds_ > 0 && --input_holds_ == 0) schedule_deferred();
}

}  // namespace sshuttle::daemon

// Mux: the daemon's end of the sshuttle mux over the ssh stream.
//
// Owns the stream socket (ssh's stdin+stdout), the frame decoder, the output buffer and the
// channel table. Before the sync header it only writes the bootstrap bytes and scans for the
// header; after it, it speaks frames: answers PINGs, negotiates our extensions
// (docs/EXTENSIONS.md), and dispatches channel frames to Channel objects.
//
// Flow control, all bounded:
//  * output: frames go into one buffer written with large write()s when the socket is writable.
//    Above kOutputHighWater channels stop reading their sockets until it drains (backpressure).
//    The channels that stopped wait in a queue; when the buffer has drained below half, they
//    are called back oldest first, each reading its socket at once, and only as long as the
//    buffer has room: a drain never re-arms thousands of sockets that cannot send anyway.
//  * stock peer: sshuttle's latency control (fullness > window -> PING "rttest", no TCP_DATA
//    until a PONG).
//  * our agent ("credit"): a 1 MiB window per channel and direction, returned with WINDOW frames.
//  * input: a channel whose local socket is slow may hold back the whole stream with hold_input()
//    (stock peer only; with credit the window already bounds it).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"
#include "daemon/output_buffer.hpp"
#include "daemon/socket_poller.hpp"
#include "proto/mux_decoder.hpp"
#include "proto/mux_frame.hpp"
#include "proto/sync_scanner.hpp"

namespace sshuttle::daemon {

class Mux;

// One multiplexed conversation (a TCP connection, a DNS query). Owned by the Mux's table.
class Channel {
public:
    virtual ~Channel() = default;
    // A frame for this channel (never channel 0).
    virtual void on_frame(proto::Command command, proto::ByteView payload) = 0;
    // The mux can take TCP_DATA from this channel again (after wait_for_send()). Called from
    // the mux's own callbacks, never from inside one of this channel's: the channel should read
    // now, so that the mux stops waking waiters once its buffer is full again.
    virtual void on_can_send() {}
    // The frames of one read from the stream have all been delivered (after defer_to_batch_end).
    virtual void on_batch_end() {}
};

struct MuxOptions {
    bool latency_control = true;
    std::size_t latency_buffer_size = 32768;  // bytes; sshuttle's default window
    std::uint16_t max_channel = 65535;        // --wrap
};

class Mux {
public:
    // Bytes of queued output above which channels stop reading their sockets.
    static constexpr std::size_t kOutputHighWater = 1024 * 1024;
    // Bytes per read of the stream: many frames per syscall.
    static constexpr std::size_t kReadChunk = 256 * 1024;
    // Bytes: the per-channel window of the credit extension (docs/EXTENSIONS.md).
    static constexpr std::uint32_t kInitialCredit = 1024 * 1024;
    // Consecutive busy ids tried before giving up on allocation (as sshuttle).
    static constexpr int kAllocTries = 1024;
    // sd-event priority of the stream: after the channels (SD_EVENT_PRIORITY_NORMAL = 0), so
    // one write() carries the frames of every channel that was ready in the same iteration.
    static constexpr std::int64_t kStreamPriority = 10;
    // sd-event priority of the channels' sockets (one source for all: SocketPoller).
    static constexpr std::int64_t kChannelPriority = SD_EVENT_PRIORITY_NORMAL;

    struct Callbacks {
        std::function<void()> on_ready;                 // sync header seen, extensions settled
        std::function<void(const Error&)> on_failure;   // stream broken or EOF: session over
        std::function<void(std::string_view)> on_routes;  // ROUTES payload (for auto-nets)
        std::function<void(std::string_view)> on_host_list;  // HOST_LIST payload (auto-hosts)
    };

    Mux(sd_event* event, UniqueFd stream, MuxOptions options, Callbacks callbacks);
    ~Mux();
    Mux(const Mux&) = delete;
    Mux& operator=(const Mux&) = delete;

    [[nodiscard]] Result<void> start(std::string bootstrap);

    bool ready() const noexcept { return ready_; }
    // Where channels register their sockets (started with the mux).
    SocketPoller& poller() noexcept { return poller_; }
    // The process on the other end has exited: read what it left in the stream now, so that a
    // failure it shows (EOF before the sync header, garbage) reaches on_failure before the
    // owner reports the exit status. May call on_failure (and so destroy nothing: the owner
    // must defer destruction, as Tunnel does).
    void drain() {
        if (!failed_) handle_io(EPOLLIN);
    }
    bool credit_enabled() const noexcept { return credit_; }
    bool connect_error_enabled() const noexcept { return connect_error_; }

    // A free channel id, or 0 when kAllocTries consecutive ids are busy.
    std::uint16_t allocate_channel();
    void attach(std::uint16_t id, std::unique_ptr<Channel> channel);
    // Removes the channel; its object is destroyed after the current callback returns.
    void release(std::uint16_t id);
    std::size_t channel_count() const noexcept { return live_channels_; }
    // Channels waiting for on_can_send().
    std::size_t waiting_count() const noexcept { return waiting_channels_; }

    // Queues a control or empty frame. Never throttled.
    void send(std::uint16_t channel, proto::Command command, proto::ByteView payload = {});

    // TCP data path. may_send_data() says whether TCP_DATA may be produced now and how many
    // bytes at most; when 0, call wait_for_send() to get on_can_send() later (in the order the
    // channels started waiting; with credit, a channel out of credit is called after its WINDOW).
    std::size_t may_send_data(std::uint16_t channel) const noexcept;
    void wait_for_send(std::uint16_t channel);
    // Reads up to max_bytes (at most kMaxPayload) from fd straight into a TCP_DATA frame, with
    // one recv() into the output buffer and no copy. Returns the byte count,
    // 0 on end of file, or an Io error (EAGAIN included: check sys_errno).
    [[nodiscard]] Result<std::size_t> send_data_from(std::uint16_t channel, int fd,
                                                     std::size_t max_bytes);
    // Credit bookkeeping for received data written out to the local socket.
    void consumed(std::uint16_t channel, std::size_t bytes);
    // Calls the channel's on_batch_end() once the frames of the current read are delivered, so
    // it can write what several small frames brought in one system call (a stock server sends
    // TCP_DATA in pieces of a few KB).
    void defer_to_batch_end(std::uint16_t channel);
    // Received TCP_DATA is checked against the window we granted; false is a protocol error.
    bool accept_incoming(std::uint16_t channel, std::size_t bytes);

    // Stops (hold) or resumes (release) reading the stream; counted.
    void hold_input();
    void release_input();

    std::uint64_t bytes_in() const noexcept { return bytes_in_; }
    std::uint64_t bytes_out() const noexcept { return bytes_out_; }

private:
    struct ChannelState {
        std::unique_ptr<Channel> channel;
        std::uint32_t send_credit = 0;      // bytes we may still send (credit extension)
        std::uint32_t recv_window = 0;      // bytes the peer may still send us
        std::uint32_t unacked = 0;          // bytes written locally since our last WINDOW
        bool waiting = false;               // in waiters_, or credit_wait
        bool credit_wait = false;           // waiting for its own WINDOW, not in waiters_
        bool in_batch = false;              // in batch_
    };

    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata) noexcept;
    static int on_cleanup(sd_event_source* s, void* userdata) noexcept;
    static int on_flush(sd_event_source* s, void* userdata) noexcept;

    void handle_io(uint32_t revents);
    Result<void> read_stream();
    Result<void> write_stream();
    Result<void> process_frames();
    void finish_batch();
    Result<void> handle_control(const proto::FrameView& frame);
    void after_handshake();
    void schedule_deferred();
    void queued(std::size_t frame_bytes);
    // No reason shared by all channels to hold TCP_DATA back (per-channel credit aside).
    bool output_open() const noexcept;
    void wake_waiters();
    void update_events();
    void fail(Error error);

    sd_event* event_;
    UniqueFd stream_;
    MuxOptions options_;
    Callbacks callbacks_;
    // Before channels_ and graveyard_: the channels' registrations go first.
    SocketPoller poller_;
    EventSourcePtr io_source_;
    EventSourcePtr cleanup_source_;
    // Writes what the channels queued once per loop turn, after them (lowest priority): no
    // EPOLLOUT round trip (two epoll_ctl and a wakeup per message) unless the stream is full.
    EventSourcePtr flush_source_;
    bool write_blocked_ = false;  // the last write left bytes: wait for EPOLLOUT

    proto::SyncScanner sync_;
    proto::FrameDecoder decoder_;
    OutputBuffer out_;  // queued bytes, written from the front
    std::vector<ChannelState> channels_;  // indexed by channel id, 65536 slots
    std::vector<std::uint16_t> batch_;  // channels waiting for on_batch_end()
    std::vector<std::unique_ptr<Channel>> graveyard_;
    std::deque<std::uint16_t> waiters_;  // oldest first
    std::size_t waiting_channels_ = 0;
    bool waking_ = false;            // in wake_waiters(): no nested pass
    std::size_t live_channels_ = 0;
    std::uint16_t next_id_ = 0;

    bool synced_ = false;
    bool ready_ = false;
    bool failed_ = false;
    bool credit_ = false;
    bool connect_error_ = false;
    bool too_full_ = false;          // latency control: waiting for a PONG
    std::size_t fullness_ = 0;       // bytes queued since the last PONG
    int input_holds_ = 0;
    std::uint64_t bytes_in_ = 0;
    std::uint64_t bytes_out_ = 0;
};

// The extension offer and the answer our agent gives (docs/EXTENSIONS.md).
inline constexpr std::string_view kExtensionOffer = "sshuttle-ext1 credit connect-error";
inline constexpr std::string_view kExtensionAcceptPrefix = "sshuttle-ext1-ok";

}  // namespace sshuttle::daemon

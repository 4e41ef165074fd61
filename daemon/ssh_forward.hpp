// SshForwarder: hands captured TCP connections to ssh ControlMasters, so that ssh and sshd move
// their bytes exactly as for `ssh -L` and sshuttled never touches a payload byte.
//
// For each connection: connect to a master's control socket, send MUX_MSG_HELLO and
// MUX_C_NEW_STDIO_FWD (proto/ssh_mux.hpp) for the original destination, then the accepted socket
// twice (stdin and stdout of the forward) with SCM_RIGHTS. Everything is pipelined in one loop
// turn on a fresh socket, so no call blocks. The master answers once the server confirmed the
// channel (one round trip, as for ssh -L):
//  * MUX_S_SESSION_OPENED: our copy of the socket is closed; ssh owns the connection. The control
//    connection stays open: the master tears the forward down if it closes, and closes it itself
//    when the channel ends. That EOF is how we count channels.
//  * MUX_S_FAILURE / MUX_S_PERMISSION_DENIED, EOF, a malformed packet: the socket comes back to
//    the caller (on_failed), still untouched (ssh never read from it), to retry another way or
//    reset.
//  * no answer within the open timeout: the caller gets it back as a Timeout.
//
// One forward is one Forward object with an explicit state (ForwardState) and a pure transition
// function, so the lifecycle is testable without sockets.
//
// Limits: at most kMaxOpening opens in flight per master (the master reads control connections
// one loop turn at a time and its listen backlog is 64); each open forward costs the master three
// descriptors (two passed, one control), so a master takes new forwards only while
// 3 * forwards stays under its budget (the descriptor limit it inherited from us), and at most
// kDefaultMaxChannels (ssh's loop slows with every channel it holds).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"

namespace sshuttle::daemon {

enum class ForwardState {
    Requested,  // request and descriptors sent, waiting for the master's reply
    Open,       // MUX_S_SESSION_OPENED: ssh owns the connection, control connection held
    Failed,     // refused, broken or timed out before it opened: socket handed back
    Closed,     // the master closed the control connection after the channel ended
};

enum class ForwardEvent {
    Opened,         // MUX_S_SESSION_OPENED for our request
    Refused,        // MUX_S_FAILURE or MUX_S_PERMISSION_DENIED
    Broken,         // EOF, read error or a malformed packet from the master
    TimedOut,       // no reply before the deadline
};

// The lifecycle as a pure function: the next state, or nullopt when the event cannot happen in
// that state (a reply after the forward opened is ignored, for example).
std::optional<ForwardState> next_forward_state(ForwardState state, ForwardEvent event) noexcept;

const char* forward_state_name(ForwardState state) noexcept;

// A private directory for the masters' control sockets: mkdtemp (mode 0700, ours) under
// $RUNTIME_DIRECTORY, else $XDG_RUNTIME_DIR, else /tmp; short enough for ssh, which binds
// PATH plus 17 bytes before renaming it into place. Removed (with what is left in it) when the
// object goes.
class ControlDir {
public:
    static Result<ControlDir> create(const std::string& runtime_directory,
                                     const std::string& xdg_runtime_dir);
    ControlDir() = default;
    ControlDir(ControlDir&& other) noexcept : path_(std::exchange(other.path_, {})) {}
    ControlDir& operator=(ControlDir&& other) noexcept;
    ~ControlDir();
    const std::string& path() const noexcept { return path_; }
    // The control socket of master `index` ("m0", "m1", ...).
    std::string socket_path(std::size_t index) const;

private:
    explicit ControlDir(std::string path) : path_(std::move(path)) {}
    void remove() noexcept;
    std::string path_;
};

class SshForwarder {
public:
    // Opens in flight per master.
    static constexpr std::size_t kMaxOpening = 64;
    // Descriptors a master keeps for itself (its session, stderr, the listener, ...).
    static constexpr std::size_t kMasterReserve = 64;
    // Forwards per master. ssh's main loop polls every descriptor of every channel on each
    // turn, so its cost per event grows with the channels it holds: measured in the lab, 2,000
    // concurrent echo connections took 8.4 s through one master (3.9 s through the agent) and
    // 5,000 did not finish in 150 s. Past this many a master takes no new forwards; they go to
    // another master, then to the agent, whose loop serves 15,000 in about 11 s.
    static constexpr std::size_t kDefaultMaxChannels = 1024;
    // Microseconds a master has to answer a forward request (it waits for the server, which
    // waits for the target's TCP handshake).
    static constexpr std::uint64_t kDefaultOpenTimeout = 60'000'000;

    struct Failure {
        UniqueFd client;   // the captured socket, untouched
        IpAddress ip;
        std::uint16_t port = 0;
        std::size_t master = 0;
        Error error;       // Timeout, or why the master refused (its reason, quoted)
    };
    using FailedCallback = std::function<void(Failure)>;

    struct MasterStats {
        std::string state;           // "connecting", "up", "gone"
        std::size_t channels = 0;    // forwards open now
        std::size_t opening = 0;     // requests in flight
        std::uint64_t opened = 0;    // forwards ever opened
        std::uint64_t failed = 0;    // opens refused, broken or timed out
        std::uint64_t bytes_in = 0;  // to the applications, as of the last sample_bytes()
        std::uint64_t bytes_out = 0; // from the applications
    };

    // fd_limit: the descriptor limit masters inherit (our RLIMIT_NOFILE).
    SshForwarder(sd_event* event, std::size_t fd_limit, FailedCallback on_failed);
    ~SshForwarder();
    SshForwarder(const SshForwarder&) = delete;
    SshForwarder& operator=(const SshForwarder&) = delete;

    void set_open_timeout(std::uint64_t usec) noexcept { open_timeout_ = usec; }
    void set_max_channels(std::size_t n) noexcept { max_channels_ = n; }
    // Called when an open finished and a master may take a new one again (see can_open()).
    void on_capacity(std::function<void()> fn) { on_capacity_ = std::move(fn); }

    // A master whose control socket is `path`; not used until set_up(). Returns its index.
    std::size_t add_master(std::string path);
    void set_up(std::size_t index);
    // The master exited: it takes no new forwards; its forwards end with their control
    // connections (EOF), as the master's death closes them.
    void set_gone(std::size_t index);
    bool any_up() const noexcept;
    // Added and neither up nor gone yet: its control socket has not appeared.
    bool connecting(std::size_t index) const noexcept {
        return index < masters_.size() && masters_[index].state == Master::State::Connecting;
    }
    std::size_t master_count() const noexcept { return masters_.size(); }

    // The master a new forward should go to: up, under its descriptor budget and its limit of
    // opens in flight, with the fewest forwards. nullopt when there is none.
    std::optional<std::size_t> pick() const noexcept;
    // Whether some master that is up could take an open now or soon (false: every master that
    // is up has kMaxOpening in flight; callers pause accepting until on_capacity).
    bool opens_saturated() const noexcept;

    // Hands `client` to master `index` (from pick()). The result comes later: on success
    // nothing (the forward is counted), on failure on_failed with the socket back. Never calls
    // on_failed from inside this call.
    void forward(std::size_t index, UniqueFd client, const IpAddress& ip, std::uint16_t port);

    // Reads the byte counters of the open forwards' sockets from the kernel (tcp_diag.hpp).
    // A forward's bytes count up to its last sample: what moves after it in a connection that
    // then ends is not seen (the socket is gone, and TIME_WAIT keeps no counters).
    [[nodiscard]] Result<void> sample_bytes();

    std::size_t channels() const noexcept;     // open forwards, all masters
    std::size_t opening() const noexcept;      // requests in flight, all masters
    std::vector<MasterStats> stats() const;

private:
    struct Master {
        std::string path;
        enum class State { Connecting, Up, Gone } state = State::Connecting;
        std::size_t channels = 0;
        std::size_t opening = 0;
        std::uint64_t opened = 0;
        std::uint64_t failed = 0;
        std::uint64_t closed_in = 0;   // bytes of forwards that ended (last samples)
        std::uint64_t closed_out = 0;
    };
    struct Forward;
    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata) noexcept;
    static int on_timeout(sd_event_source* s, uint64_t usec, void* userdata) noexcept;
    static int on_deferred_failures(sd_event_source* s, void* userdata) noexcept;

    Result<UniqueFd> send_request(const Master& master, int client, const IpAddress& ip,
                                  std::uint16_t port, std::uint32_t request_id);
    void handle_io(Forward& f, uint32_t revents);
    void apply(Forward& f, ForwardEvent event, Error why = {});
    void finish(Forward& f);  // destroys f
    void fail_later(Failure failure);
    std::size_t budget() const noexcept;

    sd_event* event_;
    std::size_t fd_limit_;
    FailedCallback on_failed_;
    std::function<void()> on_capacity_;
    std::uint64_t open_timeout_ = kDefaultOpenTimeout;
    std::size_t max_channels_ = kDefaultMaxChannels;
    std::vector<Master> masters_;
    std::unordered_map<Forward*, std::unique_ptr<Forward>> forwards_;
    std::uint32_t next_request_ = 1;
    // Failures found inside forward() are reported from the loop, not from the caller's stack.
    std::vector<Failure> deferred_;
    EventSourcePtr deferred_source_;
};

}  // namespace sshuttle::daemon

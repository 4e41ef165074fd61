// ControlServer: the daemon's control socket, where `sshuttle status/down` talk to a tunnel.
//
// One AF_UNIX stream socket per tunnel, at $XDG_RUNTIME_DIR/sshuttle/NAME.sock for a user,
// /run/sshuttle/NAME.sock for root, $RUNTIME_DIRECTORY/NAME.sock under a systemd unit, or where
// --control-socket says. The directory is 0700 when we create it, the socket 0600. Those modes
// are the first gate; the second is SO_PEERCRED at accept: the daemon's own uid and root may
// control it, anyone else gets a PermissionDenied error and is disconnected.
//
// Messages are varlink-shaped JSON, NUL-terminated (proto/control.hpp). Methods:
//   io.sshuttle.Tunnel.Status  -> the status object (status_parameters())
//   io.sshuttle.Tunnel.Watch   (needs "more": true) -> the status at once, then again every
//                              second while it changes, "continues": true until the tunnel stops
//   io.sshuttle.Tunnel.Stop    -> {} and an orderly stop
// Errors: org.varlink.service.MethodNotFound {method}, org.varlink.service.InvalidParameter
// {parameter}, org.varlink.service.ExpectedMore, io.sshuttle.Tunnel.PermissionDenied {uid},
// io.sshuttle.Tunnel.ProtocolError {reason} (malformed input; the connection is then closed).
// A client that misbehaves costs only its own connection.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <ctime>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"
#include "daemon/tunnel_stats.hpp"
#include "proto/tunnel_options.hpp"

namespace sshuttle::daemon {

inline constexpr std::string_view kMethodStatus = "io.sshuttle.Tunnel.Status";
inline constexpr std::string_view kMethodWatch = "io.sshuttle.Tunnel.Watch";
inline constexpr std::string_view kMethodStop = "io.sshuttle.Tunnel.Stop";
inline constexpr std::string_view kErrorPermissionDenied = "io.sshuttle.Tunnel.PermissionDenied";
inline constexpr std::string_view kErrorProtocol = "io.sshuttle.Tunnel.ProtocolError";
inline constexpr std::string_view kErrorMethodNotFound = "org.varlink.service.MethodNotFound";
inline constexpr std::string_view kErrorInvalidParameter = "org.varlink.service.InvalidParameter";
inline constexpr std::string_view kErrorExpectedMore = "org.varlink.service.ExpectedMore";

// Where a tunnel's control socket lives when --control-socket is not given (see the top).
// `runtime_directory` is $RUNTIME_DIRECTORY, `xdg_runtime_dir` $XDG_RUNTIME_DIR (empty: unset).
[[nodiscard]] Result<std::string> default_control_socket(std::string_view name, uid_t euid,
                                                         std::string_view runtime_directory,
                                                         std::string_view xdg_runtime_dir);

// The tunnel's name and socket path: --control-socket when given, else the default place for
// --name, or without one for the first of NAME, NAME-2 ... NAME-9 (NAME from the remote host)
// on which no running tunnel answers.
struct ControlPlace {
    std::string name;
    std::string path;
};
[[nodiscard]] Result<ControlPlace> choose_control_place(const proto::TunnelOptions& options,
                                                        const std::string& default_name, uid_t euid,
                                                        std::string_view runtime_directory,
                                                        std::string_view xdg_runtime_dir);

// True when a process accepts connections on the socket at `path` (a tunnel of that name runs).
bool control_socket_answers(const std::string& path);

// What Status reports, apart from the live counters.
struct StatusInfo {
    std::string name;
    std::string remote;                             // "user@host:port"
    const proto::TunnelOptions* options = nullptr;  // subnets, excludes, method
    std::time_t started = 0;                        // wall clock, for humans
    std::uint64_t started_monotonic_usec = 0;       // for the uptime
    pid_t pid = 0;
};
// The Status parameters: name, pid, state, remote, method, subnets, excludes, listen, dns_port,
// started (ISO 8601 UTC), uptime (s), channels_open, connections, bytes_in, bytes_out,
// reconnects.
nlohmann::json status_parameters(const StatusInfo& info, const TunnelStats& stats,
                                 std::uint64_t now_monotonic_usec);

class ControlServer {
  public:
    // Microseconds between the checks that feed Watch streams.
    static constexpr std::uint64_t kWatchIntervalUsec = 1'000'000;
    // Connections at once; more are accepted and closed at once (a local user flooding us).
    static constexpr std::size_t kMaxClients = 32;
    // Bytes of replies queued for one client before it is dropped (a watcher that never reads).
    static constexpr std::size_t kMaxPendingOutput = 256 * 1024;

    struct Handlers {
        std::function<nlohmann::json()> status;  // the Status parameters, now
        std::function<void()> stop;              // begin an orderly stop
    };

    ControlServer(sd_event* event, Handlers handlers);
    ~ControlServer();  // closes every connection and removes the socket file
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    // Creates the directory (0700) when missing, replaces a stale socket file, binds (0600) and
    // listens. AlreadyRunning-style failure (Errc::InvalidArgument naming the path) when another
    // process answers on the path.
    [[nodiscard]] Result<void> listen(const std::string& path);
    const std::string& path() const noexcept { return path_; }

    // Sends the final status ("continues": false) to every watcher; called when the tunnel stops.
    void finish_watchers();

    std::size_t client_count() const noexcept;

  private:
    struct Client;

    static int on_accept(sd_event_source* s, int fd, uint32_t revents, void* userdata) noexcept;
    static int on_client_io(sd_event_source* s, int fd, uint32_t revents, void* userdata) noexcept;
    static int on_watch_timer(sd_event_source* s, uint64_t usec, void* userdata) noexcept;
    static int on_sweep(sd_event_source* s, void* userdata) noexcept;

    void accept_one();
    void handle_input(Client& client);
    void handle_call(Client& client, std::string_view text);
    void queue(Client& client, Result<std::string> message);
    void flush(Client& client);
    void close_client(Client& client);
    void arm_watch_timer();
    void schedule_sweep();

    sd_event* event_;
    Handlers handlers_;
    std::string path_;
    UniqueFd listen_fd_;
    EventSourcePtr listen_source_;
    EventSourcePtr watch_timer_;
    EventSourcePtr sweep_source_;
    std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace sshuttle::daemon

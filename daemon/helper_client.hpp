// The daemon's side of io.sshuttle.Helper1: a typed client for the privileged helper.
//
// Two ways to reach it, one interface:
//  * connect_system(): the installed service on the system bus (bus-activated; polkit decides);
//  * spawn(): `sshuttle-helper --stdio` as our child, talking D-Bus peer to peer over a
//    socketpair on its stdin/stdout; started directly when we are root, through sudo otherwise
//    (as the original sshuttle does). Closing the client closes the socketpair, and the helper
//    removes everything and exits.
// Calls are synchronous (they happen while a tunnel is set up or torn down). When the helper
// goes away on its own, on_lost's callback runs once from the event loop.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include <nlohmann/json_fwd.hpp>

#include "common/error.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"

namespace sshuttle::daemon {

struct HelperCapability {
    std::string name;
    bool available = false;
    std::string reason;
};

struct TransparentSocket {
    std::string family;  // "ipv4" | "ipv6"
    std::string proto;   // "tcp" | "udp"
    UniqueFd fd;
};

struct HelperSpawnOptions {
    std::string helper_path;              // the sshuttle-helper binary
    bool use_sudo = false;                // wrap in `sudo -p '[local sudo] Password: '`
    std::vector<std::string> extra_args;  // e.g. "-v"
};

class HelperClient {
  public:
    [[nodiscard]] static Result<std::unique_ptr<HelperClient>> connect_system(sd_event* event);
    // SIGCHLD must be blocked (sd-event child sources), as in every program of ours.
    [[nodiscard]] static Result<std::unique_ptr<HelperClient>> spawn(
        sd_event* event, const HelperSpawnOptions& options);
    // The sudo decision: direct when we are root.
    static HelperSpawnOptions default_spawn_options(std::string helper_path);

    ~HelperClient();
    HelperClient(const HelperClient&) = delete;
    HelperClient& operator=(const HelperClient&) = delete;

    // `spec` has spec_to_json()'s shape (helper/spec.hpp).
    [[nodiscard]] Result<void> apply(const nlohmann::json& spec);
    [[nodiscard]] Result<void> remove(const std::string& name);
    [[nodiscard]] Result<std::vector<std::string>> list();
    [[nodiscard]] Result<std::vector<HelperCapability>> capabilities();
    [[nodiscard]] Result<std::vector<TransparentSocket>> transparent_sockets(
        const std::string& name);
    [[nodiscard]] Result<void> set_hosts(
        const std::vector<std::pair<std::string, std::string>>& name_address);
    [[nodiscard]] Result<void> clear_hosts();

    // Runs once when the helper disappears (process died, name lost its owner, socket closed).
    void on_lost(std::function<void(const Error&)> callback) { on_lost_ = std::move(callback); }
    bool lost() const noexcept { return lost_; }
    pid_t child_pid() const noexcept { return child_; }

  private:
    HelperClient() = default;
    [[nodiscard]] Result<BusMessagePtr> new_call(const char* member);
    [[nodiscard]] Result<BusMessagePtr> call(BusMessagePtr& request);
    [[nodiscard]] Result<void> watch_system_owner();
    void mark_lost(const Error& why);
    static int on_disconnected(sd_bus_message*, void* userdata, sd_bus_error*) noexcept;
    static int on_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept;
    static int on_child_exit(sd_event_source*, const siginfo_t* si, void* userdata) noexcept;

    BusPtr bus_;
    bool peer_ = false;
    pid_t child_ = -1;
    bool lost_ = false;
    std::string owner_;  // bus mode: the helper's unique name once known
    BusSlotPtr disconnect_match_;
    BusSlotPtr owner_match_;
    EventSourcePtr child_source_;
    std::function<void(const Error&)> on_lost_;
};

}  // namespace sshuttle::daemon

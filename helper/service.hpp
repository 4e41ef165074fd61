// The io.sshuttle.Helper1 object: the method table (methods.hpp) served over sd-bus, with
// validation at the door, authorization, ownership by caller, and cleanup when a caller leaves.
//
// One Service serves one connection: the system bus (many callers, polkit, NameOwnerChanged) or
// a private peer-to-peer connection (--stdio: one caller, the process that started us).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <systemd/sd-bus.h>

#include "common/error.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"
#include "helper/authz.hpp"
#include "helper/backend.hpp"
#include "helper/callers.hpp"
#include "helper/hosts.hpp"
#include "helper/methods.hpp"
#include "helper/spec.hpp"

namespace sshuttle::helper {

using BackendFactory = std::function<Result<std::unique_ptr<FirewallBackend>>(Method)>;

// One IP_TRANSPARENT socket handed to the caller for a tproxy tunnel.
struct MintedSocket {
    std::string family;  // "ipv4" | "ipv6"
    std::string proto;   // "tcp" | "udp"
    UniqueFd fd;
};
using SocketMinter = std::function<Result<std::vector<MintedSocket>>(const TunnelSpec&)>;

// The real minter (socket_minter.cpp): IP_TRANSPARENT listeners on the spec's ports.
SocketMinter make_socket_minter();

enum class ServiceMode { Bus, Peer };


struct ServiceConfig {
    ServiceMode mode = ServiceMode::Bus;
    BackendFactory backends;
    SocketMinter minter;     // empty: GetTransparentSockets reports it unavailable
    std::string hosts_path;  // fixed at start; see hosts.hpp
    std::string peer_key;    // Peer mode: the owner key of the one caller ("stdio-<pid>")
};

class Service {
  public:
    Service(sd_bus* bus, Authorizer& authorizer, ServiceConfig config);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // Registers the object (and, in Bus mode, the NameOwnerChanged watch). Call before the
    // connection is started (Peer) or before the name is requested (Bus).
    [[nodiscard]] Result<void> start();

    // Removes leftovers of earlier helpers: sshuttle_* tables/chains and stale hosts blocks
    // (stale_hosts_owner). Bus mode, at start, before taking the name.
    void sweep();
    // Only the hosts blocks of dead helpers (what a --stdio helper may sweep at start; it must
    // not touch tables of other live helpers).
    void sweep_hosts();

    // Removes everything every caller owns (shutdown, or the peer closed).
    void remove_all();

    bool owns_anything() const noexcept { return callers_.owns_anything(); }
    bool busy() const noexcept { return !pending_.empty(); }
    // Called after any change of ownership (for the idle-exit timer).
    void set_on_change(std::function<void()> fn) { on_change_ = std::move(fn); }

    // Removes what `caller` owns and forgets it; pending calls from it are dropped.
    void caller_gone(const std::string& caller);

  private:
    struct HostsRequest {
        std::vector<HostEntry> entries;
    };
    struct NameRequest {
        std::string name;
    };
    using Request = std::variant<std::monostate, TunnelSpec, NameRequest, HostsRequest>;

    struct Pending {
        BusMessagePtr call;
        const MethodInfo* info = nullptr;
        std::string caller;
        Request request;
        std::unique_ptr<PendingAuthz> authz;
    };

    static int on_call_trampoline(sd_bus_message* m, void* userdata, sd_bus_error* e) noexcept;
    int on_call(sd_bus_message* m);
    void on_authorized(std::uint64_t id, Result<void> verdict);
    std::string caller_key(sd_bus_message* m) const;

    Result<Request> parse(sd_bus_message* m, const MethodInfo& info);
    // Runs an authorized request and sends the reply (or the named error).
    void execute(sd_bus_message* m, const MethodInfo& info, const std::string& caller,
                 Request& request);
    Result<void> do_apply(const std::string& caller, const TunnelSpec& spec);
    Result<void> do_remove(const std::string& caller, const std::string& name);
    Result<std::vector<MintedSocket>> do_sockets(const std::string& caller,
                                                 const std::string& name);
    Result<void> do_set_hosts(const std::string& caller, const std::vector<HostEntry>& entries);
    Result<void> do_clear_hosts(const std::string& caller);
    int reply_capabilities(sd_bus_message* m);
    int reply_list(sd_bus_message* m, const std::string& caller);

    Result<FirewallBackend*> backend(Method method);
    void changed();

    sd_bus* bus_;
    Authorizer& authorizer_;
    ServiceConfig config_;
    HostsFile hosts_;
    Callers callers_;
    std::map<Method, std::unique_ptr<FirewallBackend>> backends_;
    std::map<std::uint64_t, Pending> pending_;
    std::uint64_t next_id_ = 1;
    std::vector<sd_bus_vtable> vtable_;
    std::vector<std::string> vtable_names_;
    BusSlotPtr object_slot_;
    std::function<void()> on_change_;
};

// Sends `error` as io.sshuttle.Helper1.Error.<Errc> in reply to `m`.
int reply_error(sd_bus_message* m, const Error& error);

}  // namespace sshuttle::helper

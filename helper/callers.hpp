// What each caller owns, keyed by its unique bus name, and the watch that tells us when a caller
// is gone.
//
// The helper learns of a vanished caller from the bus's NameOwnerChanged signal (a SIGKILLed
// daemon included: the bus sees its socket close). The match is installed once, before the
// helper takes its well-known name, so a caller's last method call is always processed before
// the signal that says it left: nothing a caller applied can outlive it unnoticed.
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>

#include "common/error.hpp"
#include "common/sd_handles.hpp"
#include "helper/spec.hpp"

namespace sshuttle::helper {

struct CallerState {
    std::map<std::string, TunnelSpec> tunnels;  // tunnel name -> what was applied
    bool hosts = false;                         // has a block in the hosts file
    bool owns_anything() const noexcept { return !tunnels.empty() || hosts; }
};

class Callers {
  public:
    using GoneHandler = std::function<void(const std::string& caller)>;

    // Subscribes to NameOwnerChanged on a message bus (not a peer-to-peer connection) and calls
    // `on_gone` with each unique name that disappears.
    [[nodiscard]] Result<void> watch(sd_bus* bus, GoneHandler on_gone);

    CallerState& state(const std::string& caller) { return owned_[caller]; }
    const CallerState* find(const std::string& caller) const;
    // The caller that owns tunnel `name`, if any.
    std::optional<std::string> owner_of(const std::string& tunnel) const;
    // Drops the caller's record once its state is cleaned up (or it owns nothing).
    void forget(const std::string& caller) { owned_.erase(caller); }
    void forget_if_empty(const std::string& caller);
    bool owns_anything() const noexcept;
    std::vector<std::string> names() const;

  private:
    static int on_name_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept;

    std::map<std::string, CallerState> owned_;
    GoneHandler on_gone_;
    BusSlotPtr match_;
};

}  // namespace sshuttle::helper

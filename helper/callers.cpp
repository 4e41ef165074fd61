#include "helper/callers.hpp"

#include <spdlog/spdlog.h>

namespace sshuttle::helper {

Result<void> Callers::watch(sd_bus* bus, GoneHandler on_gone) {
    on_gone_ = std::move(on_gone);
    sd_bus_slot* slot = nullptr;
    // Synchronous on purpose: the match must be in place before we serve any call.
    int r = sd_bus_match_signal(bus, &slot, "org.freedesktop.DBus", "/org/freedesktop/DBus",
                                "org.freedesktop.DBus", "NameOwnerChanged",
                                &Callers::on_name_owner_changed, this);
    if (r < 0) return Error(Errc::Io, "subscribe to NameOwnerChanged", -r);
    match_.reset(slot);
    return ok();
}

int Callers::on_name_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
    auto* self = static_cast<Callers*>(userdata);
    const char* name = nullptr;
    const char* old_owner = nullptr;
    const char* new_owner = nullptr;
    if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) return 0;
    // Only unique names (":1.42") own anything here; a well-known name moving is irrelevant.
    if (name[0] != ':' || new_owner[0] != '\0') return 0;
    try {
        if (self->on_gone_) self->on_gone_(name);
    } catch (...) {
        spdlog::error("cleanup for vanished caller {} threw", name);
    }
    return 0;
}

const CallerState* Callers::find(const std::string& caller) const {
    auto it = owned_.find(caller);
    return it == owned_.end() ? nullptr : &it->second;
}

std::optional<std::string> Callers::owner_of(const std::string& tunnel) const {
    for (const auto& [caller, st] : owned_)
        if (st.tunnels.count(tunnel)) return caller;
    return std::nullopt;
}

void Callers::forget_if_empty(const std::string& caller) {
    auto it = owned_.find(caller);
    if (it != owned_.end() && !it->second.owns_anything()) owned_.erase(it);
}

bool Callers::owns_anything() const noexcept {
    for (const auto& [caller, st] : owned_)
        if (st.owns_anything()) return true;
    return false;
}

std::vector<std::string> Callers::names() const {
    std::vector<std::string> out;
    for (const auto& [caller, st] : owned_) out.push_back(caller);
    return out;
}

}  // namespace sshuttle::helper

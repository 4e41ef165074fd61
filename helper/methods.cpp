#include "helper/methods.hpp"

#include <array>

namespace sshuttle::helper {

namespace {

// Apply takes the spec as a{sv} whose keys and value types are fixed by spec_codec.hpp; the
// JSON shape is the same, so a varlink front end can reuse spec_from_json unchanged.
constexpr std::array kMethods{
    MethodInfo{MethodId::Apply, "Apply", "a{sv}", "", "spec", "", true, kTunnelAction},
    MethodInfo{MethodId::Remove, "Remove", "s", "", "name", "", true, nullptr},
    MethodInfo{MethodId::List, "List", "", "as", "", "names", false, nullptr},
    MethodInfo{MethodId::Capabilities, "Capabilities", "", "a(sbs)", "", "capabilities", false,
               nullptr},
    MethodInfo{MethodId::GetTransparentSockets, "GetTransparentSockets", "s", "a(ssh)", "name",
               "sockets", true, kTunnelAction},
    MethodInfo{MethodId::SetHosts, "SetHosts", "a(ss)", "", "entries", "", true, kTunnelAction},
    MethodInfo{MethodId::ClearHosts, "ClearHosts", "", "", "", "", true, nullptr},
};

constexpr std::array kErrcs{Errc::InvalidArgument,  Errc::Protocol, Errc::TooLarge, Errc::Io,
                            Errc::PermissionDenied, Errc::NotFound, Errc::Timeout,  Errc::Backend,
                            Errc::Internal};

}  // namespace

std::span<const MethodInfo> method_table() noexcept {
    return kMethods;
}

const MethodInfo* find_method(std::string_view name) noexcept {
    for (const auto& m : kMethods)
        if (name == m.name) return &m;
    return nullptr;
}

const MethodInfo& method_info(MethodId id) noexcept {
    for (const auto& m : kMethods)
        if (m.id == id) return m;
    return kMethods[0];  // unreachable: every MethodId has a row (methods_test checks)
}

std::string error_name(Errc code) {
    return std::string(kErrorPrefix) + errc_name(code);
}

Errc errc_from_error_name(std::string_view name) noexcept {
    const std::string_view prefix = kErrorPrefix;
    if (name.substr(0, prefix.size()) != prefix) return Errc::Backend;
    name.remove_prefix(prefix.size());
    for (Errc code : kErrcs)
        if (name == errc_name(code)) return code;
    return Errc::Backend;
}

}  // namespace sshuttle::helper

// The privileged surface of sshuttle-helper as data: every D-Bus method it answers, with its
// signature, whether it changes the machine, and the polkit action that guards it.
//
// This is the ONE closed table. The sd-bus vtable (service.cpp), the checked-in introspection
// XML (proto/io.sshuttle.Helper1.xml) and the polkit policy (polkit/io.sshuttle.policy) must
// agree with it; methods_test.cpp checks that. Adding a row is a security decision: write it
// down in docs/SECURITY.md first.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "common/error.hpp"

namespace sshuttle::helper {

inline constexpr const char* kBusName = "io.sshuttle.Helper1";
inline constexpr const char* kObjectPath = "/io/sshuttle/Helper1";
inline constexpr const char* kInterface = "io.sshuttle.Helper1";
// The one polkit action: may this caller change the firewall for a tunnel.
inline constexpr const char* kTunnelAction = "io.sshuttle.tunnel";
// Errors are "io.sshuttle.Helper1.Error.<errc_name>".
inline constexpr const char* kErrorPrefix = "io.sshuttle.Helper1.Error.";

enum class MethodId {
    Apply,
    Remove,
    List,
    Capabilities,
    GetTransparentSockets,
    SetHosts,
    ClearHosts,
};

struct MethodInfo {
    MethodId id;
    const char* name;      // the D-Bus member name
    const char* in_sig;    // D-Bus input signature
    const char* out_sig;   // D-Bus output signature
    const char* in_names;  // space-separated argument names, for the XML
    const char* out_names;
    bool mutates;        // changes kernel or file state
    const char* action;  // polkit action asked for callers other than root/service user;
                         // nullptr: no polkit (acts only on or reads the caller's own state)
};

// Every method, in a fixed order.
std::span<const MethodInfo> method_table() noexcept;

// The row for a D-Bus member name, or nullptr: unknown methods are refused before any handler.
const MethodInfo* find_method(std::string_view name) noexcept;
const MethodInfo& method_info(MethodId id) noexcept;

// "io.sshuttle.Helper1.Error.InvalidArgument" for Errc::InvalidArgument, and so on.
std::string error_name(Errc code);
// The reverse: the Errc for a D-Bus error name of ours, or Errc::Backend for foreign names.
Errc errc_from_error_name(std::string_view name) noexcept;

// Caps on what a caller may send besides the spec's own (helper/spec.hpp).
inline constexpr std::size_t kMaxHostEntries = 1024;        // SetHosts pairs per caller
inline constexpr std::size_t kMaxHostNameBytes = 253;       // DNS name limit
inline constexpr std::size_t kMaxRequestStringBytes = 256;  // any string in Apply's dict
inline constexpr std::size_t kMaxTunnelsPerCaller = 16;

}  // namespace sshuttle::helper

// Applying rules: one interface, a real backend per method family, and an in-memory fake.
//
// A backend turns a validated TunnelSpec into kernel state atomically (all rules or none) and
// removes it exactly. Rendering (spec -> text) is done by the pure functions in render.hpp; a
// backend only feeds that text to libnftables / iptables-restore and reads back what exists.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "helper/spec.hpp"

namespace sshuttle::helper {

class FirewallBackend {
public:
    virtual ~FirewallBackend() = default;

    // Installs the tunnel's rules in one transaction. Fails (changing nothing) if a tunnel of
    // that name is already installed.
    [[nodiscard]] virtual Result<void> apply(const TunnelSpec& spec) = 0;

    // Removes everything the tunnel `name` installed. Removing a name that is not installed is
    // not an error (idempotent cleanup).
    [[nodiscard]] virtual Result<void> remove(const std::string& name) = 0;

    // Names of the sshuttle tunnels currently present in the kernel (ours or leftovers).
    [[nodiscard]] virtual Result<std::vector<std::string>> installed() = 0;

    // Removes every sshuttle_* leftover; returns the names removed.
    [[nodiscard]] virtual Result<std::vector<std::string>> sweep() = 0;
};

// The backend for a method on this machine (nft: libnftables; nat: iptables-restore; tproxy:
// libnftables + policy routing), or an error saying why the method is unavailable here.
[[nodiscard]] Result<std::unique_ptr<FirewallBackend>> make_backend(Method method);

// Records applies and removes in memory; for tests of the D-Bus layer.
std::unique_ptr<FirewallBackend> make_fake_backend();

// What a fake backend holds, shared with the test so it can look inside and inject failures.
// apply() validates the spec (like the real backends' callers must) and fails on a duplicate
// name; a set fail_next_* error is returned once, changing nothing.
struct FakeBackendState {
    std::map<std::string, TunnelSpec> installed;  // name -> spec, like the kernel would hold
    std::vector<std::string> leftovers;           // names sweep() finds and removes
    std::vector<std::string> log;                 // "apply corp", "remove corp", "sweep"
    std::optional<Error> fail_next_apply;
    std::optional<Error> fail_next_remove;
};
std::unique_ptr<FirewallBackend> make_fake_backend(std::shared_ptr<FakeBackendState> state);

// One backend for every method that works here: apply() dispatches on spec.method and remembers
// which method each name used, so remove(name) needs no method. Methods that are unavailable
// fail apply() with the reason from method_status(). This is the one the helper should hold
// (one per process): its nft context lives as long as it does, and with it the owner-flag tables.
[[nodiscard]] Result<std::unique_ptr<FirewallBackend>> make_system_backend();

// Whether a method works on this machine, and if not why ("nft: kernel has no owner flag
// support", "iptables-restore not found in /usr/sbin or /sbin", ...). Probes without changing
// anything (nft check mode, file lookups).
struct MethodStatus {
    Method method = Method::Nft;
    bool available = false;
    std::string reason;  // empty when available
};
std::vector<MethodStatus> method_status();

}  // namespace sshuttle::helper

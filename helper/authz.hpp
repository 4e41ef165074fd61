// Who may call the helper's guarded methods.
//
// uid 0 and the service user pass; anyone else is asked of polkit, asynchronously, with the
// caller's bus name as the subject (polkitd then asks the bus itself who that is, so a request
// field can never claim an identity). Polkit missing, failing or slow means deny.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <systemd/sd-bus.h>

#include "common/error.hpp"
#include "common/sd_handles.hpp"

namespace sshuttle::helper {

// ok() when allowed; else a PermissionDenied error saying why.
using AuthzDone = std::function<void(Result<void>)>;

// An authorization in flight. Dropping it cancels the check: `done` is then never called.
class PendingAuthz {
  public:
    virtual ~PendingAuthz() = default;
};

// The seam the service asks. `call` is the method call being authorized.
class Authorizer {
  public:
    virtual ~Authorizer() = default;
    // Calls `done` exactly once, either before returning (decided at once: returns nullptr) or
    // later from the event loop (returns the handle that keeps the check alive).
    virtual std::unique_ptr<PendingAuthz> authorize(sd_bus_message* call, const char* action,
                                                    AuthzDone done) = 0;
};

// Asks org.freedesktop.PolicyKit1 CheckAuthorization over `bus` with a system-bus-name subject.
class PolkitAuthority {
  public:
    // `timeout_usec`: how long polkit may take for a non-interactive check; interactive checks
    // (a person typing a password) get kInteractiveTimeoutUsec.
    PolkitAuthority(sd_bus* bus, std::uint64_t timeout_usec) : bus_(bus), timeout_(timeout_usec) {}

    static constexpr std::uint64_t kDefaultTimeoutUsec = 25'000'000;       // D-Bus's default
    static constexpr std::uint64_t kInteractiveTimeoutUsec = 300'000'000;  // a human at a prompt

    // Returns nullptr after calling `done` with an error when the request could not be sent.
    std::unique_ptr<PendingAuthz> check(const std::string& bus_name, const char* action,
                                        bool interactive, AuthzDone done);

  private:
    sd_bus* bus_;
    std::uint64_t timeout_;
};

// Reads CheckAuthorization's reply (or error) into a verdict. Exposed for tests.
[[nodiscard]] Result<void> polkit_verdict(sd_bus_message* reply);

// The bus-mode authorizer: creds from the bus, uid 0 / service uid shortcut, then polkit.
class BusAuthorizer final : public Authorizer {
  public:
    BusAuthorizer(sd_bus* bus, std::optional<uid_t> service_uid, std::uint64_t polkit_timeout_usec)
        : polkit_(bus, polkit_timeout_usec), service_uid_(service_uid) {}
    std::unique_ptr<PendingAuthz> authorize(sd_bus_message* call, const char* action,
                                            AuthzDone done) override;

  private:
    PolkitAuthority polkit_;
    std::optional<uid_t> service_uid_;
};

// --stdio mode: the one peer started us (as root, or through sudo, which already asked), so
// every call on the connection is allowed.
class PeerAuthorizer final : public Authorizer {
  public:
    std::unique_ptr<PendingAuthz> authorize(sd_bus_message*, const char*, AuthzDone done) override {
        done(ok());
        return nullptr;
    }
};

// True when `uid` is let through without polkit.
bool trusted_uid(uid_t uid, std::optional<uid_t> service_uid) noexcept;

// The uid of a user name, or nullopt when it does not exist.
std::optional<uid_t> lookup_uid(const std::string& user);

}  // namespace sshuttle::helper

#include "helper/authz.hpp"

#include <pwd.h>

#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

namespace sshuttle::helper {

namespace {

constexpr const char* kPolkitName = "org.freedesktop.PolicyKit1";
constexpr const char* kPolkitPath = "/org/freedesktop/PolicyKit1/Authority";
constexpr const char* kPolkitInterface = "org.freedesktop.PolicyKit1.Authority";
constexpr std::uint32_t kAllowUserInteraction = 0x1;

Error denied(const std::string& why) {
    return Error(Errc::PermissionDenied, why);
}

class PolkitCall final : public PendingAuthz {
  public:
    explicit PolkitCall(AuthzDone done) : done_(std::move(done)) {}
    BusSlotPtr slot;

    static int on_reply(sd_bus_message* reply, void* userdata, sd_bus_error*) noexcept {
        static_cast<PolkitCall*>(userdata)->finish(polkit_verdict(reply));
        return 0;
    }

    // Calls the callback once. It may destroy `this` (the owner drops the handle when decided),
    // so nothing touches a member afterwards.
    void finish(Result<void> verdict) noexcept {
        AuthzDone done = std::move(done_);
        if (!done) return;
        try {
            done(std::move(verdict));
        } catch (...) {
            spdlog::error("authorization callback threw");
        }
    }

  private:
    AuthzDone done_;
};

}  // namespace

bool trusted_uid(uid_t uid, std::optional<uid_t> service_uid) noexcept {
    return uid == 0 || (service_uid && uid == *service_uid);
}

std::optional<uid_t> lookup_uid(const std::string& user) {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr)
        return std::nullopt;
    return found->pw_uid;
}

Result<void> polkit_verdict(sd_bus_message* reply) {
    if (sd_bus_message_is_method_error(reply, nullptr)) {
        const sd_bus_error* e = sd_bus_message_get_error(reply);
        std::string what = e && e->name ? e->name : "unknown error";
        if (e && e->message) what += std::string(": ") + e->message;
        return denied("polkit did not decide (" + what + ")");
    }
    int authorized = 0;
    int challenge = 0;
    int r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
    if (r >= 0) r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
    if (r < 0) return denied(std::string("polkit sent a malformed reply: ") + std::strerror(-r));
    if (authorized) return ok();
    if (challenge) return denied("polkit: authentication required and not allowed for this call");
    return denied("polkit: not authorized");
}

std::unique_ptr<PendingAuthz> PolkitAuthority::check(const std::string& bus_name,
                                                     const char* action, bool interactive,
                                                     AuthzDone done) {
    auto pending = std::make_unique<PolkitCall>(std::move(done));
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_, &raw, kPolkitName, kPolkitPath, kPolkitInterface,
                                           "CheckAuthorization");
    BusMessagePtr m(raw);
    const std::uint32_t flags = interactive ? kAllowUserInteraction : 0;
    if (r >= 0)
        r = sd_bus_message_append(m.get(), "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s",
                                  bus_name.c_str(), action, 0, flags, "");
    if (r >= 0 && interactive) r = sd_bus_message_set_allow_interactive_authorization(m.get(), 1);
    if (r >= 0) {
        sd_bus_slot* slot = nullptr;
        r = sd_bus_call_async(bus_, &slot, m.get(), &PolkitCall::on_reply, pending.get(),
                              interactive ? kInteractiveTimeoutUsec : timeout_);
        pending->slot.reset(slot);
    }
    if (r < 0) {
        pending->finish(denied(std::string("cannot ask polkit: ") + std::strerror(-r)));
        return nullptr;
    }
    return pending;
}

std::unique_ptr<PendingAuthz> BusAuthorizer::authorize(sd_bus_message* call, const char* action,
                                                       AuthzDone done) {
    sd_bus_creds* raw = nullptr;
    int r = sd_bus_query_sender_creds(call, SD_BUS_CREDS_EUID, &raw);
    BusCredsPtr creds(raw);
    uid_t euid = 0;
    // Like systemd's check_good_user: a uid read from /proc ("augmented") could belong to a
    // process that reused the pid, so only the bus's own record counts.
    if (r >= 0 && (sd_bus_creds_get_augmented_mask(creds.get()) & SD_BUS_CREDS_EUID) == 0 &&
        sd_bus_creds_get_euid(creds.get(), &euid) >= 0 && trusted_uid(euid, service_uid_)) {
        done(ok());
        return nullptr;
    }
    const char* sender = sd_bus_message_get_sender(call);
    if (sender == nullptr || action == nullptr) {
        done(denied("caller has no bus name to authorize"));
        return nullptr;
    }
    return polkit_.check(sender, action,
                         sd_bus_message_get_allow_interactive_authorization(call) > 0,
                         std::move(done));
}

}  // namespace sshuttle::helper

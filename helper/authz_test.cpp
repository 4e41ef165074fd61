// PolkitAuthority against a fake org.freedesktop.PolicyKit1 served on a private connection:
// deterministic allow, deny, challenge, error, silence and cancellation.
#include "helper/authz.hpp"

#include <doctest/doctest.h>

#include <optional>

#include "helper/methods.hpp"
#include "helper/testing_bus.hpp"

namespace sshuttle::helper {
namespace {

struct FakePolkit {
    enum class Answer { Yes, No, Challenge, Error, Silence } answer = Answer::Yes;
    std::string subject_kind, subject_name, action;
    std::uint32_t flags = 99;
    int calls = 0;
    BusSlotPtr slot;

    static int on_check(sd_bus_message* m, void* userdata, sd_bus_error* error) noexcept {
        auto* self = static_cast<FakePolkit*>(userdata);
        ++self->calls;
        const char* kind = nullptr;
        if (sd_bus_message_enter_container(m, 'r', "sa{sv}") < 0 ||
            sd_bus_message_read(m, "s", &kind) < 0 ||
            sd_bus_message_enter_container(m, 'a', "{sv}") < 0)
            return -EINVAL;
        self->subject_kind = kind;
        while (sd_bus_message_enter_container(m, 'e', "sv") > 0) {
            const char* key = nullptr;
            const char* value = nullptr;
            sd_bus_message_read(m, "s", &key);
            if (sd_bus_message_read(m, "v", "s", &value) > 0 && std::string(key) == "name")
                self->subject_name = value;
            sd_bus_message_exit_container(m);
        }
        sd_bus_message_exit_container(m);
        sd_bus_message_exit_container(m);
        const char* action = nullptr;
        sd_bus_message_read(m, "s", &action);
        self->action = action;
        sd_bus_message_skip(m, "a{ss}");
        sd_bus_message_read(m, "u", &self->flags);
        switch (self->answer) {
            case Answer::Yes:
                return sd_bus_reply_method_return(m, "(bba{ss})", 1, 0, 0);
            case Answer::No:
                return sd_bus_reply_method_return(m, "(bba{ss})", 0, 0, 0);
            case Answer::Challenge:
                return sd_bus_reply_method_return(m, "(bba{ss})", 0, 1, 0);
            case Answer::Error:
                return sd_bus_error_set(error, "org.freedesktop.PolicyKit1.Error.Failed", "boom");
            case Answer::Silence:
                return 1;  // never replies
        }
        return 0;
    }
    static const sd_bus_vtable* vtable() {
        static const sd_bus_vtable v[] = {
            SD_BUS_VTABLE_START(0),
            SD_BUS_METHOD("CheckAuthorization", "(sa{sv})sa{ss}us", "(bba{ss})",
                          &FakePolkit::on_check, SD_BUS_VTABLE_UNPRIVILEGED),
            SD_BUS_VTABLE_END};
        return v;
    }
    void serve(sd_bus* bus) {
        sd_bus_slot* s = nullptr;
        REQUIRE(sd_bus_add_object_vtable(bus, &s, "/org/freedesktop/PolicyKit1/Authority",
                                         "org.freedesktop.PolicyKit1.Authority", vtable(),
                                         this) >= 0);
        slot.reset(s);
    }
};

struct Outcome {
    std::optional<Result<void>> verdict;
};

Outcome ask(testing::PeerPair& pair, bool interactive, std::uint64_t timeout = 5'000'000) {
    PolkitAuthority authority(pair.client(), timeout);
    Outcome out;
    auto pending = authority.check(":1.42", kTunnelAction, interactive,
                                   [&](Result<void> v) { out.verdict.emplace(std::move(v)); });
    pair.run_until([&] { return out.verdict.has_value(); });
    return out;
}

TEST_CASE("polkit's yes allows and the request names the caller's bus name and the action") {
    testing::PeerPair pair;
    FakePolkit polkit;
    polkit.serve(pair.server());
    auto out = ask(pair, false);
    REQUIRE(out.verdict.has_value());
    CHECK(out.verdict->has_value());
    CHECK(polkit.subject_kind == "system-bus-name");
    CHECK(polkit.subject_name == ":1.42");
    CHECK(polkit.action == kTunnelAction);
    CHECK(polkit.flags == 0);
}

TEST_CASE("AllowUserInteraction is set only when the call allows interactive authorization") {
    testing::PeerPair pair;
    FakePolkit polkit;
    polkit.serve(pair.server());
    auto out = ask(pair, true);
    REQUIRE(out.verdict.has_value());
    CHECK(polkit.flags == 1);
}

TEST_CASE("no, challenge, an error and silence all deny") {
    for (auto answer : {FakePolkit::Answer::No, FakePolkit::Answer::Challenge,
                        FakePolkit::Answer::Error, FakePolkit::Answer::Silence}) {
        CAPTURE(static_cast<int>(answer));
        testing::PeerPair pair;
        FakePolkit polkit;
        polkit.answer = answer;
        polkit.serve(pair.server());
        // A short deadline for the silent authority; the verdict, not the time, is asserted.
        auto out = ask(pair, false, 200'000);
        REQUIRE(out.verdict.has_value());
        REQUIRE_FALSE(out.verdict->has_value());
        CHECK(out.verdict->error().code == Errc::PermissionDenied);
    }
}

TEST_CASE("polkit being unreachable denies") {
    testing::PeerPair pair;  // nothing serves the authority object
    auto out = ask(pair, false);
    REQUIRE(out.verdict.has_value());
    REQUIRE_FALSE(out.verdict->has_value());
    CHECK(out.verdict->error().code == Errc::PermissionDenied);
}

TEST_CASE("dropping a pending check cancels it: the callback never runs") {
    testing::PeerPair pair;
    FakePolkit polkit;
    polkit.serve(pair.server());
    PolkitAuthority authority(pair.client(), 5'000'000);
    int called = 0;
    auto pending = authority.check(":1.42", kTunnelAction, false, [&](Result<void>) { ++called; });
    REQUIRE(pending != nullptr);
    pending.reset();
    pair.run_until([&] { return polkit.calls > 0; });
    pair.run_until([] { return false; }, 10);
    CHECK(called == 0);
}

TEST_CASE("root and the service user are trusted without polkit, nobody else") {
    CHECK(trusted_uid(0, std::nullopt));
    CHECK(trusted_uid(990, 990u));
    CHECK_FALSE(trusted_uid(1000, 990u));
    CHECK_FALSE(trusted_uid(1000, std::nullopt));
    CHECK(lookup_uid("root") == 0u);
    CHECK_FALSE(lookup_uid("no-such-user-sshuttle-test").has_value());
}

}  // namespace
}  // namespace sshuttle::helper

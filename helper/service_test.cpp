#include "helper/service.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "common/process.hpp"
#include "helper/spec_codec.hpp"
#include "helper/testing_bus.hpp"

namespace sshuttle::helper {
namespace {

using testing::error_name_of;

struct FakeAuthz final : Authorizer {
    enum class Mode { Allow, Deny, Hold } mode = Mode::Allow;
    int asked = 0;
    std::string last_action;
    AuthzDone held;
    std::unique_ptr<PendingAuthz> authorize(sd_bus_message*, const char* action,
                                            AuthzDone done) override {
        ++asked;
        last_action = action;
        switch (mode) {
            case Mode::Allow:
                done(ok());
                return nullptr;
            case Mode::Deny:
                done(Error(Errc::PermissionDenied, "fake polkit says no"));
                return nullptr;
            case Mode::Hold:
                held = std::move(done);
                return std::make_unique<PendingAuthz>();
        }
        return nullptr;
    }
};

std::string read_text(const std::string& path) {
    std::ifstream in(path);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

struct Fixture {
    testing::PeerPair pair;
    FakeAuthz authz;
    std::shared_ptr<FakeBackendState> state = std::make_shared<FakeBackendState>();
    std::string dir;
    std::string hosts;
    std::unique_ptr<Service> service;
    int minted = 0;

    Fixture() {
        char tmpl[] = "/tmp/helper-service-test-XXXXXX";
        dir = mkdtemp(tmpl);
        hosts = dir + "/hosts";
        std::ofstream(hosts) << "127.0.0.1 localhost\n";
        ServiceConfig config;
        config.mode = ServiceMode::Peer;
        config.peer_key = "stdio-test";
        config.hosts_path = hosts;
        config.backends = [st = state](Method m) -> Result<std::unique_ptr<FirewallBackend>> {
            if (m == Method::Pf) return Error(Errc::Backend, "pf exists only on BSD and macOS");
            return make_fake_backend(st);
        };
        config.minter = [this](const TunnelSpec&) -> Result<std::vector<MintedSocket>> {
            ++minted;
            std::vector<MintedSocket> out;
            out.push_back({"ipv4", "tcp", UniqueFd(::open("/dev/null", O_RDONLY | O_CLOEXEC))});
            return out;
        };
        service = std::make_unique<Service>(pair.server(), authz, std::move(config));
        REQUIRE(service->start());
    }
    ~Fixture() {
        ::unlink(hosts.c_str());
        ::rmdir(dir.c_str());
    }

    BusMessagePtr call_name(const char* member, const char* name) {
        auto m = pair.new_call(kObjectPath, kInterface, member);
        testing::PeerPair::check(sd_bus_message_append(m.get(), "s", name));
        return pair.call(m.get());
    }
    BusMessagePtr call_empty(const char* member) {
        auto m = pair.new_call(kObjectPath, kInterface, member);
        return pair.call(m.get());
    }
    BusMessagePtr apply(const nlohmann::json& spec) {
        auto m = pair.new_call(kObjectPath, kInterface, "Apply");
        REQUIRE(append_spec_dict(m.get(), spec));
        return pair.call(m.get());
    }
    std::vector<std::string> list() {
        auto reply = call_empty("List");
        REQUIRE(error_name_of(reply.get()) == "");
        char** strv = nullptr;
        REQUIRE(sd_bus_message_read_strv(reply.get(), &strv) >= 0);
        std::vector<std::string> out;
        for (char** p = strv; p && *p; ++p) {
            out.emplace_back(*p);
            free(*p);
        }
        free(strv);
        return out;
    }
};

nlohmann::json corp() {
    return {{"name", "corp"},       {"method", "nft"},  {"includes", {"10.0.0.0/8"}},
            {"tcp_port_v4", 12300}, {"dns_port_v4", 0}, {"udp", false}};
}

TEST_CASE("Apply installs the rules, List shows them, Remove takes them away") {
    Fixture f;
    auto reply = f.apply(corp());
    CHECK(error_name_of(reply.get()) == "");
    CHECK(f.state->installed.count("corp") == 1);
    CHECK(f.authz.last_action == kTunnelAction);
    CHECK(f.list() == std::vector<std::string>{"corp"});
    CHECK(f.service->owns_anything());

    CHECK(error_name_of(f.call_name("Remove", "corp").get()) == "");
    CHECK(f.state->installed.empty());
    CHECK(f.list().empty());
    CHECK_FALSE(f.service->owns_anything());
}

TEST_CASE("applying a name twice or removing a name the caller does not own is a named error") {
    Fixture f;
    REQUIRE(error_name_of(f.apply(corp()).get()) == "");
    CHECK(error_name_of(f.apply(corp()).get()) == error_name(Errc::InvalidArgument));
    CHECK(error_name_of(f.call_name("Remove", "other").get()) == error_name(Errc::NotFound));
    CHECK(f.state->installed.size() == 1);
}

TEST_CASE("a denied caller gets PermissionDenied and nothing is applied") {
    Fixture f;
    f.authz.mode = FakeAuthz::Mode::Deny;
    CHECK(error_name_of(f.apply(corp()).get()) == error_name(Errc::PermissionDenied));
    CHECK(f.state->installed.empty());
    CHECK(f.state->log.empty());
}

TEST_CASE("List, Capabilities, Remove and ClearHosts do not ask the authority") {
    Fixture f;
    f.authz.mode = FakeAuthz::Mode::Deny;
    CHECK(error_name_of(f.call_empty("List").get()) == "");
    CHECK(error_name_of(f.call_empty("Capabilities").get()) == "");
    CHECK(error_name_of(f.call_empty("ClearHosts").get()) == "");
    CHECK(error_name_of(f.call_name("Remove", "corp").get()) == error_name(Errc::NotFound));
    CHECK(f.authz.asked == 0);
}

TEST_CASE("an authorization that arrives later applies then, and not before") {
    Fixture f;
    f.authz.mode = FakeAuthz::Mode::Hold;
    auto m = f.pair.new_call(kObjectPath, kInterface, "Apply");
    REQUIRE(append_spec_dict(m.get(), corp()));
    std::optional<BusMessagePtr> reply;
    sd_bus_slot* slot = nullptr;
    REQUIRE(sd_bus_call_async(
                f.pair.client(), &slot, m.get(),
                [](sd_bus_message* r, void* ud, sd_bus_error*) noexcept {
                    static_cast<std::optional<BusMessagePtr>*>(ud)->emplace(sd_bus_message_ref(r));
                    return 0;
                },
                &reply, 5'000'000) >= 0);
    BusSlotPtr hold(slot);
    REQUIRE(f.pair.run_until([&] { return static_cast<bool>(f.authz.held); }));
    CHECK(f.service->busy());
    CHECK(f.state->installed.empty());
    f.authz.held(ok());
    REQUIRE(f.pair.run_until([&] { return reply.has_value(); }));
    CHECK(error_name_of(reply->get()) == "");
    CHECK(f.state->installed.count("corp") == 1);
    CHECK_FALSE(f.service->busy());
}

TEST_CASE("malformed Apply requests get named errors and change nothing") {
    struct Case {
        const char* what;
        std::function<void(sd_bus_message*)> build;
        std::string error;
    };
    auto dict = [](nlohmann::json j) {
        return [j](sd_bus_message* m) { REQUIRE(append_spec_dict(m, j)); };
    };
    auto with = [](const char* key, nlohmann::json value) {
        nlohmann::json j = corp();
        j[key] = value;
        return j;
    };
    const std::string invalid = error_name(Errc::InvalidArgument);
    const std::string too_large = error_name(Errc::TooLarge);
    std::vector<std::string> many(5000, "10.1.0.0/16");
    std::vector<Case> cases = {
        {"bad CIDR", dict(with("includes", {"10.0.0.0/x"})), invalid},
        {"prefix /33", dict(with("includes", {"10.0.0.0/33"})), invalid},
        {"port 70000", dict(with("includes", {"10.0.0.0/8:70000"})), invalid},
        {"5000-entry list", dict(with("includes", many)), too_large},
        {"shell injection in name", dict(with("name", "x; rm -rf /")), invalid},
        {"nft injection in name", dict(with("name", "x } flush ruleset {")), invalid},
        {"upper case name", dict(with("name", "Corp")), invalid},
        {"33-byte name", dict(with("name", std::string(33, 'a'))), invalid},
        {"empty name", dict(with("name", "")), invalid},
        {"unknown method", dict(with("method", "bogus")), invalid},
        {"300-byte string", dict(with("includes", {std::string(300, '1')})), too_large},
        {"unknown field",
         [](sd_bus_message* m) {
             REQUIRE(sd_bus_message_append(m, "a{sv}", 2, "name", "s", "corp", "rules", "s",
                                           "flush ruleset") >= 0);
         },
         invalid},
        {"name as uint32",
         [](sd_bus_message* m) {
             REQUIRE(sd_bus_message_append(m, "a{sv}", 1, "name", "u", 5) >= 0);
         },
         invalid},
        {"port as uint32",
         [](sd_bus_message* m) {
             REQUIRE(sd_bus_message_append(m, "a{sv}", 2, "name", "s", "corp", "tcp_port_v4", "u",
                                           70000u) >= 0);
         },
         invalid},
        {"includes as a string",
         [](sd_bus_message* m) {
             REQUIRE(sd_bus_message_append(m, "a{sv}", 2, "name", "s", "corp", "includes", "s",
                                           "10.0.0.0/8") >= 0);
         },
         invalid},
        {"duplicate key",
         [](sd_bus_message* m) {
             REQUIRE(sd_bus_message_append(m, "a{sv}", 2, "name", "s", "corp", "name", "s",
                                           "corp") >= 0);
         },
         invalid},
        {"empty dict",
         [](sd_bus_message* m) { REQUIRE(sd_bus_message_append(m, "a{sv}", 0) >= 0); }, invalid},
        {"wrong signature",
         [](sd_bus_message* m) { REQUIRE(sd_bus_message_append(m, "s", "corp") >= 0); },
         "org.freedesktop.DBus.Error.InvalidArgs"},
    };
    Fixture f;
    for (const auto& c : cases) {
        CAPTURE(c.what);
        auto m = f.pair.new_call(kObjectPath, kInterface, "Apply");
        c.build(m.get());
        auto reply = f.pair.call(m.get());
        CHECK(error_name_of(reply.get()) == c.error);
    }
    CHECK(f.state->installed.empty());
    CHECK(f.state->log.empty());
    CHECK(f.authz.asked == 0);  // refused at the door, before authorization
}

TEST_CASE("Remove and GetTransparentSockets refuse names outside the tunnel-name grammar") {
    Fixture f;
    for (const char* bad : {"", "a/b", "../../etc", "x;reboot", "ABC", "a b"}) {
        CAPTURE(bad);
        CHECK(error_name_of(f.call_name("Remove", bad).get()) == error_name(Errc::InvalidArgument));
        CHECK(error_name_of(f.call_name("GetTransparentSockets", bad).get()) ==
              error_name(Errc::InvalidArgument));
    }
}

TEST_CASE("an unknown method is refused by sd-bus with a named error") {
    Fixture f;
    auto reply = f.call_empty("FlushEverything");
    CHECK(error_name_of(reply.get()) == "org.freedesktop.DBus.Error.UnknownMethod");
}

TEST_CASE("GetTransparentSockets hands fds only for the caller's own tproxy tunnel") {
    Fixture f;
    CHECK(error_name_of(f.call_name("GetTransparentSockets", "corp").get()) ==
          error_name(Errc::NotFound));
    REQUIRE(error_name_of(f.apply(corp()).get()) == "");
    CHECK(error_name_of(f.call_name("GetTransparentSockets", "corp").get()) ==
          error_name(Errc::InvalidArgument));
    auto tp = corp();
    tp["name"] = "tp";
    tp["method"] = "tproxy";
    REQUIRE(error_name_of(f.apply(tp).get()) == "");
    auto reply = f.call_name("GetTransparentSockets", "tp");
    REQUIRE(error_name_of(reply.get()) == "");
    CHECK(f.minted == 1);
    REQUIRE(sd_bus_message_enter_container(reply.get(), 'a', "(ssh)") > 0);
    const char* family = nullptr;
    const char* proto = nullptr;
    int fd = -1;
    REQUIRE(sd_bus_message_read(reply.get(), "(ssh)", &family, &proto, &fd) > 0);
    CHECK(std::string(family) == "ipv4");
    CHECK(std::string(proto) == "tcp");
    CHECK(fcntl(fd, F_GETFD) >= 0);
}

TEST_CASE("Capabilities lists every method with the reason one is unavailable") {
    Fixture f;
    auto reply = f.call_empty("Capabilities");
    REQUIRE(error_name_of(reply.get()) == "");
    REQUIRE(sd_bus_message_enter_container(reply.get(), 'a', "(sbs)") > 0);
    std::map<std::string, std::pair<bool, std::string>> rows;
    for (;;) {
        const char* name = nullptr;
        int available = 0;
        const char* reason = nullptr;
        int r = sd_bus_message_read(reply.get(), "(sbs)", &name, &available, &reason);
        REQUIRE(r >= 0);
        if (r == 0) break;
        rows[name] = {available != 0, reason};
    }
    CHECK(rows.at("nft").first);
    CHECK(rows.at("nat").first);
    CHECK(rows.at("tproxy").first);
    CHECK_FALSE(rows.at("pf").first);
    CHECK(rows.at("pf").second.find("BSD") != std::string::npos);
    CHECK(rows.at("transparent-sockets").first);
    CHECK(rows.at("hosts").first);
    CHECK(rows.at("network-namespace").first);
    CHECK(rows.at("network-namespace").second == sshuttle::network_namespace_id());
    CHECK(rows.at("network-namespace").second.rfind("net:[", 0) == 0);
}

TEST_CASE("SetHosts writes the caller's block, ClearHosts and a vanished caller remove it") {
    Fixture f;
    auto m = f.pair.new_call(kObjectPath, kInterface, "SetHosts");
    REQUIRE(sd_bus_message_append(m.get(), "a(ss)", 2, "db.corp", "10.1.2.3", "web", "fd00::5") >=
            0);
    REQUIRE(error_name_of(f.pair.call(m.get()).get()) == "");
    const std::string with = read_text(f.hosts);
    CHECK(with.find("127.0.0.1 localhost\n") == 0);
    CHECK(with.find("10.1.2.3 db.corp\n") != std::string::npos);
    CHECK(with.find("fd00::5 web\n") != std::string::npos);
    CHECK(f.service->owns_anything());

    REQUIRE(error_name_of(f.call_empty("ClearHosts").get()) == "");
    CHECK(read_text(f.hosts) == "127.0.0.1 localhost\n");
    CHECK_FALSE(f.service->owns_anything());

    REQUIRE(error_name_of(f.pair.call(m.get()).get()) == "");  // the same message again
    f.service->caller_gone("stdio-test");
    CHECK(read_text(f.hosts) == "127.0.0.1 localhost\n");
}

TEST_CASE("bad hosts entries get named errors and leave the file alone") {
    Fixture f;
    const std::string before = read_text(f.hosts);
    auto send = [&](const char* name, const char* address) {
        auto m = f.pair.new_call(kObjectPath, kInterface, "SetHosts");
        REQUIRE(sd_bus_message_append(m.get(), "a(ss)", 1, name, address) >= 0);
        return error_name_of(f.pair.call(m.get()).get());
    };
    CHECK(send("db corp", "10.1.2.3") == error_name(Errc::InvalidArgument));
    CHECK(send("evil\n0.0.0.0 bank", "10.1.2.3") == error_name(Errc::InvalidArgument));
    CHECK(send("db", "10.1.2.999") == error_name(Errc::InvalidArgument));
    CHECK(send("-db", "10.1.2.3") == error_name(Errc::InvalidArgument));
    CHECK(read_text(f.hosts) == before);
}

TEST_CASE("a caller's disappearance and remove_all remove everything it owned") {
    Fixture f;
    REQUIRE(error_name_of(f.apply(corp()).get()) == "");
    auto two = corp();
    two["name"] = "two";
    REQUIRE(error_name_of(f.apply(two).get()) == "");
    CHECK(f.state->installed.size() == 2);
    f.service->caller_gone("stdio-test");
    CHECK(f.state->installed.empty());
    CHECK_FALSE(f.service->owns_anything());

    REQUIRE(error_name_of(f.apply(corp()).get()) == "");
    f.service->remove_all();
    CHECK(f.state->installed.empty());
}

TEST_CASE("in peer mode a same-name leftover of a dead helper is replaced, not duplicated") {
    Fixture f;
    f.state->leftovers.push_back("corp");
    REQUIRE(error_name_of(f.apply(corp()).get()) == "");
    CHECK(f.state->installed.count("corp") == 1);
    CHECK(f.state->leftovers.empty());
}

TEST_CASE("a backend failure is reported by its category and records no ownership") {
    Fixture f;
    f.state->fail_next_apply = Error(Errc::Backend, "nft: netlink said no");
    CHECK(error_name_of(f.apply(corp()).get()) == error_name(Errc::Backend));
    CHECK(f.list().empty());
}

TEST_CASE("sweep removes the leftovers of earlier helpers") {
    Fixture f;
    f.state->leftovers = {"old"};
    f.service->sweep();
    CHECK(f.state->leftovers.empty());
}

}  // namespace
}  // namespace sshuttle::helper

#include <doctest/doctest.h>

#include "helper/backend.hpp"

using namespace sshuttle;
using namespace sshuttle::helper;

namespace {
TunnelSpec spec_named(const std::string& name) {
    TunnelSpec spec;
    spec.name = name;
    spec.includes.push_back({Subnet::parse("10.0.0.0/8").value(), {}});
    spec.tcp_port_v4 = 12300;
    return spec;
}
}  // namespace

TEST_CASE("fake backend: apply, duplicate, remove, sweep") {
    auto state = std::make_shared<FakeBackendState>();
    auto backend = make_fake_backend(state);
    REQUIRE(backend->apply(spec_named("a")).has_value());
    auto dup = backend->apply(spec_named("a"));
    REQUIRE_FALSE(dup.has_value());
    CHECK(dup.error().code == Errc::Backend);
    CHECK(state->installed.size() == 1);

    state->leftovers = {"old"};
    CHECK(backend->installed().value() == std::vector<std::string>{"a", "old"});
    CHECK(backend->sweep().value() == std::vector<std::string>{"old"});
    CHECK(backend->installed().value() == std::vector<std::string>{"a"});

    REQUIRE(backend->remove("a").has_value());
    REQUIRE(backend->remove("a").has_value());  // idempotent
    CHECK(state->installed.empty());
    CHECK(state->log == std::vector<std::string>{"apply a", "apply a", "sweep", "remove a",
                                                 "remove a"});
}

TEST_CASE("fake backend: injected failures change nothing and fire once") {
    auto state = std::make_shared<FakeBackendState>();
    auto backend = make_fake_backend(state);
    state->fail_next_apply = Error(Errc::Backend, "nft: boom");
    auto r = backend->apply(spec_named("a"));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().message == "nft: boom");
    CHECK(state->installed.empty());
    REQUIRE(backend->apply(spec_named("a")).has_value());

    auto invalid = spec_named("B;");
    CHECK_FALSE(backend->apply(invalid).has_value());
}

// The a{sv} encoding of a spec survives the trip from the daemon's encoder to the helper's
// strict reader unchanged.
#include "helper/spec_codec.hpp"

#include <doctest/doctest.h>

#include <set>

#include <nlohmann/json.hpp>

#include "helper/methods.hpp"
#include "helper/spec.hpp"
#include "helper/testing_bus.hpp"

namespace sshuttle::helper {
namespace {

struct Echo {
    std::optional<Result<nlohmann::json>> read;
    BusSlotPtr slot;
    static int on_call(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
        static_cast<Echo*>(userdata)->read.emplace(read_spec_dict(m));
        return sd_bus_reply_method_return(m, "");
    }
};

Result<nlohmann::json> round_trip(const nlohmann::json& spec) {
    testing::PeerPair pair;
    Echo echo;
    static const sd_bus_vtable vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD("Apply", "a{sv}", "", &Echo::on_call, SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END};
    sd_bus_slot* s = nullptr;
    REQUIRE(sd_bus_add_object_vtable(pair.server(), &s, kObjectPath, kInterface, vtable, &echo) >=
            0);
    echo.slot.reset(s);
    auto m = pair.new_call(kObjectPath, kInterface, "Apply");
    auto appended = append_spec_dict(m.get(), spec);
    if (!appended) return std::move(appended).error();
    pair.call(m.get());
    REQUIRE(echo.read.has_value());
    return std::move(*echo.read);
}

TEST_CASE("every field of a full spec round-trips through a{sv}") {
    TunnelSpec spec;
    spec.name = "corp";
    spec.method = Method::Tproxy;
    spec.includes = {SubnetPort{*Subnet::parse("10.0.0.0/8"), PortRange{}}};
    spec.excludes = {SubnetPort{*Subnet::parse("10.1.0.0/16"), PortRange{80, 90}}};
    spec.dns_servers = {*IpAddress::parse("10.0.0.53")};
    spec.server_addresses = {*IpAddress::parse("192.0.2.7")};
    spec.tcp_port_v4 = 12300;
    spec.dns_port_v4 = 12299;
    spec.udp = true;
    spec.uid = 1000;
    const nlohmann::json json = spec_to_json(spec);
    auto back = round_trip(json);
    REQUIRE(back.has_value());
    auto parsed = spec_from_json(*back);
    REQUIRE(parsed.has_value());
    CHECK(*parsed == spec);
}

TEST_CASE("the encoder refuses keys and types the table does not know") {
    CHECK(round_trip({{"name", "corp"}, {"rules", "x"}}).error().code == Errc::InvalidArgument);
    CHECK(round_trip({{"name", 5}}).error().code == Errc::InvalidArgument);
    CHECK(round_trip({{"tcp_port_v4", 70000}}).error().code == Errc::InvalidArgument);
}

TEST_CASE("the table's keys are the spec's JSON keys") {
    TunnelSpec spec;
    spec.name = "x";
    spec.uid = 1;
    spec.gid = 2;
    const nlohmann::json json = spec_to_json(spec);
    std::set<std::string> table;
    for (const auto& f : spec_fields()) table.insert(f.key);
    std::set<std::string> keys;
    for (const auto& [k, v] : json.items()) keys.insert(k);
    CHECK(keys == table);
}

}  // namespace
}  // namespace sshuttle::helper

#include "helper/caps.hpp"

#include <doctest/doctest.h>

namespace sshuttle::helper {
namespace {

TEST_CASE("the plan keeps NET_ADMIN, and NET_RAW only when asked") {
    CHECK(capability_plan(false).keep == std::vector<cap_value_t>{CAP_NET_ADMIN});
    CHECK(capability_plan(true).keep == std::vector<cap_value_t>{CAP_NET_ADMIN, CAP_NET_RAW});
}

TEST_CASE("starting without CAP_NET_ADMIN is a named error") {
    auto r = check_capabilities({CAP_NET_RAW, CAP_SYS_ADMIN}, capability_plan(false));
    REQUIRE_FALSE(r.has_value());
    CHECK(r.error().code == Errc::PermissionDenied);
    CHECK(r.error().message.find("cap_net_admin") != std::string::npos);
    CHECK(check_capabilities({CAP_NET_ADMIN}, capability_plan(false)).has_value());
    CHECK_FALSE(check_capabilities({CAP_NET_ADMIN}, capability_plan(true)).has_value());
}

}  // namespace
}  // namespace sshuttle::helper

#include "daemon/firewall.hpp"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <set>
#include <string>

using namespace sshuttle;
using namespace sshuttle::daemon;

TEST_CASE("helper tunnel names keep valid names and map the others without collisions") {
    CHECK(helper_tunnel_name("corp") == "corp");
    CHECK(helper_tunnel_name("lab_2-x") == "lab_2-x");
    const std::set<std::string> mapped{
        helper_tunnel_name("corp.example.com"), helper_tunnel_name("corp-example-com"),
        helper_tunnel_name("Corp"), helper_tunnel_name("corp"), helper_tunnel_name("a@b"),
        helper_tunnel_name(std::string(64, 'a')), helper_tunnel_name(std::string(63, 'a'))};
    CHECK(mapped.size() == 7);
    for (const std::string& name : mapped) {
        CAPTURE(name);
        CHECK(helper::valid_tunnel_name(name));
    }
    CHECK(helper_tunnel_name("") == "tunnel");
    CHECK(helper_tunnel_name("Corp").rfind("corp-", 0) == 0);
}

TEST_CASE("SSHUTTLE_HELPER takes auto, system or private") {
    CHECK(*parse_helper_mode("") == HelperMode::Auto);
    CHECK(*parse_helper_mode("auto") == HelperMode::Auto);
    CHECK(*parse_helper_mode("system") == HelperMode::System);
    CHECK(*parse_helper_mode("private") == HelperMode::Private);
    auto bad = parse_helper_mode("sudo");
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("'sudo'") != std::string::npos);
}

TEST_CASE("the private helper is found next to a build tree's daemon, else where installed") {
    char tmpl[] = "/tmp/sshuttle-fwtest-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    const std::string root = tmpl;
    REQUIRE(mkdir((root + "/daemon").c_str(), 0755) == 0);
    REQUIRE(mkdir((root + "/helper").c_str(), 0755) == 0);
    const std::string built = root + "/helper/sshuttle-helper";
    const std::string installed = root + "/libexec-sshuttle-helper";

    auto none = find_helper_binary("", root + "/daemon/sshuttled", installed);
    REQUIRE_FALSE(none);
    CHECK(none.error().code == Errc::NotFound);
    CHECK(none.error().message.find(installed) != std::string::npos);

    std::ofstream(installed) << "#!/bin/sh\n";
    chmod(installed.c_str(), 0755);
    CHECK(*find_helper_binary("", root + "/daemon/sshuttled", installed) == installed);
    std::ofstream(built) << "#!/bin/sh\n";
    chmod(built.c_str(), 0644);  // not executable: skipped
    CHECK(*find_helper_binary("", root + "/daemon/sshuttled", installed) == installed);
    chmod(built.c_str(), 0755);
    CHECK(*find_helper_binary("", root + "/daemon/sshuttled", installed) ==
          root + "/daemon/../helper/sshuttle-helper");
    // An explicit path is the only candidate.
    CHECK_FALSE(find_helper_binary(root + "/nope", root + "/daemon/sshuttled", installed));

    unlink(built.c_str());
    unlink(installed.c_str());
    rmdir((root + "/helper").c_str());
    rmdir((root + "/daemon").c_str());
    rmdir(root.c_str());
}

#include "helper/hosts.hpp"

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "helper/methods.hpp"

namespace sshuttle::helper {
namespace {

HostEntry entry(const char* name, const char* ip) {
    return {name, *IpAddress::parse(ip)};
}

TEST_CASE("a caller's block is appended, replaced and removed without touching other lines") {
    const std::string base = "127.0.0.1 localhost\n::1 ip6-localhost\n";
    std::string one = replace_hosts_block(base, ":1.7", {entry("db", "10.0.0.5")});
    CHECK(one == base + "# sshuttle-helper begin :1.7\n10.0.0.5 db\n# sshuttle-helper end :1.7\n");
    std::string two = replace_hosts_block(one, ":1.9", {entry("web", "fd00::1")});
    std::string again = replace_hosts_block(two, ":1.7", {entry("db2", "10.0.0.6")});
    CHECK(again.find("10.0.0.5 db\n") == std::string::npos);
    CHECK(again.find("10.0.0.6 db2\n") != std::string::npos);
    CHECK(again.find("fd00::1 web\n") != std::string::npos);
    CHECK(replace_hosts_block(replace_hosts_block(again, ":1.7", {}), ":1.9", {}) == base);
    CHECK(remove_all_hosts_blocks(again) == base);
}

TEST_CASE("a begin marker without its end is left alone") {
    const std::string text = "# sshuttle-helper begin :1.7\n10.0.0.5 db\n192.168.1.1 router\n";
    CHECK(replace_hosts_block(text, ":1.7", {}) == text);
    CHECK(remove_all_hosts_blocks(text) == text);
}

TEST_CASE("a starting helper sweeps only blocks of helpers that are gone") {
    const std::string live = "stdio-" + std::to_string(getpid());
    CHECK_FALSE(stale_hosts_owner(live, true));
    CHECK_FALSE(stale_hosts_owner(live, false));
    CHECK(stale_hosts_owner(":1.42", true));
    CHECK_FALSE(stale_hosts_owner(":1.42", false));
    CHECK_FALSE(stale_hosts_owner("stdio-", true));
    CHECK_FALSE(stale_hosts_owner("stdio-12x", true));
    CHECK_FALSE(stale_hosts_owner("someone-else", true));
    // A pid that cannot exist (above the kernel's pid_max limit of 2^22).
    CHECK(stale_hosts_owner("stdio-99999999", false));
    std::string text = replace_hosts_block("", live, {entry("a", "10.0.0.1")});
    text = replace_hosts_block(text, "stdio-99999999", {entry("b", "10.0.0.2")});
    text = replace_hosts_block(text, ":1.7", {entry("c", "10.0.0.3")});
    const std::string swept =
        remove_hosts_blocks_if(text, [](std::string_view o) { return stale_hosts_owner(o, true); });
    CHECK(swept == replace_hosts_block("", live, {entry("a", "10.0.0.1")}));
}

TEST_CASE("host entries are validated: names, addresses, count") {
    CHECK(parse_host_entries({{"db.corp.example", "10.0.0.1"}, {"x", "::1"}}).has_value());
    for (const char* bad : {"", "a b", "a\nb", "-a", "a-", "a..b", "#c", "a/b", "a\tb"}) {
        CAPTURE(bad);
        auto r = parse_host_entries({{bad, "10.0.0.1"}});
        REQUIRE_FALSE(r.has_value());
        CHECK(r.error().code == Errc::InvalidArgument);
    }
    CHECK_FALSE(valid_host_name(std::string(64, 'a')));
    CHECK(valid_host_name(std::string(63, 'a')));
    auto bad_ip = parse_host_entries({{"db", "10.0.0.256"}});
    CHECK(bad_ip.error().code == Errc::InvalidArgument);
    std::vector<std::pair<std::string, std::string>> many(kMaxHostEntries + 1, {"a", "10.0.0.1"});
    CHECK(parse_host_entries(many).error().code == Errc::TooLarge);
}

TEST_CASE("HostsFile rewrites atomically and keeps the file's mode") {
    char tmpl[] = "/tmp/hosts-test-XXXXXX";
    const std::string dir = mkdtemp(tmpl);
    const std::string path = dir + "/hosts";
    std::ofstream(path) << "127.0.0.1 localhost\n";
    REQUIRE(::chmod(path.c_str(), 0640) == 0);
    HostsFile file(path);
    REQUIRE(file.set("stdio-1", {entry("db", "10.0.0.5")}));
    std::stringstream s;
    s << std::ifstream(path).rdbuf();
    CHECK(s.str().find("10.0.0.5 db\n") != std::string::npos);
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0640);
    REQUIRE(file.sweep());
    std::stringstream t;
    t << std::ifstream(path).rdbuf();
    CHECK(t.str() == "127.0.0.1 localhost\n");
    ::unlink(path.c_str());
    CHECK(::rmdir(dir.c_str()) == 0);  // no temporary file left behind
}

}  // namespace
}  // namespace sshuttle::helper

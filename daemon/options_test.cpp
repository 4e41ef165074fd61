#include "daemon/options.hpp"

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::daemon;

namespace {

Result<std::vector<IpAddress>> numeric_only(std::string_view host) {
    return Error(Errc::NotFound, "Unable to resolve address: " + std::string(host));
}

Result<std::string> no_files(const std::string& path) {
    return Error(Errc::NotFound, "cannot open " + path);
}

std::variant<ParsedArgs, ArgsError> parse(std::vector<std::string> args) {
    return parse_daemon_args(args, numeric_only, no_files);
}

}  // namespace

TEST_CASE("defaults: both loopback listeners with port search, latency control on") {
    auto v = parse({"-r", "u@h", "10.0.0.0/8"});
    REQUIRE(std::holds_alternative<ParsedArgs>(v));
    const TunnelConfig& c = std::get<ParsedArgs>(v).config;
    CHECK(c.remote.host == "h");
    CHECK(c.firewall.enabled);
    CHECK(c.firewall.method == proto::Method::Auto);
    REQUIRE(c.firewall.includes.size() == 1);
    CHECK(c.firewall.includes[0].to_string() == "10.0.0.0/8");
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].ip.to_string() == "127.0.0.1");
    CHECK(c.listen[1].ip.to_string() == "::1");
    CHECK(c.listen[0].port == 0);
    CHECK(c.mux.latency_control);
    CHECK(c.mux.latency_buffer_size == 32768);
    CHECK(c.ssh_words == std::vector<std::string>{"ssh"});
}

TEST_CASE("the shared option language reaches the daemon's config") {
    auto v = parse({"--remote=h:2222", "-e", "ssh -F cfg", "--no-lat", "--latency-buffer-size",
                    "65536", "-l", "127.0.0.1:12345,[::1]:12346", "--dns", "--to-ns", "10.0.0.53",
                    "-vv", "--wrap", "100", "--name", "lab", "10.0.0.0/8", "-x", "10.1.0.0/16",
                    "--ns-hosts", "10.0.0.9", "--method", "nat", "--user", "bob"});
    REQUIRE(std::holds_alternative<ParsedArgs>(v));
    const ParsedArgs& p = std::get<ParsedArgs>(v);
    const TunnelConfig& c = p.config;
    CHECK(c.remote.port == 2222);
    CHECK(c.ssh_words == std::vector<std::string>{"ssh", "-F", "cfg"});
    CHECK_FALSE(c.mux.latency_control);
    CHECK(c.mux.latency_buffer_size == 65536);
    CHECK(c.mux.max_channel == 100);
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].port == 12345);
    CHECK(c.listen[1].ip.to_string() == "::1");
    CHECK(c.dns);
    CHECK(c.to_ns == "10.0.0.53@0");
    CHECK(c.verbosity == 2);
    CHECK(p.options.name == "lab");
    CHECK(c.firewall.method == proto::Method::Nat);
    CHECK(c.firewall.dns);
    REQUIRE(c.firewall.excludes.size() == 1);
    CHECK(c.firewall.excludes[0].to_string() == "10.1.0.0/16");
    REQUIRE(c.firewall.ns_hosts.size() == 1);
    CHECK(c.firewall.user == "bob");
}

TEST_CASE("--ns-hosts alone runs the DNS listener; --no-firewall turns the rules off") {
    auto v = parse({"-r", "h", "10.0.0.0/8", "--ns-hosts", "10.0.0.9"});
    REQUIRE(std::holds_alternative<ParsedArgs>(v));
    CHECK(std::get<ParsedArgs>(v).config.dns);
    CHECK_FALSE(std::get<ParsedArgs>(v).config.firewall.dns);
    auto n = parse({"-r", "h", "--no-firewall"});
    REQUIRE(std::holds_alternative<ParsedArgs>(n));
    CHECK_FALSE(std::get<ParsedArgs>(n).config.firewall.enabled);
}

TEST_CASE("the CLI's canonical argv gives the daemon the same options") {
    auto resolve = [](std::string_view) -> Result<std::vector<IpAddress>> {
        return std::vector<IpAddress>{*IpAddress::parse("10.1.2.3")};
    };
    auto o = proto::parse_tunnel_options(
        std::vector<std::string>{"-r", "u@h", "--to-ns", "ns.example:5353", "-l", "localhost:1",
                                 "--no-firewall", "-v"},
        resolve, no_files);
    REQUIRE(o);
    auto v = parse(proto::to_args(*o));  // no resolver needed: the names are resolved
    REQUIRE(std::holds_alternative<ParsedArgs>(v));
    CHECK(std::get<ParsedArgs>(v).config.to_ns == "10.1.2.3@5353");
    CHECK(std::get<ParsedArgs>(v).config.listen[0].ip.to_string() == "10.1.2.3");
}

TEST_CASE("--listen keeps the last item of each family, --disable-ipv6 drops ::1") {
    auto v = parse({"-r", "h", "-l", "1.2.3.4:1,127.0.0.1:2", "--no-firewall"});
    REQUIRE(std::holds_alternative<ParsedArgs>(v));
    REQUIRE(std::get<ParsedArgs>(v).config.listen.size() == 1);
    CHECK(std::get<ParsedArgs>(v).config.listen[0].port == 2);
    auto q = parse({"-r", "h", "--disable-ipv6", "--no-firewall"});
    REQUIRE(std::holds_alternative<ParsedArgs>(q));
    CHECK(std::get<ParsedArgs>(q).config.listen.size() == 1);
}

TEST_CASE("bad arguments are named errors with sshuttle's exit codes") {
    struct Case {
        std::vector<std::string> args;
        const char* needle;
        int exit_code;
    };
    const Case cases[] = {
        {{}, "-r/--remote", 99},
        {{"-r", "h"}, "at least one subnet", 2},
        {{"-r", "h", "--bogus"}, "--bogus", 2},
        {{"-r", "h", "--l"}, "--l", 2},  // ambiguous: --listen, --latency-buffer-size
        {{"-r", "h", "-l", "::1:80"}, "brackets", 2},
        {{"-r", "h", "-l", "127.0.0.1:99999"}, "99999", 2},
        {{"-r", "h", "--latency-buffer-size", "x"}, "invalid int value", 2},
        {{"-r", "h", "--to-ns", "nowhere"}, "--to-ns", 2},
        {{"-r", "h", "-e", "ssh 'x"}, "--ssh-cmd", 2},
        {{"-r", "h", "10.0.0.0/8", "-t", "0x2"}, "--tmark is not supported yet", 2},
        {{"-r", "h", "10.0.0.0/8", "--method", "ipfw"}, "ipfw", 2},
        {{"-r", "h", "--python", "p", "--server-cmd", "s"}, "exclude", 2},
        {{"-r", "-oProxyCommand=x"}, "expected one argument", 2},
        {{"-r=-oProxyCommand=x", "10.0.0.0/8"}, "may not start", 99},
        {{"-r", "h", "--wrap", "3"}, "--wrap", 2},
    };
    for (const Case& c : cases) {
        CAPTURE(c.needle);
        auto v = parse(c.args);
        REQUIRE(std::holds_alternative<ArgsError>(v));
        const ArgsError& e = std::get<ArgsError>(v);
        CHECK(e.error.message.find(c.needle) != std::string::npos);
        CHECK(e.exit_code == c.exit_code);
    }
}

TEST_CASE("default tunnel names come from the host") {
    CHECK(default_tunnel_name(*parse_remote("u@corp.example.com:22")) == "corp.example.com");
    CHECK(default_tunnel_name(*parse_remote("[fd00::1]:22")) == "fd00--1");
}

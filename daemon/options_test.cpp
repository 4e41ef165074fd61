#include "daemon/options.hpp"

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::daemon;

namespace {
Result<ParsedArgs> parse(std::vector<std::string> args) { return parse_daemon_args(args); }
}  // namespace

TEST_CASE("defaults: both loopback listeners with port search, latency control on") {
    auto p = parse({"-r", "u@h"});
    REQUIRE(p);
    const TunnelConfig& c = p->config;
    CHECK(c.remote.host == "h");
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].ip.to_string() == "127.0.0.1");
    CHECK(c.listen[1].ip.to_string() == "::1");
    CHECK(c.listen[0].port == 0);
    CHECK(c.mux.latency_control);
    CHECK(c.mux.latency_buffer_size == 32768);
    CHECK(c.ssh_words == std::vector<std::string>{"ssh"});
}

TEST_CASE("options take sshuttle's spellings, abbreviations and = forms") {
    auto p = parse({"--remote=h:2222", "-e", "ssh -F cfg", "--no-lat", "--latency-buffer-size",
                    "65536", "-l", "127.0.0.1:12345,[::1]:12346", "--dns", "--to-ns",
                    "10.0.0.53", "-vv"});
    REQUIRE(p);
    const TunnelConfig& c = p->config;
    CHECK(c.remote.port == 2222);
    CHECK(c.ssh_words == std::vector<std::string>{"ssh", "-F", "cfg"});
    CHECK_FALSE(c.mux.latency_control);
    CHECK(c.mux.latency_buffer_size == 65536);
    REQUIRE(c.listen.size() == 2);
    CHECK(c.listen[0].port == 12345);
    CHECK(c.listen[1].ip.to_string() == "::1");
    CHECK(c.dns);
    CHECK(c.to_ns == "10.0.0.53@0");
    CHECK(c.verbosity == 2);
}

TEST_CASE("--listen keeps the last item of each family, --disable-ipv6 drops ::1") {
    auto p = parse({"-r", "h", "-l", "1.2.3.4:1,127.0.0.1:2"});
    REQUIRE(p);
    REQUIRE(p->config.listen.size() == 1);
    CHECK(p->config.listen[0].port == 2);
    auto q = parse({"-r", "h", "--disable-ipv6"});
    REQUIRE(q);
    CHECK(q->config.listen.size() == 1);
}

TEST_CASE("bad arguments are named errors") {
    struct Case {
        std::vector<std::string> args;
        const char* needle;
    };
    const Case cases[] = {
        {{}, "-r/--remote"},
        {{"-r", "h", "--bogus"}, "--bogus"},
        {{"-r", "h", "--l"}, "--l"},  // ambiguous: --listen, --latency-buffer-size
        {{"-r", "h", "-l", "::1:80"}, "brackets"},
        {{"-r", "h", "-l", "127.0.0.1:99999"}, "99999"},
        {{"-r", "h", "--latency-buffer-size", "0"}, "latency-buffer-size"},
        {{"-r", "h", "--latency-buffer-size", "x"}, "not a number"},
        {{"-r", "h", "--to-ns", "nowhere"}, "--to-ns"},
        {{"-r", "h", "-e", "ssh 'x"}, "--ssh-cmd"},
        {{"-r", "h", "10.0.0.0/8"}, "firewall"},
        {{"-r", "h", "--python", "p", "--server-cmd", "s"}, "exclude"},
        {{"-r", "-oProxyCommand=x"}, "may not start"},
        {{"-r", "h", "--wrap", "3"}, "--wrap"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.needle);
        auto r = parse(c.args);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidArgument);
        CHECK(r.error().message.find(c.needle) != std::string::npos);
    }
}

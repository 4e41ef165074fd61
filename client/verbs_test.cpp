#include "client/verbs.hpp"

#include <doctest/doctest.h>

using namespace sshuttle::client;
using nlohmann::json;

TEST_CASE("verbs: every verb is found and has help") {
    for (const char* name : {"up", "down", "status", "list", "help"}) {
        const Verb* v = find_verb(name);
        REQUIRE(v);
        CHECK(std::string(v->help).find("usage: sshuttle " + std::string(name)) == 0);
    }
    CHECK_FALSE(find_verb("10.0.0.0/8"));
    CHECK_FALSE(find_verb("-r"));
}

TEST_CASE("verb arguments: known flags, a bounded number of names") {
    VerbArgs a = parse_verb_args({"corp", "--json", "--watch"}, {"--json", "--watch"}, 1);
    CHECK(a.error.empty());
    CHECK(a.names == std::vector<std::string>{"corp"});
    CHECK(a.has("--json"));
    CHECK(a.has("--watch"));
    CHECK(parse_verb_args({"--jsn"}, {"--json"}, 1).error == "unrecognized argument --jsn");
    CHECK(parse_verb_args({"a", "b"}, {}, 1).error == "unexpected argument 'b'");
    CHECK_FALSE(parse_verb_args({"x"}, {}, 0).error.empty());
}

TEST_CASE("status for humans") {
    CHECK(format_bytes(0) == "0 B");
    CHECK(format_bytes(1536) == "1.5 KiB");
    CHECK(format_bytes(12ull * 1024 * 1024) == "12.0 MiB");
    CHECK(format_duration(42) == "42s");
    CHECK(format_duration(187) == "3m07s");
    CHECK(format_duration(7500) == "2h05m");
    CHECK(format_duration(3 * 86400 + 4 * 3600) == "3d04h");
    json s = {{"name", "corp"},
              {"state", "connected"},
              {"remote", "me@gw"},
              {"pid", 42},
              {"method", "nft"},
              {"subnets", {"10.0.0.0/8"}},
              {"excludes", json::array()},
              {"listen", {"127.0.0.1:12300"}},
              {"dns_port", 12299},
              {"uptime", 61},
              {"started", "2026-01-01T00:00:00Z"},
              {"channels_open", 2},
              {"connections", 5},
              {"bytes_in", 2048},
              {"bytes_out", 10},
              {"reconnects", 0},
              {"helper", "the sshuttle-helper service"},
              {"firewall_reapplied", 1},
              {"tcp_path", "ssh"},
              {"channels", {{"ssh", 2}, {"agent", 0}}},
              {"ssh_connections",
               {{{"index", 0}, {"state", "up"}, {"channels", 1}},
                {{"index", 1}, {"state", "gone"}, {"channels", 0}}}}};
    std::string text = format_status(s);
    CHECK(text.find("TCP through ssh: 2 in ssh channels, 0 on the agent") != std::string::npos);
    CHECK(text.find("ssh connections: [0] up 1 [1] gone 0") != std::string::npos);
    CHECK(text.find("rules by the sshuttle-helper service, re-applied 1x after it was lost") !=
          std::string::npos);
    CHECK(text.find("corp: connected to me@gw (pid 42)") == 0);
    CHECK(text.find("method nft, subnets 10.0.0.0/8") != std::string::npos);
    CHECK(text.find("DNS on port 12299") != std::string::npos);
    CHECK(text.find("up 1m01s") != std::string::npos);
    CHECK(text.find("2 channels open, 5 connections so far, 2.0 KiB in, 10 B out") !=
          std::string::npos);
    // A status from a newer or broken daemon with fields missing still prints.
    CHECK(format_status(json::object()).find("?: ? to ?") == 0);
}

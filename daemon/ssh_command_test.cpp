#include "daemon/ssh_command.hpp"

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::daemon;

TEST_CASE("shell_split follows POSIX quoting like shlex.split") {
    auto w = shell_split("ssh -o 'ProxyCommand nc %h %p' -i \"my key\" a\\ b");
    REQUIRE(w);
    REQUIRE(w->size() == 6);
    CHECK((*w)[0] == "ssh");
    CHECK((*w)[2] == "ProxyCommand nc %h %p");
    CHECK((*w)[4] == "my key");
    CHECK((*w)[5] == "a b");
    auto e = shell_split("  ");
    REQUIRE(e);
    CHECK(e->empty());
    auto q = shell_split("x\"a\\\"b\"''y");
    REQUIRE(q);
    REQUIRE(q->size() == 1);
    CHECK((*q)[0] == "xa\"by");
}

TEST_CASE("shell_split names unterminated quotes") {
    for (const char* bad : {"ssh 'oops", "ssh \"oops", "ssh oops\\"}) {
        CAPTURE(bad);
        auto r = shell_split(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidArgument);
        CHECK(r.error().message.find(bad) != std::string::npos);
    }
}

TEST_CASE("shell_quote round-trips through shell_split") {
    for (const char* word : {"plain", "", "with space", "it's", "a\"b", "$HOME", "x\ny"}) {
        CAPTURE(word);
        auto back = shell_split(shell_quote(word));
        REQUIRE(back);
        REQUIRE(back->size() == 1);
        CHECK((*back)[0] == word);
    }
}

TEST_CASE("parse_remote accepts sshuttle's -r forms") {
    auto a = parse_remote("alice@gate.example:2222");
    REQUIRE(a);
    CHECK(a->user == "alice");
    CHECK(a->host == "gate.example");
    CHECK(a->port == 2222);
    auto b = parse_remote("gate");
    REQUIRE(b);
    CHECK(b->user.empty());
    CHECK_FALSE(b->port);
    auto c = parse_remote("bob@[fd00::1]:22");
    REQUIRE(c);
    CHECK(c->host == "fd00::1");
    CHECK(c->port == 22);
    CHECK(c->to_string() == "bob@[fd00::1]:22");
    auto d = parse_remote("fd00::1");
    REQUIRE(d);
    CHECK(d->host == "fd00::1");
    CHECK_FALSE(d->port);
    auto e = parse_remote("we@ird@host");
    REQUIRE(e);
    CHECK(e->user == "we@ird");
}

TEST_CASE("parse_remote rejects what ssh would misread") {
    for (const char* bad : {"", "-", "-oProxyCommand=x", "a@-evil", "host:0", "host:70000",
                            "host:ssh", "[fd00::1", "[fd00::1]x", "@host", "u:pw@host",
                            "host name", "a@"}) {
        CAPTURE(bad);
        auto r = parse_remote(bad);
        REQUIRE_FALSE(r);
        CHECK(r.error().code == Errc::InvalidArgument);
    }
}

TEST_CASE("the remote command starts python through /bin/sh and exits 97 without one") {
    std::string cmd = remote_command({}, 1234);
    CHECK(cmd.rfind("/bin/sh -c ", 0) == 0);
    auto words = shell_split(cmd);
    REQUIRE(words);
    REQUIRE(words->size() == 3);
    CHECK((*words)[2].find("P=python3") == 0);
    CHECK((*words)[2].find("exit 97") != std::string::npos);
    CHECK((*words)[2].find("n=1234;") != std::string::npos);
    CHECK(agent_stage1(5).find('\n') == std::string::npos);
    CHECK(remote_command({"/opt/py/bin/python3", ""}, 10).rfind("/opt/py/bin/python3 -c ", 0) == 0);
    CHECK(remote_command({"", "sshuttle-server --stdio"}, 10) == "sshuttle-server --stdio");
}

TEST_CASE("ssh_argv puts the port before the target and the command after --") {
    auto target = parse_remote("u@h:2200");
    REQUIRE(target);
    auto argv = ssh_argv({"ssh", "-F", "cfg"}, *target, "cmd");
    std::vector<std::string> want{"ssh", "-F", "cfg", "-p", "2200", "u@h", "--", "cmd"};
    CHECK(argv == want);
}

TEST_CASE("a master's options follow the user's words; an extra master runs -N without a command") {
    auto target = parse_remote("u@h:2200");
    REQUIRE(target);
    auto opts = control_master_options("/run/x%y/m0");
    std::vector<std::string> want_opts{"-o", "ControlMaster=yes", "-o", "ControlPath=/run/x%%y/m0",
                                       "-o", "ControlPersist=no"};
    CHECK(opts == want_opts);
    auto argv = ssh_master_argv({"ssh", "-F", "cfg"}, *target, "/d/m1");
    std::vector<std::string> want{"ssh", "-F", "cfg", "-o", "ControlMaster=yes", "-o",
                                  "ControlPath=/d/m1", "-o", "ControlPersist=no", "-N", "-p",
                                  "2200", "u@h"};
    CHECK(argv == want);
}

TEST_CASE("agent_payload appends a main() call with hex-escaped JSON") {
    std::string p = agent_payload("def main(o): pass", "{\"a\":\"'\"}");
    CHECK(p.find("def main(o): pass\nmain(json.loads(b\"\\x7b") == 0);
    CHECK(p.back() == '\n');
    CHECK(p.find('\'') == std::string::npos);
}

TEST_CASE("remote exit codes are explained in one line") {
    CHECK(explain_remote_exit(97).find("python") != std::string::npos);
    CHECK(explain_remote_exit(255).find("-x") != std::string::npos);
    CHECK(explain_remote_exit(3).find("3") != std::string::npos);
}

TEST_CASE("ssh -G finds the real host name behind an ssh_config alias") {
    auto t = parse_remote("me@corp:2222");
    REQUIRE(t);
    CHECK(ssh_config_argv({"ssh", "-F", "cfg"}, *t) ==
          std::vector<std::string>{"ssh", "-F", "cfg", "-G", "-p", "2222", "me@corp"});
    CHECK(ssh_config_hostname("user me\nhostname 192.0.2.7\nport 2222\n") == "192.0.2.7");
    CHECK(ssh_config_hostname("hostname jump.example.com\r\n") == "jump.example.com");
    CHECK(ssh_config_hostname("user me\nhostnames x\n") == "");
    CHECK(ssh_config_hostname("") == "");
}

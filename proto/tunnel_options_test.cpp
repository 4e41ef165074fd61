#include "proto/tunnel_options.hpp"

#include <doctest/doctest.h>

#include <map>

using namespace sshuttle;
using namespace sshuttle::proto;

namespace {

// Names the tests may resolve; anything else fails as sshuttle's resolver does.
Result<std::vector<IpAddress>> fake_resolve(std::string_view host) {
    if (host == "localhost")
        return std::vector<IpAddress>{*IpAddress::parse("127.0.0.1"), *IpAddress::parse("::1")};
    if (host == "corp.example") return std::vector<IpAddress>{*IpAddress::parse("10.9.8.7")};
    return Error(Errc::NotFound, "Unable to resolve address: " + std::string(host));
}

struct FakeFiles {
    std::map<std::string, std::string> files;
    FileReader reader() const {
        return [this](const std::string& path) -> Result<std::string> {
            auto it = files.find(path);
            if (it == files.end())
                return Error(Errc::NotFound, "cannot open " + path + ": No such file or directory");
            return it->second;
        };
    }
};

const FakeFiles kNoFiles;

Result<TunnelOptions> parse(const std::vector<std::string>& args, const FakeFiles& files = kNoFiles,
                            std::optional<std::string> env = std::nullopt) {
    auto expanded = expand_args(args, env, files.reader());
    if (!expanded) return expanded.error();
    return parse_tunnel_options(*expanded, fake_resolve, files.reader());
}

}  // namespace

TEST_CASE("defaults are sshuttle's") {
    auto o = parse({"-r", "u@h", "10.0.0.0/8"});
    REQUIRE(o);
    CHECK(o->remote == "u@h");
    REQUIRE(o->subnets.size() == 1);
    CHECK(o->subnets[0].to_string() == "10.0.0.0/8");
    CHECK(o->latency_control);
    CHECK(o->latency_buffer_size == 32768);
    CHECK(o->wrap == 65535);
    CHECK(o->pidfile == "sshuttle.pid");
    CHECK(o->tmark == "0x01");
    CHECK(o->ssh_cmd == std::vector<std::string>{"ssh"});
    CHECK(o->method == Method::Auto);
    CHECK_FALSE(o->listen_given);
    CHECK(check_usage(*o));
    CHECK(check_fatal(*o));
}

TEST_CASE("long options take unique prefixes and both value forms") {
    auto o =
        parse({"--rem=h", "--no-lat", "--latency-b", "65536", "--disable", "--meth", "nft", "0/0"});
    REQUIRE(o);
    CHECK(o->remote == "h");
    CHECK_FALSE(o->latency_control);
    CHECK(o->latency_buffer_size == 65536);
    CHECK(o->disable_ipv6);
    CHECK(o->method == Method::Nft);
    CHECK(o->subnets[0].to_string() == "0.0.0.0/0");
}

TEST_CASE("an exact long name wins over longer names it prefixes") {
    // "--dns" is exact although no other option starts with it; "--name" likewise.
    auto o = parse({"-r", "h", "--dns", "--name", "corp", "--no-firewall"});
    REQUIRE(o);
    CHECK(o->dns);
    CHECK(o->name == "corp");
}

TEST_CASE("short flags combine, a value may be attached or follow") {
    auto o = parse(
        {"-vNHr", "host", "-vv", "-l1234", "-x10.1.0.0/16", "-t=FF", "-e", "ssh -F 'my cfg'"});
    REQUIRE(o);
    CHECK(o->verbose == 3);
    CHECK(o->auto_nets);
    CHECK(o->auto_hosts);
    CHECK(o->remote == "host");
    REQUIRE(o->listen.size() == 1);
    CHECK(o->listen[0].to_string() == "0.0.0.0:1234");  // a bare port is the wildcard, as sshuttle
    CHECK(o->excludes[0].to_string() == "10.1.0.0/16");
    CHECK(o->tmark == "0xff");
    CHECK(o->ssh_cmd == std::vector<std::string>{"ssh", "-F", "my cfg"});
}

TEST_CASE("single-valued options: the last wins; lists accumulate") {
    auto o = parse({"-r", "a", "-r", "b", "-x", "10.1.0.0/16", "-x", "10.2.0.0/16", "1.0.0.0/8",
                    "--", "2.0.0.0/8"});
    REQUIRE(o);
    CHECK(o->remote == "b");
    CHECK(o->excludes.size() == 2);
    CHECK(o->subnets.size() == 2);
}

TEST_CASE("--listen keeps the last item of each family") {
    auto o = parse({"-r", "h", "-l", "127.0.0.1:1,[::1]:2,127.0.0.2:3", "--no-firewall"});
    REQUIRE(o);
    REQUIRE(o->listen.size() == 2);
    CHECK(o->listen[0].to_string() == "[::1]:2");
    CHECK(o->listen[1].to_string() == "127.0.0.2:3");
}

TEST_CASE("host names resolve through the resolver seam") {
    auto o = parse(
        {"-r", "h", "corp.example/24:80-90", "--to-ns", "localhost:5353", "-l", "localhost:9"});
    REQUIRE(o);
    CHECK(o->subnets[0].to_string() == "10.9.8.0/24:80-90");
    REQUIRE(o->to_ns);
    CHECK(o->to_ns->to_string() == "127.0.0.1:5353");
    CHECK(o->listen[0].to_string() == "127.0.0.1:9");
}

TEST_CASE("--ns-hosts and --seed-hosts split on commas and whitespace") {
    auto o = parse({"-r", "h", "--ns-hosts", "10.0.0.1, fd00::53", "--seed-hosts", "a,b c", "-N"});
    REQUIRE(o);
    REQUIRE(o->ns_hosts.size() == 2);
    CHECK(o->ns_hosts[1].to_string() == "fd00::53");
    CHECK(o->seed_hosts == std::vector<std::string>{"a", "b", "c"});
}

TEST_CASE("@file: one argument per line with sshuttle's comment and quote rules") {
    FakeFiles files;
    files.files["p.conf"] =
        "# a comment\n"
        "--remote=u@h\n"
        "  -v  \n"
        "\"10.0.0.0/8\"\n"
        "'--ssh-cmd=ssh -i key'\n"
        "@more.conf\n";
    files.files["more.conf"] = "--dns\r\n--name\r\nlab\r\n";
    auto o = parse({"@p.conf", "-v"}, files);
    REQUIRE(o);
    CHECK(o->remote == "u@h");
    CHECK(o->verbose == 2);
    CHECK(o->subnets.size() == 1);
    CHECK(o->ssh_cmd == std::vector<std::string>{"ssh", "-i", "key"});
    CHECK(o->dns);
    CHECK(o->name == "lab");
}

TEST_CASE("@file lines carry their origin") {
    auto lines = args_file_lines("#x\n a \n\n", "f");
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].text == "a");
    CHECK(lines[0].origin == "f:2");
    CHECK(lines[1].text == "");
    CHECK(lines[1].origin == "f:3");
}

TEST_CASE("SSHUTTLE_ARGS is shell-split and goes first, so the command line wins") {
    auto o = parse({"-r", "cli", "10.0.0.0/8"}, kNoFiles,
                   std::string("-r env --ssh-cmd 'ssh -p 2' 192.168.0.0/16"));
    REQUIRE(o);
    CHECK(o->remote == "cli");
    CHECK(o->ssh_cmd.size() == 3);
    CHECK(o->subnets.size() == 2);
}

TEST_CASE("-s and -X read subnet files") {
    FakeFiles files;
    files.files["inc"] = "# inc\n10.0.0.0/8\n\n192.168.1.0/24\n";
    files.files["exc"] = "10.1.0.0/16\n";
    auto o = parse({"-r", "h", "-s", "inc", "-X", "exc"}, files);
    REQUIRE(o);
    CHECK(o->subnets.size() == 2);
    CHECK(o->excludes.size() == 1);
}

TEST_CASE("help and version") {
    auto o = parse({"-h"});
    REQUIRE(o);
    CHECK(o->help);
    auto v = parse({"-V"});
    REQUIRE(v);
    CHECK(v->version);
    CHECK(std::string(tunnel_options_help()).find("--no-latency-control") != std::string::npos);
}

TEST_CASE("to_args is canonical: parsing it gives the same options") {
    auto o = parse({"-r",
                    "u@h:22",
                    "-l",
                    "127.0.0.1:12300,[::1]:0",
                    "-x",
                    "10.1.0.0/16",
                    "--dns",
                    "--to-ns",
                    "10.0.0.53",
                    "--ns-hosts",
                    "10.0.0.1",
                    "--method",
                    "tproxy",
                    "--python",
                    "python3.11",
                    "-e",
                    "ssh -F 'a b'",
                    "--seed-hosts",
                    "x,y",
                    "--no-latency-control",
                    "--latency-buffer-size",
                    "1000",
                    "--wrap",
                    "100",
                    "--disable-ipv6",
                    "-D",
                    "--pidfile",
                    "/run/x.pid",
                    "--syslog",
                    "-vv",
                    "--user",
                    "u",
                    "--group",
                    "g",
                    "-t",
                    "2",
                    "--server-cmd",
                    "srv --x 'y'",
                    "--name",
                    "n",
                    "--control-socket",
                    "/run/s.sock",
                    "--tcp-path",
                    "ssh",
                    "--ssh-connections",
                    "3",
                    "-N",
                    "-H",
                    "10.0.0.0/8",
                    "[fd00::/8]:80-90"});
    REQUIRE(o);
    auto again = parse_tunnel_options(to_args(*o), fake_resolve, kNoFiles.reader());
    REQUIRE(again);
    CHECK(to_args(*again) == to_args(*o));
    CHECK(again->ssh_cmd == o->ssh_cmd);
    CHECK(again->subnets == o->subnets);
    CHECK(again->excludes == o->excludes);
    CHECK(again->server_cmd == "srv --x 'y'");
    CHECK(again->verbose == 2);
    CHECK(again->tmark == "0x2");
    CHECK(again->to_ns->to_string() == "10.0.0.53:0");
    CHECK(again->tcp_path == TcpPath::Ssh);
    CHECK(again->ssh_connections == 3);
}

TEST_CASE("--tcp-path and --ssh-connections: defaults, choices, limits") {
    auto d = parse({"-r", "h", "10.0.0.0/8"});
    REQUIRE(d);
    CHECK(d->tcp_path == TcpPath::Auto);
    CHECK(d->ssh_connections == 1);
    CHECK(to_args(*d) == std::vector<std::string>{"--remote=h", "--", "10.0.0.0/8"});
    auto a = parse({"-r", "h", "--tcp-path=agent", "10.0.0.0/8"});
    REQUIRE(a);
    CHECK(a->tcp_path == TcpPath::Agent);
    CHECK(check_usage(*a));
    auto bad = parse({"-r", "h", "--tcp-path", "tcp"});
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message.find("invalid choice: 'tcp' (choose from 'auto', 'ssh', 'agent')") !=
          std::string::npos);
    for (const char* n : {"0", "17", "x"}) {
        CAPTURE(n);
        CHECK_FALSE(parse({"-r", "h", "--ssh-connections", n}));
    }
    auto both = parse({"-r", "h", "--tcp-path", "agent", "--ssh-connections", "2", "10.0.0.0/8"});
    REQUIRE(both);
    auto usage = check_usage(*both);
    REQUIRE_FALSE(usage);
    CHECK(usage.error().message.find("--ssh-connections") != std::string::npos);
}

TEST_CASE("check_usage: a subnet, -s or -N is required unless --no-firewall") {
    auto o = parse({"-r", "h"});
    REQUIRE(o);
    auto r = check_usage(*o);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("-N/--auto-nets") != std::string::npos);
    auto nf = parse({"-r", "h", "--no-firewall"});
    REQUIRE(nf);
    CHECK(check_usage(*nf));
    auto both = parse({"-r", "h", "--no-firewall", "10.0.0.0/8"});
    REQUIRE(both);
    CHECK_FALSE(check_usage(*both));
    auto py = parse({"-r", "h", "-N", "--python", "p", "--server-cmd", "s"});
    REQUIRE(py);
    CHECK_FALSE(check_usage(*py));
}

TEST_CASE("check_usage: -H needs the helper, --seed-hosts needs -H") {
    auto h = parse({"-r", "h", "--no-firewall", "-H"});
    REQUIRE(h);
    auto r = check_usage(*h);
    REQUIRE_FALSE(r);
    CHECK(r.error().message.find("--no-firewall") != std::string::npos);
    auto seeds = parse({"-r", "h", "10.0.0.0/8", "--seed-hosts", "a"});
    REQUIRE(seeds);
    auto s = check_usage(*seeds);
    REQUIRE_FALSE(s);
    CHECK(s.error().message.find("add -H") != std::string::npos);
    auto fine = parse({"-r", "h", "10.0.0.0/8", "-H", "--seed-hosts", "a,b"});
    REQUIRE(fine);
    CHECK(check_usage(*fine));
    CHECK(check_supported(*fine));
}

TEST_CASE("check_fatal: -r missing, empty or '-'") {
    for (const char* remote : {"", "-"}) {
        auto o = parse({std::string("--remote=") + remote, "-N"});
        REQUIRE(o);
        auto r = check_fatal(*o);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find("-r/--remote") != std::string::npos);
    }
}

TEST_CASE("check_supported accepts what the helper backs now") {
    for (const std::vector<std::string>& extra :
         {std::vector<std::string>{"10.0.0.0/8"}, {"-N"}, {"10.0.0.0/8", "-x", "10.1.0.0/16"},
          {"10.0.0.0/8", "--dns", "--ns-hosts", "10.0.0.1"}, {"10.0.0.0/8", "--method", "nat"},
          {"10.0.0.0/8", "--method", "tproxy"}, {"10.0.0.0/8", "--user", "x", "--group", "y"}}) {
        std::vector<std::string> args{"-r", "h"};
        args.insert(args.end(), extra.begin(), extra.end());
        auto o = parse(args);
        REQUIRE(o);
        CHECK(check_supported(*o));
    }
}

TEST_CASE("check_supported names the option that has no feature behind it yet") {
    struct Case {
        std::vector<std::string> args;
        const char* needle;
    };
    const Case cases[] = {
        {{"10.0.0.0/8", "--method", "ipfw"}, "--method ipfw"},
        {{"10.0.0.0/8", "--method", "tproxy", "--dns"}, "CAP_NET_BIND_SERVICE"},
        {{"10.0.0.0/8", "--method", "tproxy", "--ns-hosts", "10.0.0.1"}, "with --method tproxy"},
        {{"--no-firewall", "-t", "2"}, "--tmark"},
        {{"--no-firewall", "-D"}, "--daemon"},
        {{"--no-firewall", "--syslog"}, "--syslog"},
        {{"--no-firewall", "--sudoers-no-modify"}, "sudo"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.needle);
        std::vector<std::string> args{"-r", "h"};
        args.insert(args.end(), c.args.begin(), c.args.end());
        auto o = parse(args);
        REQUIRE(o);
        auto r = check_supported(*o);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find(c.needle) != std::string::npos);
    }
    auto fine = parse({"-r", "h", "--no-firewall", "--dns", "--to-ns", "10.0.0.1", "-l", "1",
                       "--python", "p", "--wrap", "99", "--no-lat", "-vvv", "--pidfile", "x"});
    REQUIRE(fine);
    CHECK(check_supported(*fine));
}

TEST_CASE("malformed command lines are usage errors naming the problem") {
    struct Case {
        std::vector<std::string> args;
        const char* needle;
    };
    FakeFiles files;
    files.files["loop"] = "@loop\n";
    files.files["leaf"] = "-v\n";
    for (int i = 0; i < 300; ++i) files.files["fanout"] += "@leaf\n";
    files.files["blank"] = "-r\nh\n\n";
    files.files["bad"] = "-r\nh\n--wrap=x\n";
    files.files["onetoken"] = "--remote u@h\n";
    files.files["badsubnets"] = "10.0.0.0/8\n10.0.0.0/99\n";
    const Case cases[] = {
        {{"--bogus"}, "unrecognized arguments: --bogus"},
        {{"--l", "1"}, "could match --listen, --latency-buffer-size"},
        {{"--no", "x"}, "ambiguous option: --no could match"},
        {{"-Q"}, "unrecognized arguments: -Q"},
        {{"-r"}, "argument -r/--remote: expected one argument"},
        {{"-r", "-v"}, "expected one argument"},
        {{"--dns=yes"}, "ignored explicit argument 'yes'"},
        {{"--wrap", "5"}, "--wrap"},
        {{"--wrap", "70000"}, "not between"},
        {{"--latency-buffer-size", "-1"}, "invalid int value"},
        {{"--latency-buffer-size", "12x"}, "invalid int value: '12x'"},
        {{"--method", "iptables"}, "invalid choice: 'iptables'"},
        {{"-t", "0xzz"}, "hexadecimal"},
        {{"-l", "::1:80"}, "--listen"},
        {{"-l", "127.0.0.1:99999"}, "99999"},
        {{"--to-ns", "nowhere.invalid"}, "Unable to resolve address: nowhere.invalid"},
        {{"--ns-hosts", "10.0.0.1,dns.example"}, "'dns.example' is not an IP address"},
        {{"10.0.0.0/33"}, "Slash in CIDR notation (/33) is not between 0 and 32"},
        {{"nowhere.invalid"}, "Unable to resolve address"},
        {{""}, "is not a valid address/mask:port format"},
        {{"-e", "ssh 'x"}, "no closing quotation"},
        {{"-e", ""}, "empty command"},
        {{"--name", "../x"}, "not a tunnel name"},
        {{"--name", "-x"}, "expected one argument"},
        {{"--control-socket", "rel.sock"}, "absolute path"},
        {{"@missing"}, "cannot open missing"},
        {{"@loop"}, "nested more than 8 deep"},
        {{"@fanout"}, "more than 256 @files"},
        {{"@blank"}, "blank:3: '' is not a valid address/mask:port format"},
        {{"@bad"}, "bad:3: argument --wrap: invalid int value: 'x'"},
        {{"@onetoken"}, "onetoken:1: unrecognized arguments: --remote u@h"},
        {{"-s", "badsubnets"}, "line 2"},
        {{"-X", "missing"}, "cannot open missing"},
        {{"-r", "h", "--pidfile", std::string(5000, 'x')}, "4096"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.needle);
        auto r = parse(c.args, files);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find(c.needle) != std::string::npos);
    }
    auto env = parse({"-N"}, kNoFiles, std::string("-r 'x"));
    REQUIRE_FALSE(env);
    CHECK(env.error().message.find("SSHUTTLE_ARGS") != std::string::npos);
}

TEST_CASE("shell words split and quote back") {
    for (const char* word : {"plain", "with space", "it's", "", "$HOME", "a\"b", "-F/x"}) {
        auto words = split_shell_words(quote_shell_word(word));
        REQUIRE(words);
        REQUIRE(words->size() == 1);
        CHECK((*words)[0] == word);
    }
    auto w = split_shell_words(R"(a\ b "c \"d\"" 'e\n')");
    REQUIRE(w);
    CHECK(*w == std::vector<std::string>{"a b", "c \"d\"", "e\\n"});
}

TEST_CASE("tunnel names") {
    CHECK(is_tunnel_name("corp"));
    CHECK(is_tunnel_name("u@corp.example-2"));
    CHECK_FALSE(is_tunnel_name(""));
    CHECK_FALSE(is_tunnel_name(".hidden"));
    CHECK_FALSE(is_tunnel_name("a/b"));
    CHECK_FALSE(is_tunnel_name(std::string(65, 'a')));
}

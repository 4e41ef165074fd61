#include "daemon/options.hpp"

#include "common/subnet.hpp"

#include <getopt.h>

#include <algorithm>

namespace sshuttle::daemon {

namespace {

enum LongOnly {
    kPython = 1000, kServerCmd, kDns, kToNs, kNoLatencyControl, kLatencyBufferSize, kWrap,
    kDisableIpv6,
};

Error bad(const std::string& option, const std::string& value, const std::string& why) {
    return Error(Errc::InvalidArgument, option + " '" + value + "': " + why);
}

Result<long> parse_number(const std::string& option, const std::string& text, long lo, long hi) {
    if (text.empty() || text.size() > 10 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return bad(option, text, "not a number");
    long v = std::stol(text);
    if (v < lo || v > hi)
        return bad(option, text, "not between " + std::to_string(lo) + " and " + std::to_string(hi));
    return v;
}

// sshuttled takes numeric addresses only: a name would need a blocking lookup, and which of
// its addresses to listen on is the CLI's decision, not the daemon's.
Result<std::vector<IpAddress>> numeric_only(std::string_view host) {
    return Error(Errc::InvalidArgument, "'" + std::string(host) + "' is not an IP address");
}

// [IP:]PORT, [v6]:PORT (common/subnet's parse_ipport); a bare port means 127.0.0.1 here, where
// sshuttle means 0.0.0.0: the daemon never listens on a wildcard address without being told.
Result<ListenAddress> parse_listen_item(const std::string& item) {
    bool bare_port = !item.empty() &&
                     std::all_of(item.begin(), item.end(), [](char c) { return c >= '0' && c <= '9'; });
    auto parsed = parse_ipport(bare_port ? "127.0.0.1:" + item : item, numeric_only);
    if (!parsed) return parsed.error().with_context("--listen");
    return ListenAddress{parsed->first, parsed->second};
}

Result<void> parse_listen(const std::string& text, TunnelConfig& config) {
    config.listen.clear();
    std::size_t start = 0;
    while (start <= text.size()) {
        std::size_t comma = text.find(',', start);
        std::string item = text.substr(start, comma == std::string::npos ? std::string::npos
                                                                          : comma - start);
        auto parsed = parse_listen_item(item);
        if (!parsed) return parsed.error();
        // The last item of each family wins, as in sshuttle.
        std::erase_if(config.listen,
                      [&](const ListenAddress& l) { return l.ip.family() == parsed->ip.family(); });
        config.listen.push_back(*parsed);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return ok();
}

Result<std::string> parse_to_ns(const std::string& text) {
    auto parsed = parse_ipport(text, numeric_only);
    if (!parsed) return parsed.error().with_context("--to-ns");
    return parsed->first.to_string() + "@" + std::to_string(parsed->second);
}

}  // namespace

const char* daemon_usage() {
    return "usage: sshuttled -r [USER@]HOST[:PORT] [options]\n"
           "\n"
           "The unprivileged tunnel daemon: runs ssh, uploads the remote agent and carries the\n"
           "connections redirected to its listeners. It does not install firewall rules itself;\n"
           "the sshuttle command and its helper do (or, in tests, the test).\n"
           "\n"
           "  -r, --remote HOST        ssh target, [USER@]HOST[:PORT] or [IPv6]:PORT\n"
           "  -e, --ssh-cmd CMD        the ssh command (default: ssh), split like a shell\n"
           "      --python PATH        python on the remote host (default: python3, then python)\n"
           "      --server-cmd CMD     run CMD remotely instead of uploading our agent; it must\n"
           "                           speak the sshuttle mux on stdin/stdout\n"
           "  -l, --listen [IP:]PORT[,[IPv6]:PORT]  TCP listener(s); port 0 searches from 12300\n"
           "                           down (default: 127.0.0.1:0,[::1]:0)\n"
           "      --disable-ipv6       no IPv6 listener (when --listen is not given)\n"
           "      --dns                also listen for DNS queries (UDP, next free port)\n"
           "      --to-ns IP[:PORT]    the remote resolver for DNS (default: the server's)\n"
           "  -N, --auto-nets         ask the server for its routes (logged)\n"
           "      --no-latency-control       sshuttle's latency control off (stock servers)\n"
           "      --latency-buffer-size N    its window in bytes (default 32768)\n"
           "      --wrap N             highest channel number (default 65535)\n"
           "  -v, --verbose            more messages (repeat for more)\n"
           "  -V, --version            print the version\n"
           "  -h, --help               this text\n";
}

Result<ParsedArgs> parse_daemon_args(const std::vector<std::string>& args) {
    static const option kLong[] = {
        {"remote", required_argument, nullptr, 'r'},
        {"ssh-cmd", required_argument, nullptr, 'e'},
        {"python", required_argument, nullptr, kPython},
        {"server-cmd", required_argument, nullptr, kServerCmd},
        {"listen", required_argument, nullptr, 'l'},
        {"disable-ipv6", no_argument, nullptr, kDisableIpv6},
        {"dns", no_argument, nullptr, kDns},
        {"to-ns", required_argument, nullptr, kToNs},
        {"auto-nets", no_argument, nullptr, 'N'},
        {"no-latency-control", no_argument, nullptr, kNoLatencyControl},
        {"latency-buffer-size", required_argument, nullptr, kLatencyBufferSize},
        {"wrap", required_argument, nullptr, kWrap},
        {"verbose", no_argument, nullptr, 'v'},
        {"version", no_argument, nullptr, 'V'},
        {"help", no_argument, nullptr, 'h'},
        {nullptr, 0, nullptr, 0},
    };
    std::vector<std::string> storage = args;
    std::vector<char*> argv{const_cast<char*>("sshuttled")};
    for (std::string& a : storage) argv.push_back(a.data());
    argv.push_back(nullptr);

    ParsedArgs out;
    TunnelConfig& c = out.config;
    bool have_remote = false, listen_given = false, disable_ipv6 = false;
    std::string remote_text;
    ::optind = 0;  // full re-initialisation (glibc), so parsing twice in one process works
    ::opterr = 0;
    int argc = static_cast<int>(argv.size()) - 1;
    for (;;) {
        int index = 0;
        int opt = ::getopt_long(argc, argv.data(), "+r:e:l:NvVh", kLong, &index);
        if (opt == -1) break;
        std::string value = ::optarg ? ::optarg : "";
        switch (opt) {
            case 'r': remote_text = value; have_remote = true; break;
            case 'e': {
                auto words = shell_split(value);
                if (!words) return words.error().with_context("--ssh-cmd");
                if (words->empty()) return bad("--ssh-cmd", value, "empty command");
                c.ssh_words = *words;
                break;
            }
            case kPython: c.launch.python = value; break;
            case kServerCmd: c.launch.server_cmd = value; break;
            case 'l':
                if (auto r = parse_listen(value, c); !r) return r.error();
                listen_given = true;
                break;
            case kDisableIpv6: disable_ipv6 = true; break;
            case kDns: c.dns = true; break;
            case kToNs: {
                auto ns = parse_to_ns(value);
                if (!ns) return ns.error();
                c.to_ns = *ns;
                break;
            }
            case 'N': c.auto_nets = true; break;
            case kNoLatencyControl: c.mux.latency_control = false; break;
            case kLatencyBufferSize: {
                auto n = parse_number("--latency-buffer-size", value, 1, 1 << 30);
                if (!n) return n.error();
                c.mux.latency_buffer_size = static_cast<std::size_t>(*n);
                break;
            }
            case kWrap: {
                auto n = parse_number("--wrap", value, 10, 65535);
                if (!n) return n.error();
                c.mux.max_channel = static_cast<std::uint16_t>(*n);
                break;
            }
            case 'v': ++c.verbosity; break;
            case 'V': out.show_version = true; break;
            case 'h': out.show_help = true; break;
            case ':':
                return Error(Errc::InvalidArgument, "option " + std::string(argv[static_cast<std::size_t>(::optind) - 1]) +
                                                        " needs a value");
            default: {
                std::string what = ::optopt ? std::string("-") + static_cast<char>(::optopt)
                                            : std::string(argv[static_cast<std::size_t>(::optind) - 1]);
                return Error(Errc::InvalidArgument,
                             "unknown or ambiguous option '" + what + "' (see --help)");
            }
        }
    }
    if (out.show_help || out.show_version) return out;
    if (::optind < argc)
        return Error(Errc::InvalidArgument,
                     "unexpected argument '" + std::string(argv[static_cast<std::size_t>(::optind)]) +
                         "': sshuttled does not install firewall rules for subnets; use the "
                         "sshuttle command (or redirect traffic to the listener yourself)");
    if (!have_remote) return parse_remote("").error();
    auto remote = parse_remote(remote_text);
    if (!remote) return remote.error();
    c.remote = *remote;
    if (!c.launch.server_cmd.empty() && !c.launch.python.empty())
        return Error(Errc::InvalidArgument, "--python and --server-cmd exclude each other");
    if (!listen_given) {
        c.listen.push_back({*IpAddress::parse("127.0.0.1"), 0});
        if (!disable_ipv6) c.listen.push_back({*IpAddress::parse("::1"), 0});
    }
    return out;
}

}  // namespace sshuttle::daemon

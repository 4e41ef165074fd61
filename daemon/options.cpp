#include "daemon/options.hpp"

#include <algorithm>
#include <cctype>

namespace sshuttle::daemon {

Result<TunnelConfig> tunnel_config(const proto::TunnelOptions& o) {
    TunnelConfig c;
    auto remote = parse_remote(o.remote);
    if (!remote) return remote.error();
    c.remote = *remote;
    c.ssh_words = o.ssh_cmd;
    c.launch.python = o.python;
    c.launch.server_cmd = o.server_cmd;
    if (o.listen_given) {
        for (const proto::ListenItem& l : o.listen) c.listen.push_back({l.ip, l.port});
    } else {
        c.listen.push_back({*IpAddress::parse("127.0.0.1"), 0});
        if (!o.disable_ipv6) c.listen.push_back({*IpAddress::parse("::1"), 0});
    }
    c.dns = o.dns || !o.ns_hosts.empty();
    c.firewall.enabled = !o.no_firewall;
    c.firewall.method = o.method;
    c.firewall.includes = o.subnets;
    c.firewall.excludes = o.excludes;
    c.firewall.ns_hosts = o.ns_hosts;
    c.firewall.dns = o.dns;
    c.firewall.user = o.user;
    c.firewall.group = o.group;
    if (o.to_ns) c.to_ns = o.to_ns->ip.to_string() + "@" + std::to_string(o.to_ns->port);
    c.auto_nets = o.auto_nets;
    c.auto_hosts = o.auto_hosts;
    c.seed_hosts = o.seed_hosts;
    c.mux.latency_control = o.latency_control;
    c.mux.latency_buffer_size = o.latency_buffer_size;
    c.mux.max_channel = o.wrap;
    c.tcp_path = o.tcp_path;
    c.ssh_connections = o.ssh_connections;
    c.verbosity = o.verbose;
    return c;
}

std::variant<ParsedArgs, ArgsError> parse_daemon_args(const std::vector<std::string>& args,
                                                      const Resolver& resolver,
                                                      const proto::FileReader& reader) {
    auto expanded = proto::expand_args(args, std::nullopt, reader);
    if (!expanded) return ArgsError{expanded.error(), proto::kExitUsage};
    auto options = proto::parse_tunnel_options(*expanded, resolver, reader);
    if (!options) return ArgsError{options.error(), proto::kExitUsage};
    ParsedArgs out;
    out.options = std::move(*options);
    out.show_help = out.options.help;
    out.show_version = out.options.version;
    if (out.show_help || out.show_version) return out;
    if (!out.options.server_cmd.empty() && !out.options.python.empty())
        return ArgsError{
            Error(Errc::InvalidArgument, "--python and --server-cmd exclude each other"),
            proto::kExitUsage};
    if (auto r = proto::check_fatal(out.options); !r)
        return ArgsError{r.error(), proto::kExitFatal};
    if (auto r = proto::check_usage(out.options); !r)
        return ArgsError{r.error(), proto::kExitUsage};
    if (auto r = proto::check_supported(out.options); !r)
        return ArgsError{r.error(), proto::kExitUsage};
    auto config = tunnel_config(out.options);
    if (!config) return ArgsError{config.error(), proto::kExitFatal};
    out.config = std::move(*config);
    return out;
}

std::string default_tunnel_name(const RemoteTarget& remote) {
    std::string name;
    for (char c : remote.host) {
        bool okc = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == '-';
        name += okc ? c : '-';
    }
    name.erase(0, name.find_first_not_of(".-"));
    if (name.size() > proto::kMaxTunnelName) name.resize(proto::kMaxTunnelName);
    return name.empty() ? "tunnel" : name;
}

const char* daemon_usage() {
    return "usage: sshuttled -r [USER@]HOST[:PORT] [options] SUBNET... [@PROFILE]\n"
           "\n"
           "The unprivileged tunnel daemon behind the sshuttle command: runs ssh, uploads the\n"
           "remote agent and carries the connections redirected to its listeners. It takes\n"
           "sshuttle's options (see sshuttle --help; @FILE reads arguments from a file) and\n"
           "serves its control socket for `sshuttle status/down`. The firewall rules that\n"
           "send SUBNETS to the listeners are installed by sshuttle-helper: the system\n"
           "service when it runs in our network namespace, else a private helper started\n"
           "directly (root) or through sudo. SSHUTTLE_HELPER=system|private forces one;\n"
           "SSHUTTLE_HELPER_PATH names the private helper's binary.\n"
           "\n"
           "  -r, --remote HOST        ssh target, [USER@]HOST[:PORT] or [IPv6]:PORT\n"
           "  -e, --ssh-cmd CMD        the ssh command (default: ssh), split like a shell\n"
           "      --python PATH        python on the remote host (default: python3, then python)\n"
           "      --server-cmd CMD     run CMD remotely instead of uploading our agent\n"
           "  -l, --listen [IP:]PORT[,[IPv6]:PORT]  TCP listener(s); port 0 searches from 12300\n"
           "                           down (default: 127.0.0.1:0,[::1]:0)\n"
           "      --disable-ipv6       no IPv6 listener (when --listen is not given)\n"
           "  SUBNET                   IP[/WIDTH][:PORT[-PORT]] to capture; -x SUBNET excludes,\n"
           "                           -s/-X FILE read them from a file, -N asks the server\n"
           "      --method M           nft (default), nat or tproxy\n"
           "      --ns-hosts IP,...    capture DNS to these servers; --dns adds resolv.conf's\n"
           "      --user U, --group G  capture only this user's / group's traffic\n"
           "      --no-firewall        install no rules (someone else redirects to -l)\n"
           "      --dns                also listen for DNS queries (UDP, next free port)\n"
           "      --to-ns IP[:PORT]    the remote resolver for DNS (default: the server's)\n"
           "      --no-latency-control, --latency-buffer-size N, --wrap N  as sshuttle\n"
           "      --tcp-path P         auto (ssh channels, the agent when the server forbids\n"
           "                           forwarding), ssh, or agent (sshuttle 1.x's path)\n"
           "      --ssh-connections N  ssh connections carrying TCP (1-16, default 1)\n"
           "      --name NAME          the tunnel's name (default: from the remote host)\n"
           "      --control-socket PATH  default: $RUNTIME_DIRECTORY/NAME.sock under systemd,\n"
           "                           /run/sshuttle/NAME.sock for root, else\n"
           "                           $XDG_RUNTIME_DIR/sshuttle/NAME.sock\n"
           "  -v, --verbose            more messages (repeat for more)\n"
           "  -V, --version            print the version\n"
           "  -h, --help               this text\n";
}

}  // namespace sshuttle::daemon

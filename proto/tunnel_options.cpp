#include "proto/tunnel_options.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "common/unique_fd.hpp"

namespace sshuttle::proto {

namespace {

Error usage(const std::string& origin, const std::string& message) {
    return Error(Errc::InvalidArgument, origin.empty() ? message : origin + ": " + message);
}

bool is_digits(std::string_view s) {
    return !s.empty() &&
           std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

std::string_view strip(std::string_view s) {
    const char* ws = " \t\n\r\f\v";
    std::size_t b = s.find_first_not_of(ws);
    if (b == std::string_view::npos) return {};
    std::size_t e = s.find_last_not_of(ws);
    return s.substr(b, e - b + 1);
}

// Splits on commas and whitespace, as sshuttle's parse_list; empty items are dropped.
std::vector<std::string> split_list(std::string_view text) {
    std::vector<std::string> out;
    std::string cur;
    for (char c : text) {
        if (c == ',' || std::isspace(static_cast<unsigned char>(c))) {
            if (!cur.empty()) out.push_back(std::move(cur));
            cur.clear();
        } else {
            cur += c;
        }
    }
    if (!cur.empty()) out.push_back(std::move(cur));
    return out;
}

// One option of the table. `apply` gets the option's value ("" for flags).
struct Spec {
    const char* long_name;  // without "--"
    char short_name;        // 0: none
    bool takes_value;
    Result<void> (*apply)(TunnelOptions&, const std::string& value, const Resolver&,
                          const FileReader&);
};

Result<long> number(const std::string& value, long lo, long hi) {
    if (!is_digits(value) || value.size() > 10)
        return Error(Errc::InvalidArgument, "invalid int value: '" + value + "'");
    long v = std::stol(value);
    if (v < lo || v > hi)
        return Error(Errc::InvalidArgument, "'" + value + "' is not between " + std::to_string(lo) +
                                                " and " + std::to_string(hi));
    return v;
}

// -l: [IP:]PORT[,...]; a bare port is 0.0.0.0 (sshuttle); the last item of each family wins.
Result<void> apply_listen(TunnelOptions& o, const std::string& v, const Resolver& resolver,
                          const FileReader&) {
    std::vector<ListenItem> items;
    std::size_t start = 0;
    for (;;) {
        std::size_t comma = v.find(',', start);
        std::string item = v.substr(start, comma == std::string::npos ? comma : comma - start);
        auto parsed = parse_ipport(item, resolver);
        if (!parsed) return parsed.error();
        std::erase_if(items,
                      [&](const ListenItem& l) { return l.ip.family() == parsed->first.family(); });
        items.push_back({parsed->first, parsed->second});
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    o.listen = std::move(items);
    o.listen_given = true;
    return ok();
}

Result<void> apply_subnet_file(std::vector<SubnetPort>& into, const std::string& path,
                               const Resolver& resolver, const FileReader& reader) {
    auto text = reader(path);
    if (!text) return text.error();
    auto entries = parse_subnet_file(*text, resolver);
    if (!entries) return entries.error().with_context(path);
    into.insert(into.end(), entries->begin(), entries->end());
    return ok();
}

Result<void> apply_string(std::string& into, const std::string& v) {
    if (v.size() > 4096) return Error(Errc::TooLarge, "value longer than 4096 bytes");
    into = v;
    return ok();
}

#define FLAG(field, value)                                                                         \
    [](TunnelOptions& o, const std::string&, const Resolver&, const FileReader&) -> Result<void> { \
        o.field = value;                                                                           \
        return ok();                                                                               \
    }
#define STRING(field)                                                                \
    [](TunnelOptions& o, const std::string& v, const Resolver&, const FileReader&) { \
        return apply_string(o.field, v);                                             \
    }

const Spec kSpecs[] = {
    {"remote", 'r', true, STRING(remote)},
    {"listen", 'l', true, apply_listen},
    {"auto-hosts", 'H', false, FLAG(auto_hosts, true)},
    {"auto-nets", 'N', false, FLAG(auto_nets, true)},
    {"dns", 0, false, FLAG(dns, true)},
    {"ns-hosts", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         std::vector<IpAddress> ips;
         for (const std::string& item : split_list(v)) {
             auto ip = IpAddress::parse(item);
             if (!ip) return Error(Errc::InvalidArgument, "'" + item + "' is not an IP address");
             ips.push_back(*ip);
         }
         o.ns_hosts = std::move(ips);
         return ok();
     }},
    {"to-ns", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver& resolver,
        const FileReader&) -> Result<void> {
         auto parsed = parse_ipport(v, resolver);
         if (!parsed) return parsed.error();
         o.to_ns = ListenItem{parsed->first, parsed->second};
         return ok();
     }},
    {"method", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         for (Method m :
              {Method::Auto, Method::Nft, Method::Nat, Method::Tproxy, Method::Pf, Method::Ipfw}) {
             if (v == method_name(m)) {
                 o.method = m;
                 return ok();
             }
         }
         return Error(Errc::InvalidArgument, "invalid choice: '" + v +
                                                 "' (choose from 'auto', 'nft', 'nat', 'tproxy', "
                                                 "'pf', 'ipfw')");
     }},
    {"python", 0, true, STRING(python)},
    {"ssh-cmd", 'e', true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         auto words = split_shell_words(v);
         if (!words) return words.error();
         if (words->empty()) return Error(Errc::InvalidArgument, "empty command");
         o.ssh_cmd = std::move(*words);
         return ok();
     }},
    {"exclude", 'x', true,
     [](TunnelOptions& o, const std::string& v, const Resolver& resolver,
        const FileReader&) -> Result<void> {
         auto entries = parse_subnetport(v, resolver);
         if (!entries) return entries.error();
         o.excludes.insert(o.excludes.end(), entries->begin(), entries->end());
         return ok();
     }},
    {"exclude-from", 'X', true,
     [](TunnelOptions& o, const std::string& v, const Resolver& resolver,
        const FileReader& reader) { return apply_subnet_file(o.excludes, v, resolver, reader); }},
    {"subnets", 's', true,
     [](TunnelOptions& o, const std::string& v, const Resolver& resolver,
        const FileReader& reader) { return apply_subnet_file(o.subnets, v, resolver, reader); }},
    {"seed-hosts", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         auto hosts = split_list(v);
         for (const std::string& h : hosts)
             if (h.size() > kMaxHostNameBytes)
                 return Error(Errc::InvalidArgument, "host name longer than 253 bytes");
         o.seed_hosts = std::move(hosts);
         return ok();
     }},
    {"no-latency-control", 0, false, FLAG(latency_control, false)},
    {"latency-buffer-size", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         auto n = number(v, 0, 1L << 30);
         if (!n) return n.error();
         // 0 means "not given" in sshuttle.
         o.latency_buffer_size = *n == 0 ? 32768 : static_cast<std::uint32_t>(*n);
         return ok();
     }},
    {"wrap", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         // Below 10 ids the daemon could not run DNS and a connection at once.
         auto n = number(v, 10, 65535);
         if (!n) return n.error();
         o.wrap = static_cast<std::uint16_t>(*n);
         return ok();
     }},
    {"disable-ipv6", 0, false, FLAG(disable_ipv6, true)},
    {"daemon", 'D', false, FLAG(daemon, true)},
    {"pidfile", 0, true, STRING(pidfile)},
    {"syslog", 0, false, FLAG(syslog, true)},
    {"verbose", 'v', false,
     [](TunnelOptions& o, const std::string&, const Resolver&, const FileReader&) -> Result<void> {
         o.verbose = std::min(o.verbose + 1, 9);
         return ok();
     }},
    {"version", 'V', false, FLAG(version, true)},
    {"user", 0, true, STRING(user)},
    {"group", 0, true, STRING(group)},
    {"tmark", 't', true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         std::string hex = v;
         std::transform(hex.begin(), hex.end(), hex.begin(), [](char c) {
             return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
         });
         if (hex.rfind("0x", 0) == 0) hex.erase(0, 2);
         if (hex.empty() || hex.size() > 8 || !std::all_of(hex.begin(), hex.end(), [](char c) {
                 return std::isxdigit(static_cast<unsigned char>(c));
             }))
             return Error(Errc::InvalidArgument, "'" + v + "' must be a hexadecimal value");
         o.tmark = "0x" + hex;
         return ok();
     }},
    {"sudoers-no-modify", 0, false, FLAG(sudoers_no_modify, true)},
    {"sudoers-user", 0, true, STRING(sudoers_user)},
    {"no-sudo-pythonpath", 0, false, FLAG(no_sudo_pythonpath, true)},
    {"server-cmd", 0, true, STRING(server_cmd)},
    {"name", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         if (!is_tunnel_name(v))
             return Error(Errc::InvalidArgument,
                          "'" + v +
                              "' is not a tunnel name (1 to 64 of A-Z a-z 0-9 _ . @ -, "
                              "not starting with '.' or '-')");
         o.name = v;
         return ok();
     }},
    {"control-socket", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         // sun_path holds 108 bytes with its NUL.
         if (v.empty() || v[0] != '/' || v.size() > 107)
             return Error(Errc::InvalidArgument,
                          "'" + v + "' is not an absolute path of at most 107 bytes");
         o.control_socket = v;
         return ok();
     }},
    {"no-firewall", 0, false, FLAG(no_firewall, true)},
    {"tcp-path", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         for (TcpPath p : {TcpPath::Auto, TcpPath::Ssh, TcpPath::Agent}) {
             if (v == tcp_path_name(p)) {
                 o.tcp_path = p;
                 return ok();
             }
         }
         return Error(Errc::InvalidArgument,
                      "invalid choice: '" + v + "' (choose from 'auto', 'ssh', 'agent')");
     }},
    {"ssh-connections", 0, true,
     [](TunnelOptions& o, const std::string& v, const Resolver&,
        const FileReader&) -> Result<void> {
         auto n = number(v, 1, kMaxSshConnections);
         if (!n) return n.error();
         o.ssh_connections = static_cast<int>(*n);
         return ok();
     }},
    {"help", 'h', false, FLAG(help, true)},
};

#undef FLAG
#undef STRING

std::string display_name(const Spec& s) {
    std::string out;
    if (s.short_name) out = std::string("-") + s.short_name + "/";
    return out + "--" + s.long_name;
}

// argparse's test for "this looks like an option, not a value": a leading '-' that is not a
// negative number and not "-" alone.
bool looks_like_option(std::string_view a) {
    if (a.size() < 2 || a[0] != '-') return false;
    if (is_digits(a.substr(1))) return false;
    return true;
}

struct Lookup {
    const Spec* spec = nullptr;
    std::string error;
};

Lookup find_long(std::string_view name) {
    std::vector<const Spec*> candidates;
    for (const Spec& s : kSpecs) {
        std::string_view l = s.long_name;
        if (l == name) return {&s, {}};
        if (!name.empty() && l.substr(0, name.size()) == name) candidates.push_back(&s);
    }
    if (candidates.size() == 1) return {candidates.front(), {}};
    if (candidates.empty()) return {nullptr, "unrecognized arguments: --" + std::string(name)};
    std::string list;
    for (const Spec* s : candidates)
        list += std::string(list.empty() ? "" : ", ") + "--" + s->long_name;
    return {nullptr, "ambiguous option: --" + std::string(name) + " could match " + list};
}

const Spec* find_short(char c) {
    for (const Spec& s : kSpecs)
        if (s.short_name == c) return &s;
    return nullptr;
}

}  // namespace

const char* method_name(Method method) noexcept {
    switch (method) {
        case Method::Auto:
            return "auto";
        case Method::Nft:
            return "nft";
        case Method::Nat:
            return "nat";
        case Method::Tproxy:
            return "tproxy";
        case Method::Pf:
            return "pf";
        case Method::Ipfw:
            return "ipfw";
    }
    return "auto";
}

const char* tcp_path_name(TcpPath path) noexcept {
    switch (path) {
        case TcpPath::Auto:
            return "auto";
        case TcpPath::Ssh:
            return "ssh";
        case TcpPath::Agent:
            return "agent";
    }
    return "auto";
}

std::string ListenItem::to_string() const { return endpoint_string(ip, port); }

Result<std::string> read_text_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return Error::from_errno("cannot open " + path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return Error::from_errno("cannot stat " + path);
    if (!S_ISREG(st.st_mode)) return Error(Errc::InvalidArgument, path + ": not a regular file");
    std::string out;
    char buf[16384];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return Error::from_errno("cannot read " + path);
        if (n == 0) break;
        out.append(buf, static_cast<std::size_t>(n));
        if (out.size() > kMaxSubnetFileBytes)
            return Error(Errc::TooLarge,
                         path + ": larger than " + std::to_string(kMaxSubnetFileBytes) + " bytes");
    }
    return out;
}

Result<std::vector<std::string>> split_shell_words(std::string_view text) {
    std::vector<std::string> words;
    std::string cur;
    bool in_word = false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        char c = text[i];
        if (c == '\'') {
            std::size_t end = text.find('\'', i + 1);
            if (end == std::string_view::npos)
                return Error(Errc::InvalidArgument, "no closing quotation");
            cur.append(text.substr(i + 1, end - i - 1));
            i = end;
            in_word = true;
        } else if (c == '"') {
            std::size_t j = i + 1;
            for (; j < text.size() && text[j] != '"'; ++j) {
                if (text[j] == '\\' && j + 1 < text.size() &&
                    std::string_view("\"\\$`").find(text[j + 1]) != std::string_view::npos)
                    ++j;
                cur += text[j];
            }
            if (j >= text.size()) return Error(Errc::InvalidArgument, "no closing quotation");
            i = j;
            in_word = true;
        } else if (c == '\\') {
            if (i + 1 >= text.size()) return Error(Errc::InvalidArgument, "no escaped character");
            cur += text[++i];
            in_word = true;
        } else if (std::isspace(static_cast<unsigned char>(c))) {
            if (in_word) words.push_back(std::move(cur));
            cur.clear();
            in_word = false;
        } else {
            cur += c;
            in_word = true;
        }
    }
    if (in_word) words.push_back(std::move(cur));
    return words;
}

std::string quote_shell_word(std::string_view word) {
    if (!word.empty() && std::all_of(word.begin(), word.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) ||
                   std::string_view("_@%+=:,./-").find(c) != std::string_view::npos;
        }))
        return std::string(word);
    std::string out = "'";
    for (char c : word) {
        if (c == '\'')
            out += "'\"'\"'";
        else
            out += c;
    }
    return out + "'";
}

std::vector<Arg> args_file_lines(std::string_view contents, const std::string& path) {
    std::vector<Arg> out;
    std::size_t pos = 0;
    int line_no = 0;
    while (pos < contents.size()) {
        std::size_t end = contents.find_first_of("\r\n", pos);
        std::string_view line =
            contents.substr(pos, end == std::string_view::npos ? end : end - pos);
        ++line_no;
        if (end == std::string_view::npos) {
            pos = contents.size();
        } else {
            pos = end + 1;
            if (contents[end] == '\r' && pos < contents.size() && contents[pos] == '\n') ++pos;
        }
        // sshuttle: only a '#' in the very first column makes a comment.
        if (!line.empty() && line[0] == '#') continue;
        std::string_view s = strip(line);
        if (s.size() >= 2 && (s[0] == '"' || s[0] == '\'') && s.back() == s[0])
            s = s.substr(1, s.size() - 2);
        out.push_back({std::string(s), path + ":" + std::to_string(line_no)});
    }
    return out;
}

namespace {

Result<void> expand_into(const std::vector<Arg>& args, const FileReader& reader, int depth,
                         std::size_t& files_read, std::vector<Arg>& out) {
    for (const Arg& a : args) {
        if (a.text.empty() || a.text[0] != '@') {
            if (out.size() >= kMaxArgs)
                return usage(a.origin, "more than " + std::to_string(kMaxArgs) + " arguments");
            out.push_back(a);
            continue;
        }
        std::string path = a.text.substr(1);
        if (depth >= kMaxArgsFileDepth)
            return usage(a.origin, "@" + path + ": @files nested more than " +
                                       std::to_string(kMaxArgsFileDepth) + " deep");
        if (++files_read > kMaxArgsFiles)
            return usage(a.origin,
                         "@" + path + ": more than " + std::to_string(kMaxArgsFiles) + " @files");
        auto text = reader(path);
        if (!text) return usage(a.origin, text.error().to_string());
        if (auto r = expand_into(args_file_lines(*text, path), reader, depth + 1, files_read, out);
            !r)
            return r;
    }
    return ok();
}

}  // namespace

Result<std::vector<Arg>> expand_arg_files(const std::vector<Arg>& args, const FileReader& reader) {
    std::vector<Arg> out;
    std::size_t files_read = 0;
    if (auto r = expand_into(args, reader, 0, files_read, out); !r) return r.error();
    return out;
}

Result<std::vector<Arg>> expand_args(const std::vector<std::string>& args,
                                     const std::optional<std::string>& env_args,
                                     const FileReader& reader) {
    std::vector<Arg> in;
    if (env_args) {
        auto words = split_shell_words(*env_args);
        if (!words) return usage("SSHUTTLE_ARGS", words.error().message);
        for (std::string& w : *words) in.push_back({std::move(w), "SSHUTTLE_ARGS"});
    }
    for (const std::string& a : args) in.push_back({a, ""});
    return expand_arg_files(in, reader);
}

Result<TunnelOptions> parse_tunnel_options(const std::vector<Arg>& args, const Resolver& resolver,
                                           const FileReader& reader) {
    TunnelOptions o;
    auto apply = [&](const Spec& s, const std::string& value, const Arg& where) -> Result<void> {
        if (auto r = s.apply(o, value, resolver, reader); !r)
            return usage(where.origin, "argument " + display_name(s) + ": " + r.error().message);
        return ok();
    };
    auto missing = [](const Spec& s, const Arg& where) {
        return usage(where.origin, "argument " + display_name(s) + ": expected one argument");
    };
    bool only_positionals = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const Arg& a = args[i];
        const std::string& t = a.text;
        if (only_positionals || !looks_like_option(t)) {
            auto entries = parse_subnetport(t, resolver);
            if (!entries) return usage(a.origin, entries.error().message);
            o.subnets.insert(o.subnets.end(), entries->begin(), entries->end());
            continue;
        }
        if (t == "--") {
            only_positionals = true;
            continue;
        }
        if (t.rfind("--", 0) == 0) {
            std::size_t eq = t.find('=');
            std::string name = t.substr(2, eq == std::string::npos ? eq : eq - 2);
            Lookup found = find_long(name);
            if (!found.spec) return usage(a.origin, found.error);
            const Spec& s = *found.spec;
            if (!s.takes_value) {
                if (eq != std::string::npos)
                    return usage(a.origin, "argument " + display_name(s) +
                                               ": ignored explicit argument '" + t.substr(eq + 1) +
                                               "'");
                if (auto r = apply(s, "", a); !r) return r.error();
                continue;
            }
            if (eq != std::string::npos) {
                if (auto r = apply(s, t.substr(eq + 1), a); !r) return r.error();
                continue;
            }
            if (i + 1 >= args.size() || looks_like_option(args[i + 1].text)) return missing(s, a);
            ++i;
            if (auto r = apply(s, args[i].text, args[i]); !r) return r.error();
            continue;
        }
        // A cluster of short options: -vN, -rHOST, -vr HOST.
        for (std::size_t j = 1; j < t.size(); ++j) {
            const Spec* s = find_short(t[j]);
            if (!s) return usage(a.origin, "unrecognized arguments: -" + std::string(1, t[j]));
            if (!s->takes_value) {
                if (auto r = apply(*s, "", a); !r) return r.error();
                continue;
            }
            if (j + 1 < t.size()) {
                std::string value = t.substr(j + 1);
                if (value[0] == '=') value.erase(0, 1);
                if (auto r = apply(*s, value, a); !r) return r.error();
                break;
            }
            if (i + 1 >= args.size() || looks_like_option(args[i + 1].text)) return missing(*s, a);
            ++i;
            if (auto r = apply(*s, args[i].text, args[i]); !r) return r.error();
            break;
        }
    }
    return o;
}

Result<TunnelOptions> parse_tunnel_options(const std::vector<std::string>& args,
                                           const Resolver& resolver, const FileReader& reader) {
    std::vector<Arg> with_origin;
    with_origin.reserve(args.size());
    for (const std::string& a : args) with_origin.push_back({a, ""});
    return parse_tunnel_options(with_origin, resolver, reader);
}

Result<void> check_usage(const TunnelOptions& o) {
    if (o.subnets.empty() && !o.auto_nets && !o.no_firewall)
        return Error(Errc::InvalidArgument,
                     "at least one subnet, subnet file (-s) or -N/--auto-nets is required");
    if (o.no_firewall && (!o.subnets.empty() || !o.excludes.empty() || o.auto_nets))
        return Error(Errc::InvalidArgument,
                     "--no-firewall installs no rules: it takes no subnets, -x/-X or -N");
    if (o.no_firewall && o.auto_hosts)
        return Error(Errc::InvalidArgument,
                     "-H/--auto-hosts writes /etc/hosts through sshuttle-helper, which "
                     "--no-firewall does without");
    if (!o.seed_hosts.empty() && !o.auto_hosts)
        return Error(Errc::InvalidArgument, "--seed-hosts is for -H/--auto-hosts; add -H");
    if (!o.server_cmd.empty() && !o.python.empty())
        return Error(Errc::InvalidArgument, "--python and --server-cmd exclude each other");
    if (o.ssh_connections > 1 && o.tcp_path == TcpPath::Agent)
        return Error(Errc::InvalidArgument,
                     "--ssh-connections carries TCP in ssh channels, which --tcp-path agent "
                     "does without");
    return ok();
}

Result<void> check_fatal(const TunnelOptions& o) {
    if (o.remote.empty() || o.remote == "-")
        return Error(Errc::InvalidArgument,
                     "You must use -r/--remote to specify a remote host to route traffic through.");
    return ok();
}

Result<void> check_supported(const TunnelOptions& o) {
    auto no = [](const std::string& what, const std::string& why = "") {
        return Error(Errc::InvalidArgument,
                     what + " is not supported yet" + (why.empty() ? "" : ": " + why));
    };
    if (o.method == Method::Ipfw)
        return no("--method ipfw", "it is FreeBSD's; use --method pf there, nft on Linux");
    if (o.method == Method::Tproxy && (o.dns || !o.ns_hosts.empty()))
        return no("--dns and --ns-hosts with --method tproxy",
                  "the answers must leave from port 53 of the DNS server's address, which needs "
                  "a capability sshuttle-helper does not hold (CAP_NET_BIND_SERVICE); use "
                  "--method nft or nat for DNS");
    if (o.tmark != "0x01")
        return no("-t/--tmark", "sshuttle-helper uses its own fwmark (0x5348) and routing table");
    if (o.daemon) return no("-D/--daemon", "use `sshuttle up NAME` for a tunnel in the background");
    if (o.syslog) return no("--syslog", "sshuttled logs to the journal under systemd");
    if (o.sudoers_no_modify || !o.sudoers_user.empty() || o.no_sudo_pythonpath)
        return Error(Errc::InvalidArgument,
                     "--sudoers-no-modify, --sudoers-user and --no-sudo-pythonpath do not apply: "
                     "sshuttle-helper and polkit do the privileged part, not sudo");
    return ok();
}

bool is_tunnel_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxTunnelName || name[0] == '.' || name[0] == '-')
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) ||
               std::string_view("_.@-").find(c) != std::string_view::npos;
    });
}

std::vector<std::string> to_args(const TunnelOptions& o) {
    const TunnelOptions d;
    std::vector<std::string> a;
    auto add = [&](const char* opt, const std::string& value) {
        a.push_back(std::string(opt) + "=" + value);
    };
    if (!o.remote.empty()) add("--remote", o.remote);
    if (o.listen_given) {
        std::string list;
        for (const ListenItem& l : o.listen) list += (list.empty() ? "" : ",") + l.to_string();
        add("--listen", list);
    }
    if (o.auto_hosts) a.push_back("--auto-hosts");
    if (o.auto_nets) a.push_back("--auto-nets");
    if (o.dns) a.push_back("--dns");
    if (!o.ns_hosts.empty()) {
        std::string list;
        for (const IpAddress& ip : o.ns_hosts) list += (list.empty() ? "" : ",") + ip.to_string();
        add("--ns-hosts", list);
    }
    if (o.to_ns) add("--to-ns", o.to_ns->to_string());
    if (o.method != d.method) add("--method", method_name(o.method));
    if (!o.python.empty()) add("--python", o.python);
    if (o.ssh_cmd != d.ssh_cmd) {
        std::string cmd;
        for (const std::string& w : o.ssh_cmd)
            cmd += (cmd.empty() ? "" : " ") + quote_shell_word(w);
        add("--ssh-cmd", cmd);
    }
    for (const SubnetPort& x : o.excludes) add("--exclude", x.to_string());
    if (!o.seed_hosts.empty()) {
        std::string list;
        for (const std::string& h : o.seed_hosts) list += (list.empty() ? "" : ",") + h;
        add("--seed-hosts", list);
    }
    if (!o.latency_control) a.push_back("--no-latency-control");
    if (o.latency_buffer_size != d.latency_buffer_size)
        add("--latency-buffer-size", std::to_string(o.latency_buffer_size));
    if (o.wrap != d.wrap) add("--wrap", std::to_string(o.wrap));
    if (o.disable_ipv6) a.push_back("--disable-ipv6");
    if (o.daemon) a.push_back("--daemon");
    if (o.pidfile != d.pidfile) add("--pidfile", o.pidfile);
    if (o.syslog) a.push_back("--syslog");
    for (int i = 0; i < o.verbose; ++i) a.push_back("--verbose");
    if (!o.user.empty()) add("--user", o.user);
    if (!o.group.empty()) add("--group", o.group);
    if (o.tmark != d.tmark) add("--tmark", o.tmark);
    if (o.sudoers_no_modify) a.push_back("--sudoers-no-modify");
    if (!o.sudoers_user.empty()) add("--sudoers-user", o.sudoers_user);
    if (o.no_sudo_pythonpath) a.push_back("--no-sudo-pythonpath");
    if (!o.server_cmd.empty()) add("--server-cmd", o.server_cmd);
    if (!o.name.empty()) add("--name", o.name);
    if (!o.control_socket.empty()) add("--control-socket", o.control_socket);
    if (o.no_firewall) a.push_back("--no-firewall");
    if (o.tcp_path != d.tcp_path) add("--tcp-path", tcp_path_name(o.tcp_path));
    if (o.ssh_connections != d.ssh_connections)
        add("--ssh-connections", std::to_string(o.ssh_connections));
    // Subnets last, after "--": a subnet text never starts with '-', but the marker makes that
    // a non-question.
    if (!o.subnets.empty()) {
        a.push_back("--");
        for (const SubnetPort& s : o.subnets) a.push_back(s.to_string());
    }
    return a;
}

const char* tunnel_options_help() {
    return "usage: sshuttle [-l [ip:]port] -r [user@]sshserver[:port] <subnets...>\n"
           "       sshuttle up|down|status|list ...   (see sshuttle help)\n"
           "\n"
           "positional arguments:\n"
           "  subnets                capture and forward traffic to these subnets\n"
           "                         (whitespace separated, IP[/WIDTH][:PORT[-PORT]])\n"
           "\n"
           "options (sshuttle 1.1; long options may be abbreviated, @FILE reads arguments\n"
           "from FILE one per line, SSHUTTLE_ARGS is prepended):\n"
           "  -h, --help             show this help message and exit\n"
           "  -l, --listen [IP:]PORT[,...]  transproxy to this ip address and port number\n"
           "  -H, --auto-hosts       continuously scan for remote hostnames and update\n"
           "                         local /etc/hosts as they are found (our agent reports\n"
           "                         the server's /etc/hosts and the seed hosts)\n"
           "  -N, --auto-nets        automatically determine subnets to route\n"
           "  --dns                  capture local DNS requests and forward to the remote\n"
           "                         DNS server\n"
           "  --ns-hosts IP[,IP]     capture and forward DNS requests made to these servers\n"
           "  --to-ns IP[:PORT]      the DNS server to forward requests to (default: the\n"
           "                         remote host's)\n"
           "  --method TYPE          auto (= nft), nft, nat, tproxy; pf only on the BSDs and\n"
           "                         macOS, ipfw not supported\n"
           "  --python PATH          path to python interpreter on the remote server\n"
           "  -r, --remote [USER[:PASS]@]ADDR[:PORT]  ssh hostname (and optional username\n"
           "                         and port) of remote sshuttle server\n"
           "  -x, --exclude SUBNET   exclude this subnet (can be used more than once)\n"
           "  -X, --exclude-from PATH  exclude the subnets in a file (one per line)\n"
           "  -v, --verbose          increase debug message verbosity (can be repeated)\n"
           "  -V, --version          print the sshuttle version number and exit\n"
           "  -e, --ssh-cmd CMD      the command to use to connect to the remote [ssh]\n"
           "  --seed-hosts HOSTNAME[,HOSTNAME]  initial hostnames for --auto-hosts\n"
           "  --no-latency-control   sacrifice latency to improve bandwidth benchmarks\n"
           "  --latency-buffer-size SIZE  size of latency control buffer [32768]\n"
           "  --wrap NUM             restart counting channel numbers after this number\n"
           "  --disable-ipv6         disable IPv6 support\n"
           "  -D, --daemon           not supported: use `sshuttle up NAME`\n"
           "  -s, --subnets PATH     file where the subnets are stored, instead of on the\n"
           "                         command line\n"
           "  --syslog               not supported: under systemd the journal has the logs\n"
           "  --pidfile PATH         pidfile name (only with --daemon, so unused)\n"
           "  --user USER            apply all the rules only to this linux user\n"
           "  --group GROUP          apply all the rules only to this linux group\n"
           "  -t, --tmark [MARK]     not supported: sshuttle-helper uses its own mark for\n"
           "                         tproxy\n"
           "  --sudoers-no-modify, --sudoers-user, --no-sudo-pythonpath\n"
           "                         refused: sshuttle-helper and polkit replace sudoers\n"
           "\n"
           "options of this implementation:\n"
           "  --server-cmd CMD       run CMD on the server instead of uploading our agent;\n"
           "                         it must speak the sshuttle protocol on stdin/stdout\n"
           "  --name NAME            the tunnel's name for status/down (default: from the host)\n"
           "  --control-socket PATH  the daemon's control socket instead of the default\n"
           "  --no-firewall          install no rules: only carry what is redirected to the\n"
           "                         listeners by someone else (takes no subnets)\n"
           "  --tcp-path auto|ssh|agent  how TCP travels: in ssh's own channels through a\n"
           "                         ControlMaster (ssh), in the sshuttle protocol to the\n"
           "                         agent (agent), or ssh with the agent when the server\n"
           "                         forbids forwarding (auto, the default)\n"
           "  --ssh-connections N    ssh connections carrying TCP (1-16, default 1): more\n"
           "                         cores and windows; each is a login on the server\n"
           "\n"
           "exit status: 0 ok, 1 interrupted, 2 usage error, 5 already running, 99 fatal\n";
}

}  // namespace sshuttle::proto

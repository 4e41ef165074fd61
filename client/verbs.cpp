#include "client/verbs.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>

#include "client/control_client.hpp"
#include "client/profiles.hpp"
#include "client/spawn.hpp"
#include "proto/tunnel_options.hpp"

namespace sshuttle::client {

namespace {

using nlohmann::json;

constexpr std::string_view kStatus = "io.sshuttle.Tunnel.Status";
constexpr std::string_view kWatch = "io.sshuttle.Tunnel.Watch";
constexpr std::string_view kStop = "io.sshuttle.Tunnel.Stop";
// Exit status of a verb that could not do its job (no such tunnel, refused, failed).
constexpr int kExitFailed = 1;

int usage_error(const char* verb, const std::string& message) {
    std::fprintf(stderr, "sshuttle %s: %s (see sshuttle %s --help)\n", verb, message.c_str(), verb);
    return proto::kExitUsage;
}

int failed(const std::string& message) {
    std::fprintf(stderr, "sshuttle: %s\n", message.c_str());
    return kExitFailed;
}

// A running tunnel found through its control socket.
struct Running {
    std::string name;
    std::string socket;
};

// The first control socket for `name` that answers. NotFound when none does, PermissionDenied
// when the only one belongs to someone else.
Result<std::pair<Running, ControlClient>> connect_tunnel(const std::string& name) {
    std::optional<Error> denied;
    for (const std::string& path : control_socket_candidates(name)) {
        auto c = ControlClient::connect(path);
        if (c) return std::pair{Running{name, path}, std::move(*c)};
        if (c.error().code == Errc::PermissionDenied) denied = c.error();
    }
    if (denied) return *denied;
    return Error(Errc::NotFound, "no tunnel named '" + name + "' is running");
}

// Every tunnel that answers in the socket directories, by name (the first directory wins).
std::vector<Running> running_tunnels() {
    std::vector<Running> out;
    for (const std::string& dir : control_socket_dirs()) {
        DIR* d = ::opendir(dir.c_str());
        if (!d) continue;
        for (int i = 0; i < 10'000; ++i) {  // bounded: a directory of ours holds a few sockets
            dirent* e = ::readdir(d);
            if (!e) break;
            std::string file = e->d_name;
            if (file.size() <= 5 || !file.ends_with(".sock")) continue;
            std::string name = file.substr(0, file.size() - 5);
            if (!proto::is_tunnel_name(name)) continue;
            if (std::any_of(out.begin(), out.end(),
                            [&](const Running& r) { return r.name == name; }))
                continue;
            out.push_back({name, dir + "/" + file});
        }
        ::closedir(d);
    }
    std::sort(out.begin(), out.end(),
              [](const Running& a, const Running& b) { return a.name < b.name; });
    return out;
}

Result<json> query_status(ControlClient& client) {
    auto reply = client.call(kStatus);
    if (!reply) return reply.error();
    if (reply->is_error()) return Error(Errc::PermissionDenied, describe_error(*reply));
    return reply->parameters;
}

std::string value_or(const json& j, const char* key, const std::string& fallback) {
    if (j.contains(key) && j[key].is_string()) return j[key].get<std::string>();
    return fallback;
}

std::string join(const json& array, const std::string& empty) {
    if (!array.is_array() || array.empty()) return empty;
    std::string out;
    for (const auto& item : array)
        if (item.is_string()) out += (out.empty() ? "" : " ") + item.get<std::string>();
    return out;
}

std::uint64_t number_or_zero(const json& j, const char* key) {
    if (!j.contains(key) || !j[key].is_number_integer()) return 0;
    return j[key].is_number_unsigned()
               ? j[key].get<std::uint64_t>()
               : static_cast<std::uint64_t>(std::max<std::int64_t>(0, j[key].get<std::int64_t>()));
}

// ---- status ---------------------------------------------------------------------------------

int watch_status(const std::string& name, bool as_json) {
    auto found = connect_tunnel(name);
    if (!found) return failed(found.error().message);
    ControlClient& client = found->second;
    auto reply = client.call(kWatch, true);
    // Bounded by the daemon: the stream ends when the tunnel stops.
    for (;;) {
        if (!reply) {
            if (reply.error().code == Errc::Protocol) return 0;  // the tunnel went away
            return failed(reply.error().message);
        }
        if (reply->is_error()) return failed(describe_error(*reply));
        if (as_json)
            std::cout << reply->parameters.dump() << std::endl;
        else
            std::cout << format_status(reply->parameters) << std::endl;
        if (!reply->continues) return 0;
        reply = client.next(-1);
    }
}

int cmd_status(const std::vector<std::string>& args) {
    VerbArgs a = parse_verb_args(args, {"--json", "--watch"}, 1);
    if (!a.error.empty()) return usage_error("status", a.error);
    bool as_json = a.has("--json");
    if (a.has("--watch")) {
        if (a.names.empty()) return usage_error("status", "--watch needs a tunnel NAME");
        return watch_status(a.names[0], as_json);
    }
    if (!a.names.empty()) {
        auto found = connect_tunnel(a.names[0]);
        if (!found) return failed(found.error().message);
        auto status = query_status(found->second);
        if (!status) return failed(status.error().message);
        std::cout << (as_json ? status->dump(2) : format_status(*status)) << std::endl;
        return 0;
    }
    json all = json::array();
    int rc = 0;
    for (const Running& r : running_tunnels()) {
        auto c = ControlClient::connect(r.socket);
        if (!c) continue;  // a stale socket: no tunnel
        auto status = query_status(*c);
        if (!status) {
            std::fprintf(stderr, "sshuttle: %s: %s\n", r.name.c_str(),
                         status.error().message.c_str());
            rc = kExitFailed;
            continue;
        }
        all.push_back(*status);
    }
    if (as_json) {
        std::cout << all.dump(2) << std::endl;
    } else if (all.empty()) {
        std::cout << "no tunnels are running" << std::endl;
    } else {
        for (const json& s : all) std::cout << format_status(s) << std::endl;
    }
    return rc;
}

// ---- list -----------------------------------------------------------------------------------

int cmd_list(const std::vector<std::string>& args) {
    VerbArgs a = parse_verb_args(args, {"--json"}, 0);
    if (!a.error.empty()) return usage_error("list", a.error);
    json rows = json::array();
    for (const Running& r : running_tunnels()) {
        auto c = ControlClient::connect(r.socket);
        if (!c) continue;
        auto status = query_status(*c);
        json row{{"name", r.name}, {"socket", r.socket}, {"profile", nullptr}};
        row["state"] = status ? value_or(*status, "state", "?") : "refused";
        row["remote"] = status ? value_or(*status, "remote", "") : "";
        rows.push_back(row);
    }
    for (const Profile& p : list_profiles(default_profile_dirs())) {
        auto it = std::find_if(rows.begin(), rows.end(),
                               [&](const json& r) { return r["name"] == p.name; });
        if (it != rows.end()) {
            if ((*it)["profile"].is_null()) (*it)["profile"] = p.path;
            continue;
        }
        rows.push_back({{"name", p.name},
                        {"state", "stopped"},
                        {"remote", ""},
                        {"socket", nullptr},
                        {"profile", p.path}});
    }
    if (a.has("--json")) {
        std::cout << rows.dump(2) << std::endl;
        return 0;
    }
    if (rows.empty()) {
        std::cout << "no tunnels running and no profiles in " << default_profile_dirs().user
                  << " or /etc/sshuttle" << std::endl;
        return 0;
    }
    std::printf("%-20s %-11s %-30s %s\n", "NAME", "STATE", "REMOTE", "PROFILE");
    for (const json& r : rows)
        std::printf("%-20s %-11s %-30s %s\n", r["name"].get<std::string>().c_str(),
                    r["state"].get<std::string>().c_str(), r["remote"].get<std::string>().c_str(),
                    r["profile"].is_string() ? r["profile"].get<std::string>().c_str() : "-");
    return 0;
}

// ---- up / down ------------------------------------------------------------------------------

std::string unit_name(const std::string& name) {
    return "sshuttle@" + name + ".service";
}

std::vector<std::string> systemctl(Scope scope, std::vector<std::string> words) {
    std::vector<std::string> argv{"systemctl"};
    if (scope == Scope::User) argv.push_back("--user");
    argv.insert(argv.end(), words.begin(), words.end());
    return argv;
}

void print_log_tail(const std::string& path) {
    std::ifstream in(path);
    std::vector<std::string> lines;
    std::string line;
    while (std::getline(in, line) && lines.size() < 10'000) lines.push_back(line);
    std::size_t from = lines.size() > 15 ? lines.size() - 15 : 0;
    for (std::size_t i = from; i < lines.size(); ++i)
        std::fprintf(stderr, "  | %s\n", lines[i].c_str());
}

// No systemd: sshuttled in its own session, then wait (bounded) until it says it is connected.
int start_without_systemd(const Profile& profile) {
    auto sshuttled = find_sshuttled();
    if (!sshuttled) return failed(sshuttled.error().message);
    std::vector<std::string> sockets = control_socket_candidates(profile.name);
    std::string socket = sockets.front();
    std::string dir = socket.substr(0, socket.rfind('/'));
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
        return failed("cannot create " + dir + ": " + std::strerror(errno));
    std::string log = dir + "/" + profile.name + ".log";
    auto pid = start_detached(
        {*sshuttled, "--name", profile.name, "--control-socket", socket, "@" + profile.path}, log);
    if (!pid) return failed(pid.error().to_string());
    // 60 s: ssh may take long to connect (DNS, a slow server); every wait below is short.
    for (int i = 0; i < 600; ++i) {
        int status = 0;
        if (::waitpid(*pid, &status, WNOHANG) == *pid) {
            std::fprintf(stderr, "sshuttle: %s: sshuttled exited with status %d; its log %s:\n",
                         profile.name.c_str(),
                         WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status),
                         log.c_str());
            print_log_tail(log);
            return WIFEXITED(status) ? WEXITSTATUS(status) : proto::kExitFatal;
        }
        if (auto c = ControlClient::connect(socket)) {
            auto s = query_status(*c);
            if (s && value_or(*s, "state", "") == "connected") {
                std::printf("%s: connected to %s (pid %d, log %s)\n", profile.name.c_str(),
                            value_or(*s, "remote", "?").c_str(), *pid, log.c_str());
                return 0;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return failed(profile.name + ": not connected after 60 s; it keeps trying (sshuttle status " +
                  profile.name + ", log " + log + ")");
}

int cmd_up(const std::vector<std::string>& args) {
    VerbArgs a = parse_verb_args(args, {}, 1);
    if (!a.error.empty()) return usage_error("up", a.error);
    if (a.names.empty()) return usage_error("up", "which profile? sshuttle up NAME");
    auto profile = find_profile(a.names[0], default_profile_dirs());
    if (!profile) return failed(profile.error().message);
    auto options = load_profile(*profile, proto::read_text_file, resolve_with_getaddrinfo);
    if (!options)
        return std::fprintf(stderr, "sshuttle: %s\n", options.error().message.c_str()),
               proto::kExitUsage;
    if (auto r = proto::check_supported(*options); !r)
        return std::fprintf(stderr, "sshuttle: %s: %s\n", profile->path.c_str(),
                            r.error().message.c_str()),
               proto::kExitUsage;
    if (connect_tunnel(profile->name)) {
        std::printf("%s is already up\n", profile->name.c_str());
        return 0;
    }
    if (systemd_running()) {
        // systemctl waits for READY=1 (Type=notify), so success means connected.
        int rc = run_command(systemctl(profile->scope, {"start", unit_name(profile->name)}));
        if (rc != 0)
            return failed("systemctl start " + unit_name(profile->name) + " failed (status " +
                          std::to_string(rc) + ")");
        std::printf("%s: started %s\n", profile->name.c_str(), unit_name(profile->name).c_str());
        return 0;
    }
    return start_without_systemd(*profile);
}

int cmd_down(const std::vector<std::string>& args) {
    VerbArgs a = parse_verb_args(args, {}, 1);
    if (!a.error.empty()) return usage_error("down", a.error);
    if (a.names.empty()) return usage_error("down", "which tunnel? sshuttle down NAME");
    const std::string& name = a.names[0];
    if (!proto::is_tunnel_name(name))
        return usage_error("down", "'" + name + "' is not a tunnel name");
    if (systemd_running()) {
        // A unit's tunnel is stopped through systemd, so that systemd's view stays true.
        for (Scope scope : {Scope::User, Scope::System}) {
            if (scope == Scope::User && ::geteuid() == 0) continue;
            if (run_command(systemctl(scope, {"is-active", "--quiet", unit_name(name)}), true) != 0)
                continue;
            int rc = run_command(systemctl(scope, {"stop", unit_name(name)}));
            if (rc != 0) return failed("systemctl stop " + unit_name(name) + " failed");
            std::printf("%s: stopped\n", name.c_str());
            return 0;
        }
    }
    auto found = connect_tunnel(name);
    if (!found) return failed(found.error().message);
    auto reply = found->second.call(kStop);
    if (!reply) return failed(reply.error().message);
    if (reply->is_error()) return failed(describe_error(*reply));
    // The daemon removes its socket when it has stopped (ssh gone): wait for that, bounded.
    for (int i = 0; i < 150; ++i) {
        if (!ControlClient::connect(found->first.socket)) {
            std::printf("%s: stopped\n", name.c_str());
            return 0;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return failed(name + ": asked to stop, but it still answers after 15 s");
}

int cmd_help(const std::vector<std::string>& args);

const Verb kVerbs[] = {
    {"up", cmd_up, "start the tunnel of profile NAME in the background",
     "usage: sshuttle up NAME\n"
     "\n"
     "Starts the tunnel described by profile NAME and returns once it is connected.\n"
     "Profiles are sshuttle @files (one argument per line):\n"
     "  ~/.config/sshuttle/NAME.conf   (a user's; used first)\n"
     "  /etc/sshuttle/NAME.conf        (the system's)\n"
     "The profile is checked first; errors name its file and line. With systemd the\n"
     "tunnel runs as the unit sshuttle@NAME.service (`systemctl --user` for a user's\n"
     "profile); without, as a detached sshuttled logging to its runtime directory.\n"
     "Example profile:\n"
     "  --remote=me@gateway.example.com\n"
     "  --dns\n"
     "  10.0.0.0/8\n"},
    {"down", cmd_down, "stop tunnel NAME",
     "usage: sshuttle down NAME\n"
     "\n"
     "Stops tunnel NAME: through systemctl when it runs as sshuttle@NAME.service, else\n"
     "over its control socket. Returns once it has stopped. Only the tunnel's owner and\n"
     "root may stop it.\n"},
    {"status", cmd_status, "show running tunnels: state, traffic, uptime",
     "usage: sshuttle status [NAME] [--json] [--watch]\n"
     "\n"
     "Shows tunnel NAME, or every running tunnel: state, remote, method, subnets,\n"
     "uptime, open channels, bytes each way and reconnects.\n"
     "  --json    the daemon's status object (an array without NAME)\n"
     "  --watch   keep printing updates (every second while it changes) until the\n"
     "            tunnel stops or Ctrl-C; needs NAME; with --json one object per line\n"},
    {"list", cmd_list, "list running tunnels and known profiles",
     "usage: sshuttle list [--json]\n"
     "\n"
     "Lists the running tunnels (their control sockets in $XDG_RUNTIME_DIR/sshuttle and\n"
     "/run/sshuttle) and the profiles that could be started with `sshuttle up`.\n"},
    {"help", cmd_help, "help on the classic options or a verb", "usage: sshuttle help [VERB]\n"},
};

int cmd_help(const std::vector<std::string>& args) {
    if (!args.empty()) {
        const Verb* v = find_verb(args[0]);
        if (!v) return usage_error("help", "no verb '" + args[0] + "'");
        std::fputs(v->help, stdout);
        return 0;
    }
    std::fputs(proto::tunnel_options_help(), stdout);
    std::fputs("\nverbs:\n", stdout);
    for (const Verb& v : kVerbs) std::printf("  %-8s %s\n", v.name, v.summary);
    std::fputs("  (sshuttle VERB --help for each)\n", stdout);
    return 0;
}

}  // namespace

bool VerbArgs::has(std::string_view flag) const {
    return std::find(flags.begin(), flags.end(), flag) != flags.end();
}

VerbArgs parse_verb_args(const std::vector<std::string>& args,
                         const std::vector<std::string>& allowed_flags, std::size_t max_names) {
    VerbArgs out;
    for (const std::string& a : args) {
        if (a.size() > 1 && a[0] == '-') {
            if (std::find(allowed_flags.begin(), allowed_flags.end(), a) == allowed_flags.end()) {
                out.error = "unrecognized argument " + a;
                return out;
            }
            out.flags.push_back(a);
        } else if (out.names.size() < max_names) {
            out.names.push_back(a);
        } else {
            out.error = "unexpected argument '" + a + "'";
            return out;
        }
    }
    return out;
}

std::span<const Verb> verbs() {
    return kVerbs;
}

const Verb* find_verb(std::string_view name) {
    for (const Verb& v : kVerbs)
        if (name == v.name) return &v;
    return nullptr;
}

std::string format_bytes(std::uint64_t bytes) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) return std::to_string(bytes) + " B";
    double v = static_cast<double>(bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        ++u;
    }
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
    return buf;
}

std::string format_duration(std::uint64_t s) {
    char buf[32];
    if (s < 60)
        std::snprintf(buf, sizeof buf, "%llus", static_cast<unsigned long long>(s));
    else if (s < 3600)
        std::snprintf(buf, sizeof buf, "%llum%02llus", static_cast<unsigned long long>(s / 60),
                      static_cast<unsigned long long>(s % 60));
    else if (s < 86400)
        std::snprintf(buf, sizeof buf, "%lluh%02llum", static_cast<unsigned long long>(s / 3600),
                      static_cast<unsigned long long>(s % 3600 / 60));
    else
        std::snprintf(buf, sizeof buf, "%llud%02lluh", static_cast<unsigned long long>(s / 86400),
                      static_cast<unsigned long long>(s % 86400 / 3600));
    return buf;
}

std::string format_status(const json& s) {
    std::string out = value_or(s, "name", "?") + ": " + value_or(s, "state", "?") + " to " +
                      value_or(s, "remote", "?");
    if (s.contains("pid") && s["pid"].is_number())
        out += " (pid " + std::to_string(s["pid"].get<long>()) + ")";
    out += "\n  method " + value_or(s, "method", "?") + ", subnets " +
           join(s.value("subnets", json()), "none");
    std::string excludes = join(s.value("excludes", json()), "");
    if (!excludes.empty()) out += ", excluding " + excludes;
    if (s.contains("helper") && s["helper"].is_string()) {
        out += "\n  rules by " + s["helper"].get<std::string>();
        const std::uint64_t reapplied = number_or_zero(s, "firewall_reapplied");
        if (reapplied > 0) out += ", re-applied " + std::to_string(reapplied) + "x after it was lost";
    }
    out += "\n  listening on " + join(s.value("listen", json()), "-");
    if (s.contains("dns_port") && s["dns_port"].is_number())
        out += ", DNS on port " + std::to_string(s["dns_port"].get<int>());
    out += "\n  up " + format_duration(number_or_zero(s, "uptime")) + " since " +
           value_or(s, "started", "?") + ", " + std::to_string(number_or_zero(s, "reconnects")) +
           " reconnects";
    out += "\n  " + std::to_string(number_or_zero(s, "channels_open")) + " channels open, " +
           std::to_string(number_or_zero(s, "connections")) + " connections so far, " +
           format_bytes(number_or_zero(s, "bytes_in")) + " in, " +
           format_bytes(number_or_zero(s, "bytes_out")) + " out";
    if (s.contains("tcp_path") && s["tcp_path"].is_string()) {
        out += "\n  TCP through " + s["tcp_path"].get<std::string>();
        const json ch = s.value("channels", json::object());
        if (ch.is_object())
            out += ": " + std::to_string(number_or_zero(ch, "ssh")) + " in ssh channels, " +
                   std::to_string(number_or_zero(ch, "agent")) + " on the agent";
    }
    const json masters = s.value("ssh_connections", json::array());
    if (masters.is_array() && masters.size() > 1) {
        out += "\n  ssh connections:";
        for (const json& m : masters)
            if (m.is_object())
                out += " [" + std::to_string(number_or_zero(m, "index")) + "] " +
                       value_or(m, "state", "?") + " " +
                       std::to_string(number_or_zero(m, "channels"));
    }
    return out;
}

int run_classic(const std::vector<std::string>& args) {
    const char* env = std::getenv("SSHUTTLE_ARGS");
    auto usage = [](const Error& e) {
        std::fprintf(stderr,
                     "usage: sshuttle [-l [ip:]port] -r [user@]sshserver[:port] <subnets...>\n"
                     "sshuttle: error: %s\n",
                     e.message.c_str());
        return proto::kExitUsage;
    };
    auto fatal = [](const Error& e) {
        std::fprintf(stderr, "fatal: %s\n", e.message.c_str());
        return proto::kExitFatal;
    };
    auto expanded = proto::expand_args(args, env ? std::optional<std::string>(env) : std::nullopt,
                                       proto::read_text_file);
    if (!expanded) return usage(expanded.error());
    auto options =
        proto::parse_tunnel_options(*expanded, resolve_with_getaddrinfo, proto::read_text_file);
    if (!options) return usage(options.error());
    if (options->help) return cmd_help({});
    if (options->version) return std::puts(PROJECT_VERSION), 0;
    if (auto r = proto::check_usage(*options); !r) return usage(r.error());
    if (auto r = proto::check_fatal(*options); !r) return fatal(r.error());
    if (auto r = proto::check_supported(*options); !r) return usage(r.error());
    auto sshuttled = find_sshuttled();
    if (!sshuttled) return fatal(sshuttled.error());
    std::vector<std::string> argv{*sshuttled};
    for (std::string& a : proto::to_args(*options)) argv.push_back(std::move(a));
    // The daemon must not read SSHUTTLE_ARGS a second time; it does not, but a child of ours
    // has no reason to see it either.
    ::unsetenv("SSHUTTLE_ARGS");
    return run_foreground(argv);
}

}  // namespace sshuttle::client

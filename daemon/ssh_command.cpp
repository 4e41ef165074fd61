#include "daemon/ssh_command.hpp"

#include "proto/tunnel_options.hpp"

#include <algorithm>
#include <cctype>

namespace sshuttle::daemon {

namespace {

Error bad_remote(std::string_view text, const std::string& why) {
    return Error(Errc::InvalidArgument, "bad -r/--remote '" + std::string(text) + "': " + why);
}

Result<std::uint16_t> parse_port(std::string_view text, std::string_view whole) {
    if (text.empty() || text.size() > 5 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; }))
        return bad_remote(whole, "port '" + std::string(text) + "' is not a number");
    unsigned long value = std::stoul(std::string(text));
    if (value < 1 || value > 65535)
        return bad_remote(whole, "port " + std::string(text) + " is not between 1 and 65535");
    return static_cast<std::uint16_t>(value);
}

}  // namespace

// One shell-word language in the project: proto/tunnel_options' (the option parser's).
Result<std::vector<std::string>> shell_split(std::string_view text) {
    auto words = proto::split_shell_words(text);
    if (!words) return words.error().with_context("'" + std::string(text) + "'");
    return words;
}

std::string shell_quote(std::string_view word) { return proto::quote_shell_word(word); }

std::string RemoteTarget::to_string() const {
    std::string out = user.empty() ? "" : user + "@";
    bool v6 = host.find(':') != std::string::npos;
    out += (v6 && port) ? "[" + host + "]" : host;
    if (port) out += ":" + std::to_string(*port);
    return out;
}

Result<RemoteTarget> parse_remote(std::string_view text) {
    if (text.empty() || text == "-")
        return Error(Errc::InvalidArgument,
                     "You must use -r/--remote to specify a remote host to route traffic through");
    if (text.size() > 1024) return bad_remote(text.substr(0, 64), "longer than 1024 characters");
    for (char c : text)
        if (std::isspace(static_cast<unsigned char>(c)) != 0 || std::iscntrl(static_cast<unsigned char>(c)) != 0)
            return bad_remote(text, "contains whitespace or control characters");

    RemoteTarget target;
    std::string_view hostport = text;
    if (std::size_t at = text.rfind('@'); at != std::string_view::npos) {
        target.user = std::string(text.substr(0, at));
        hostport = text.substr(at + 1);
        if (target.user.empty()) return bad_remote(text, "empty user name before '@'");
        if (target.user.find(':') != std::string::npos)
            return bad_remote(text,
                              "passwords in -r are not supported: use ssh keys, an ssh agent or "
                              "ssh's own password prompt");
    }
    if (!hostport.empty() && hostport.front() == '[') {
        std::size_t close = hostport.find(']');
        if (close == std::string_view::npos) return bad_remote(text, "missing ']'");
        target.host = std::string(hostport.substr(1, close - 1));
        std::string_view rest = hostport.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return bad_remote(text, "unexpected text after ']'");
            auto port = parse_port(rest.substr(1), text);
            if (!port) return port.error();
            target.port = *port;
        }
    } else if (std::count(hostport.begin(), hostport.end(), ':') > 1) {
        target.host = std::string(hostport);  // a bare IPv6 address: no port possible
    } else if (std::size_t colon = hostport.find(':'); colon != std::string_view::npos) {
        target.host = std::string(hostport.substr(0, colon));
        auto port = parse_port(hostport.substr(colon + 1), text);
        if (!port) return port.error();
        target.port = *port;
    } else {
        target.host = std::string(hostport);
    }
    if (target.host.empty()) return bad_remote(text, "no host name");
    // A host or user starting with '-' would be read by ssh as an option.
    if (target.host.front() == '-' || (!target.user.empty() && target.user.front() == '-'))
        return bad_remote(text, "host and user may not start with '-'");
    return target;
}

std::string agent_stage1(std::size_t payload_size) {
    // One line with no quotes, backslashes, '$' or '!': it passes unchanged through the login
    // shell (csh and tcsh reject newlines inside quotes) and /bin/sh. It reads exactly N bytes
    // with os.read, so the frames that follow the upload are never swallowed by a buffer.
    return "import os,sys;n=" + std::to_string(payload_size) +
           ";b=bytearray();[b.extend(d or sys.exit(98)) for d in iter(lambda:os.read(0,n-len(b)) "
           "if n>len(b) else None,None)];exec(bytes(b))";
}

std::string remote_command(const RemoteLaunch& launch, std::size_t payload_size) {
    if (!launch.server_cmd.empty()) return launch.server_cmd;
    std::string stage1 = agent_stage1(payload_size);
    if (!launch.python.empty()) return shell_quote(launch.python) + " -c " + shell_quote(stage1);
    // Through /bin/sh so a login shell of another family does not matter. The second -V check
    // makes a missing python exit 97 (exec failing in sh exits 127 before reaching `exit 97`).
    std::string script =
        "P=python3; $P -V >/dev/null 2>&1 || P=python; $P -V >/dev/null 2>&1 || exit 97; "
        "exec \"$P\" -c \"" + stage1 + "\"; exit 97";
    return "/bin/sh -c " + shell_quote(script);
}

namespace {
// [-p PORT] [user@]host: how every ssh command line of ours names the server.
void append_target(std::vector<std::string>& argv, const RemoteTarget& target) {
    if (target.port) {
        argv.emplace_back("-p");
        argv.push_back(std::to_string(*target.port));
    }
    argv.push_back(target.user.empty() ? target.host : target.user + "@" + target.host);
}
}  // namespace

std::vector<std::string> ssh_argv(const std::vector<std::string>& ssh_words,
                                  const RemoteTarget& target, const std::string& command) {
    std::vector<std::string> argv = ssh_words;
    append_target(argv, target);
    argv.emplace_back("--");
    argv.push_back(command);
    return argv;
}

std::vector<std::string> control_master_options(const std::string& control_path) {
    std::string path;
    for (char c : control_path) {
        if (c == '%') path += '%';  // ssh expands %-tokens in ControlPath
        path += c;
    }
    return {"-o", "ControlMaster=yes", "-o", "ControlPath=" + path, "-o", "ControlPersist=no"};
}

std::vector<std::string> ssh_master_argv(const std::vector<std::string>& ssh_words,
                                         const RemoteTarget& target,
                                         const std::string& control_path) {
    std::vector<std::string> argv = ssh_words;
    for (std::string& o : control_master_options(control_path)) argv.push_back(std::move(o));
    argv.emplace_back("-N");
    append_target(argv, target);
    return argv;
}

std::vector<std::string> ssh_config_argv(const std::vector<std::string>& ssh_words,
                                         const RemoteTarget& target) {
    std::vector<std::string> argv = ssh_words;
    argv.emplace_back("-G");
    append_target(argv, target);
    return argv;
}

std::string ssh_config_hostname(std::string_view output) {
    while (!output.empty()) {
        auto eol = output.find('\n');
        std::string_view line = output.substr(0, eol);
        output = eol == std::string_view::npos ? std::string_view{} : output.substr(eol + 1);
        constexpr std::string_view kKey = "hostname ";
        if (line.substr(0, kKey.size()) != kKey) continue;
        std::string_view value = line.substr(kKey.size());
        while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.remove_suffix(1);
        return std::string(value);
    }
    return "";
}

std::string agent_payload(std::string_view agent_source, std::string_view options_json) {
    std::string payload(agent_source);
    if (!payload.empty() && payload.back() != '\n') payload.push_back('\n');
    // The options travel as a Python bytes literal of JSON: hex escapes make any content safe.
    payload += "main(json.loads(b\"";
    static const char* hex = "0123456789abcdef";
    for (unsigned char c : options_json) {
        payload += "\\x";
        payload.push_back(hex[c >> 4]);
        payload.push_back(hex[c & 15]);
    }
    payload += "\".decode()))\n";
    return payload;
}

std::string explain_remote_exit(int status) {
    switch (status) {
        case 0: return "the remote side exited normally";
        case 97: return "no python3 or python on the remote host (exit 97): install one, or use --python";
        case 98: return "ssh's stdin ended during the agent upload (exit 98)";
        case 99: return "the remote agent failed (exit 99); its message is above";
        case 127: return "the remote command was not found (exit 127): check --python / --server-cmd";
        case 255:
            return "ssh failed (exit 255); if the server is inside the tunnelled subnets, exclude it "
                   "with -x";
        default: return "the remote side exited with status " + std::to_string(status);
    }
}

}  // namespace sshuttle::daemon

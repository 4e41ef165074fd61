// The sshuttle command's verbs and its classic invocation.
//
//   sshuttle [sshuttle 1.1 options] -r HOST SUBNETS...   a tunnel in the foreground (classic)
//   sshuttle up NAME | down NAME | status [NAME] [--json] [--watch] | list [--json] | help [VERB]
//
// A first argument that names a verb selects it; anything else is the classic command line.
// Each verb is a small function over the control socket, the profiles and systemctl.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace sshuttle::client {

struct Verb {
    const char* name;
    int (*run)(const std::vector<std::string>& args);  // arguments after the verb
    const char* summary;
    const char* help;
};

std::span<const Verb> verbs();
const Verb* find_verb(std::string_view name);

// The classic invocation: every sshuttle 1.1 option; runs sshuttled in the foreground.
int run_classic(const std::vector<std::string>& args);

// Status for humans, from the Status parameters (daemon/control_server.hpp).
std::string format_status(const nlohmann::json& status);
std::string format_bytes(std::uint64_t bytes);       // "0 B", "1.5 KiB", "12.0 MiB"
std::string format_duration(std::uint64_t seconds);  // "42s", "3m07s", "2h05m", "3d04h"

// Arguments of a verb: known flags and at most max_names positional names. Usage errors name
// the bad argument.
struct VerbArgs {
    std::vector<std::string> names;
    std::vector<std::string> flags;  // as given: "--json"
    bool has(std::string_view flag) const;
    std::string error;  // empty when fine
};
VerbArgs parse_verb_args(const std::vector<std::string>& args,
                         const std::vector<std::string>& allowed_flags, std::size_t max_names);

}  // namespace sshuttle::client

// Profiles: a tunnel's options kept in a file, in sshuttle's @file format (one argument per
// line), under a name.
//
//   ~/.config/sshuttle/NAME.conf   a user's tunnel ($XDG_CONFIG_HOME when set)
//   /etc/sshuttle/NAME.conf        a system tunnel (sshuttle@NAME.service)
//
// `sshuttle up NAME` looks in that order. A profile is validated completely before anything is
// started, and every error names the file and line.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/error.hpp"
#include "common/resolver.hpp"
#include "proto/tunnel_options.hpp"

namespace sshuttle::client {

enum class Scope { User, System };
const char* scope_name(Scope scope) noexcept;

struct ProfileDirs {
    std::string user;    // "" when there is no home directory
    std::string system;  // /etc/sshuttle
};
// From $XDG_CONFIG_HOME or $HOME.
ProfileDirs default_profile_dirs();

struct Profile {
    std::string name;
    std::string path;
    Scope scope = Scope::User;
};

// The profile named `name`: the user's if present, else the system's. NotFound names both paths.
[[nodiscard]] Result<Profile> find_profile(const std::string& name, const ProfileDirs& dirs);
// Every NAME.conf in both directories (a name in both is listed twice), sorted by name.
std::vector<Profile> list_profiles(const ProfileDirs& dirs);

// Reads and checks a profile: its lines parse as tunnel options (nested @files allowed), the
// tunnel is complete (-r, subnets or -N or --no-firewall), and a --name in it, if any, is the
// profile's own name. Errors are "FILE:LINE: ..." or "FILE: ...".
[[nodiscard]] Result<proto::TunnelOptions> load_profile(const Profile& profile,
                                                        const proto::FileReader& reader,
                                                        const Resolver& resolver);

}  // namespace sshuttle::client

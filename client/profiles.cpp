#include "client/profiles.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>

namespace sshuttle::client {

namespace {

constexpr std::string_view kSuffix = ".conf";

bool is_file(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

}  // namespace

const char* scope_name(Scope scope) noexcept {
    return scope == Scope::User ? "user" : "system";
}

ProfileDirs default_profile_dirs() {
    ProfileDirs dirs{"", "/etc/sshuttle"};
    const char* xdg = std::getenv("XDG_CONFIG_HOME");
    const char* home = std::getenv("HOME");
    if (xdg && xdg[0] == '/')
        dirs.user = std::string(xdg) + "/sshuttle";
    else if (home && home[0] == '/')
        dirs.user = std::string(home) + "/.config/sshuttle";
    return dirs;
}

Result<Profile> find_profile(const std::string& name, const ProfileDirs& dirs) {
    if (!proto::is_tunnel_name(name))
        return Error(Errc::InvalidArgument,
                     "'" + name +
                         "' is not a profile name (1 to 64 of "
                         "A-Z a-z 0-9 _ . @ -, not starting with '.' or '-')");
    std::string tried;
    if (!dirs.user.empty()) {
        Profile p{name, dirs.user + "/" + name + std::string(kSuffix), Scope::User};
        if (is_file(p.path)) return p;
        tried = p.path + " and ";
    }
    Profile p{name, dirs.system + "/" + name + std::string(kSuffix), Scope::System};
    if (is_file(p.path)) return p;
    return Error(Errc::NotFound, "no profile '" + name + "' (looked for " + tried + p.path + ")");
}

std::vector<Profile> list_profiles(const ProfileDirs& dirs) {
    std::vector<Profile> out;
    auto scan = [&](const std::string& dir, Scope scope) {
        if (dir.empty()) return;
        DIR* d = ::opendir(dir.c_str());
        if (!d) return;
        // Bounded: a profile directory with more entries than this is not one we made.
        for (int i = 0; i < 10'000; ++i) {
            dirent* e = ::readdir(d);
            if (!e) break;
            std::string file = e->d_name;
            if (file.size() <= kSuffix.size() || !file.ends_with(kSuffix)) continue;
            std::string name = file.substr(0, file.size() - kSuffix.size());
            if (!proto::is_tunnel_name(name) || !is_file(dir + "/" + file)) continue;
            out.push_back({name, dir + "/" + file, scope});
        }
        ::closedir(d);
    };
    scan(dirs.user, Scope::User);
    scan(dirs.system, Scope::System);
    std::stable_sort(out.begin(), out.end(),
                     [](const Profile& a, const Profile& b) { return a.name < b.name; });
    return out;
}

Result<proto::TunnelOptions> load_profile(const Profile& profile, const proto::FileReader& reader,
                                          const Resolver& resolver) {
    auto text = reader(profile.path);
    if (!text) return text.error();
    auto args = proto::expand_arg_files(proto::args_file_lines(*text, profile.path), reader);
    if (!args) return args.error();
    auto options = proto::parse_tunnel_options(*args, resolver, reader);
    if (!options) return options.error();
    auto in_file = [&](const Error& e) { return e.with_context(profile.path); };
    if (options->help || options->version)
        return Error(Errc::InvalidArgument, profile.path +
                                                ": -h/--help and -V/--version do not "
                                                "belong in a profile");
    if (auto r = proto::check_usage(*options); !r) return in_file(r.error());
    if (auto r = proto::check_fatal(*options); !r) return in_file(r.error());
    if (!options->name.empty() && options->name != profile.name) {
        auto where = std::find_if(args->begin(), args->end(), [](const proto::Arg& a) {
            return a.text.rfind("--name", 0) == 0;
        });
        return Error(Errc::InvalidArgument,
                     (where != args->end() ? where->origin : profile.path) + ": --name " +
                         options->name + " differs from the profile's name '" + profile.name + "'");
    }
    options->name = profile.name;
    return options;
}

}  // namespace sshuttle::client

#include "client/profiles.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::client;

namespace {

Result<std::vector<IpAddress>> numeric_only(std::string_view host) {
    return Error(Errc::NotFound, "Unable to resolve address: " + std::string(host));
}

struct Dirs {
    std::string root;
    ProfileDirs dirs;
    Dirs() {
        char tmpl[] = "/tmp/sshuttle-profiles-test.XXXXXX";
        root = ::mkdtemp(tmpl);
        dirs = {root + "/user", root + "/etc"};
        ::mkdir(dirs.user.c_str(), 0700);
        ::mkdir(dirs.system.c_str(), 0755);
    }
    ~Dirs() {
        std::string cmd = "rm -rf '" + root + "'";
        (void)!std::system(cmd.c_str());
    }
    void write(const std::string& path, const std::string& text) const {
        std::ofstream(path) << text;
    }
};

Result<proto::TunnelOptions> load(const Dirs& d, const std::string& name) {
    auto p = find_profile(name, d.dirs);
    if (!p) return p.error();
    return load_profile(*p, proto::read_text_file, numeric_only);
}

}  // namespace

TEST_CASE("profiles: the user's profile wins over the system's; both are listed") {
    Dirs d;
    d.write(d.dirs.system + "/corp.conf", "--remote=sys@h\n10.0.0.0/8\n");
    d.write(d.dirs.system + "/lab.conf", "-r\nlab@h\n--no-firewall\n");
    d.write(d.dirs.user + "/corp.conf", "--remote=me@h\n10.0.0.0/8\n");
    d.write(d.dirs.user + "/notes.txt", "not a profile\n");
    auto p = find_profile("corp", d.dirs);
    REQUIRE(p);
    CHECK(p->scope == Scope::User);
    auto o = load(d, "corp");
    REQUIRE(o);
    CHECK(o->remote == "me@h");
    CHECK(o->name == "corp");  // the profile's name becomes the tunnel's
    auto lab = find_profile("lab", d.dirs);
    REQUIRE(lab);
    CHECK(lab->scope == Scope::System);
    auto all = list_profiles(d.dirs);
    REQUIRE(all.size() == 3);
    CHECK(all[0].name == "corp");
    CHECK(all[2].name == "lab");
}

TEST_CASE("profiles: errors name the file and the line") {
    Dirs d;
    const std::string u = d.dirs.user;
    struct Case {
        const char* name;
        std::string text;
        std::string needle;
    };
    const Case cases[] = {
        {"badwrap", "--remote=h\n--no-firewall\n--wrap=x\n",
         u + "/badwrap.conf:3: argument --wrap"},
        {"onetoken", "# comment\n--remote h\n", u + "/onetoken.conf:2: unrecognized arguments"},
        {"blank", "--remote=h\n\n10.0.0.0/8\n", u + "/blank.conf:2: '' is not a valid"},
        {"badnet", "--remote=h\n10.0.0.0/40\n", u + "/badnet.conf:2: Slash"},
        {"noremote", "10.0.0.0/8\n", u + "/noremote.conf: You must use -r/--remote"},
        {"nosubnets", "--remote=h\n", u + "/nosubnets.conf: at least one subnet"},
        {"othername", "--remote=h\n--no-firewall\n--name=x\n",
         u + "/othername.conf:3: --name x differs"},
        {"nested", "--remote=h\n@" + u + "/inner.inc\n",
         u + "/inner.inc:1: unrecognized arguments: --bogus"},
        {"help", "--remote=h\n-N\n-h\n", "do not belong in a profile"},
    };
    d.write(u + "/inner.inc", "--bogus\n");
    for (const Case& c : cases) {
        CAPTURE(c.name);
        d.write(u + "/" + c.name + ".conf", c.text);
        auto r = load(d, c.name);
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find(c.needle) != std::string::npos);
    }
}

TEST_CASE("profiles: missing profiles and bad names") {
    Dirs d;
    auto r = find_profile("nothere", d.dirs);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::NotFound);
    CHECK(r.error().message.find(d.dirs.system + "/nothere.conf") != std::string::npos);
    CHECK_FALSE(find_profile("../etc/passwd", d.dirs));
    CHECK_FALSE(find_profile("", d.dirs));
}

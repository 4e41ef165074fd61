// sshuttle: the command line. A verb (up, down, status, list, help) or sshuttle's classic
// invocation, which runs a tunnel in the foreground.
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "client/verbs.hpp"

int main(int argc, char** argv) {
    using namespace sshuttle::client;
    std::vector<std::string> args(argv + 1, argv + argc);
    if (!args.empty()) {
        if (const Verb* verb = find_verb(args[0])) {
            std::vector<std::string> rest(args.begin() + 1, args.end());
            if (std::any_of(rest.begin(), rest.end(),
                            [](const std::string& a) { return a == "-h" || a == "--help"; }))
                return std::fputs(verb->help, stdout), 0;
            return verb->run(rest);
        }
    }
    return run_classic(args);
}

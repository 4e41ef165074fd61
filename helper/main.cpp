// sshuttle-helper: the privileged half. Serves io.sshuttle.Helper1 on the system bus, or with
// --stdio one peer-to-peer D-Bus connection on stdin/stdout (started by sshuttled directly when
// root, or through sudo).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "helper/run.hpp"

namespace {

void usage(FILE* out) {
    std::fputs(
        "usage: sshuttle-helper [--stdio] [--net-raw] [--idle-timeout=SECONDS] [-v]...\n"
        "  --stdio               serve one peer-to-peer D-Bus connection on stdin/stdout\n"
        "  --net-raw             keep CAP_NET_RAW as well as CAP_NET_ADMIN\n"
        "  --idle-timeout=SECS   on the system bus, exit after SECS owning nothing (0: never)\n",
        out);
}

}  // namespace

int main(int argc, char** argv) {
    sshuttle::helper::HelperOptions options;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--stdio") {
            options.stdio = true;
        } else if (arg == "--net-raw") {
            options.net_raw = true;
        } else if (arg.rfind("--idle-timeout=", 0) == 0) {
            char* end = nullptr;
            const char* text = arg.c_str() + std::strlen("--idle-timeout=");
            unsigned long secs = std::strtoul(text, &end, 10);
            if (end == text || *end != '\0' || secs > 86400) {
                std::fprintf(stderr, "sshuttle-helper: bad --idle-timeout '%s'\n", text);
                return 2;
            }
            options.idle_usec = secs * 1'000'000ULL;
        } else if (arg == "-v" || arg == "--verbose") {
            ++options.verbosity;
        } else if (arg == "-h" || arg == "--help") {
            usage(stdout);
            return 0;
        } else {
            std::fprintf(stderr, "sshuttle-helper: unknown argument '%s'\n", arg.c_str());
            usage(stderr);
            return 2;
        }
    }
    return sshuttle::helper::run_helper(options);
}

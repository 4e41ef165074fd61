// A small driver of daemon/helper_client for tests/integration/helper_bus_test.sh: it plays the
// daemon's part against a real sshuttle-helper.
//
//   helper_client_probe --spawn HELPER SPEC_JSON   start HELPER --stdio (sudo unless root)
//   helper_client_probe --system SPEC_JSON         use io.sshuttle.Helper1 on the system bus
//
// It applies SPEC_JSON, prints "applied" (or "error <Name>: <message>" and exits 1), then waits
// until stdin reaches EOF or the helper is lost (prints "lost: ..."), closes the client and prints
// "closed". SIGKILLing it is the "caller vanished" test.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "common/sd_handles.hpp"
#include "daemon/helper_client.hpp"

using sshuttle::errc_name;
using sshuttle::daemon::HelperClient;

namespace {

int on_stdin(sd_event_source* s, int fd, std::uint32_t, void*) noexcept {
    char buf[256];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) sd_event_exit(sd_event_source_get_event(s), 0);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (!((mode == "--spawn" && argc == 4) || (mode == "--system" && argc == 3))) {
        std::fprintf(stderr, "usage: helper_client_probe --spawn HELPER SPEC | --system SPEC\n");
        return 2;
    }
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    sd_event* raw = nullptr;
    sd_event_default(&raw);
    sshuttle::EventPtr event(raw);

    auto client = mode == "--spawn" ? HelperClient::spawn(
                                          event.get(), HelperClient::default_spawn_options(argv[2]))
                                    : HelperClient::connect_system(event.get());
    if (!client) {
        std::printf("error %s: %s\n", errc_name(client.error().code),
                    client.error().to_string().c_str());
        return 1;
    }
    nlohmann::json spec = nlohmann::json::parse(argv[argc - 1], nullptr, false);
    auto applied = (*client)->apply(spec);
    if (!applied) {
        std::printf("error %s: %s\n", errc_name(applied.error().code),
                    applied.error().to_string().c_str());
        return 1;
    }
    auto names = (*client)->list();
    std::printf("applied %s\n", names && !names->empty() ? names->front().c_str() : "?");
    std::fflush(stdout);
    (*client)->on_lost([&](const sshuttle::Error& why) {
        std::printf("lost: %s\n", why.to_string().c_str());
        std::fflush(stdout);
        sd_event_exit(event.get(), 3);
    });
    sd_event_add_io(event.get(), nullptr, STDIN_FILENO, EPOLLIN, &on_stdin, nullptr);
    int r = sd_event_loop(event.get());
    client->reset();
    std::printf("closed\n");
    return r == 3 ? 3 : 0;
}

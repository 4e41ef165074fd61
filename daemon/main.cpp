// sshuttled: one tunnel. Parse the command line, set up logging and the event loop, run.
#include <signal.h>
#include <sys/resource.h>

#include <cstdio>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/logging.hpp"
#include "common/sd_handles.hpp"
#include "daemon/options.hpp"
#include "daemon/tunnel.hpp"

using namespace sshuttle;

namespace {

// Every connection costs a descriptor: take all the kernel allows us (sshuttle stopped at ~1000).
void raise_fd_limit() {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
    }
}

int on_signal(sd_event_source*, const signalfd_siginfo* si, void* userdata) noexcept {
    spdlog::info("{}: stopping", si->ssi_signo == SIGINT ? "interrupted" : "terminated");
    static_cast<daemon::Tunnel*>(userdata)->stop(0);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    auto parsed = daemon::parse_daemon_args(std::vector<std::string>(argv + 1, argv + argc));
    if (!parsed) {
        std::fprintf(stderr, "sshuttled: %s\n", parsed.error().message.c_str());
        return 2;
    }
    if (parsed->show_help) return std::fputs(daemon::daemon_usage(), stdout), 0;
    if (parsed->show_version) return std::puts(PROJECT_VERSION), 0;
    setup_logging("sshuttled", parsed->config.verbosity);
    raise_fd_limit();

    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGINT, SIGTERM, SIGCHLD}) sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    sd_event* raw = nullptr;
    if (int r = sd_event_default(&raw); r < 0) return spdlog::error("sd_event: {}", r), 1;
    EventPtr event(raw);
    daemon::Tunnel tunnel(event.get(), std::move(parsed->config));
    sd_event_add_signal(event.get(), nullptr, SIGINT, on_signal, &tunnel);
    sd_event_add_signal(event.get(), nullptr, SIGTERM, on_signal, &tunnel);
    if (auto r = tunnel.start(); !r) {
        spdlog::error("fatal: {}", r.error().to_string());
        return daemon::Tunnel::kExitFatal;
    }
    return sd_event_loop(event.get());
}

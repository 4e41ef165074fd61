// sshuttled: one tunnel. Parse the command line, set up logging and the event loop, start the
// tunnel, then serve the control socket until the tunnel stops.
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/logging.hpp"
#include "common/sd_handles.hpp"
#include "daemon/control_server.hpp"
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

struct App {
    daemon::Tunnel* tunnel = nullptr;
    daemon::ControlServer* control = nullptr;
    void stop(int status) {
        tunnel->stop(status);
        control->finish_watchers();
    }
};

int on_signal(sd_event_source*, const signalfd_siginfo* si, void* userdata) noexcept {
    spdlog::info("{}: stopping", si->ssi_signo == SIGINT ? "interrupted" : "terminated");
    static_cast<App*>(userdata)->stop(0);
    return 0;
}

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v ? v : "";
}

}  // namespace

int main(int argc, char** argv) {
    auto parsed = daemon::parse_daemon_args(std::vector<std::string>(argv + 1, argv + argc),
                                            resolve_with_getaddrinfo, proto::read_text_file);
    if (auto* e = std::get_if<daemon::ArgsError>(&parsed)) {
        std::fprintf(stderr, "sshuttled: %s\n", e->error.message.c_str());
        return e->exit_code;
    }
    auto& args = std::get<daemon::ParsedArgs>(parsed);
    if (args.show_help) return std::fputs(daemon::daemon_usage(), stdout), 0;
    if (args.show_version) return std::puts(PROJECT_VERSION), 0;
    setup_logging("sshuttled", args.config.verbosity);
    raise_fd_limit();
    auto place =
        daemon::choose_control_place(args.options, daemon::default_tunnel_name(args.config.remote),
                                     ::geteuid(), env("RUNTIME_DIRECTORY"), env("XDG_RUNTIME_DIR"));
    if (!place) return spdlog::error("fatal: {}", place.error().to_string()), proto::kExitFatal;
    args.config.name = place->name;
    args.config.runtime_directory = env("RUNTIME_DIRECTORY");
    args.config.xdg_runtime_dir = env("XDG_RUNTIME_DIR");
    auto helper_mode = daemon::parse_helper_mode(env("SSHUTTLE_HELPER"));
    if (!helper_mode) return spdlog::error("fatal: {}", helper_mode.error().message), proto::kExitUsage;
    daemon::HelperChoice helper{*helper_mode, env("SSHUTTLE_HELPER_PATH"), args.config.verbosity};

    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : {SIGINT, SIGTERM, SIGCHLD}) sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    ::signal(SIGPIPE, SIG_IGN);

    sd_event* raw = nullptr;
    if (int r = sd_event_default(&raw); r < 0) return spdlog::error("sd_event: {}", r), 1;
    EventPtr event(raw);
    // WATCHDOG=1 from the loop itself when the unit sets WatchdogSec=: a hung loop gets restarted.
    sd_event_set_watchdog(event.get(), 1);
    daemon::StatusInfo info{
        place->name, args.config.remote.to_string(), &args.options, std::time(nullptr), 0,
        ::getpid()};
    sd_event_now(event.get(), CLOCK_MONOTONIC, &info.started_monotonic_usec);
    daemon::Tunnel tunnel(event.get(), args.config, helper);
    App app{&tunnel, nullptr};
    daemon::ControlServer control(event.get(),
                                  {[&] {
                                       std::uint64_t now = 0;
                                       sd_event_now(event.get(), CLOCK_MONOTONIC, &now);
                                       return daemon::status_parameters(info, tunnel.stats(), now);
                                   },
                                   [&] { app.stop(0); }});
    app.control = &control;
    // A stop request goes before any traffic: it must not queue behind busy channels.
    std::vector<EventSourcePtr> signal_sources;
    for (int sig : {SIGINT, SIGTERM}) {
        sd_event_source* source = nullptr;
        if (sd_event_add_signal(event.get(), &source, sig, on_signal, &app) < 0) continue;
        sd_event_source_set_priority(source, SD_EVENT_PRIORITY_IMPORTANT);
        signal_sources.emplace_back(source);
    }
    if (auto r = tunnel.start(); !r) {
        spdlog::error("fatal: {}", r.error().to_string());
        return daemon::Tunnel::kExitFatal;
    }
    // After the listeners are bound: a socket that answers means a tunnel that can work.
    if (auto r = control.listen(place->path); !r) {
        spdlog::error("fatal: control socket: {}", r.error().to_string());
        tunnel.stop(daemon::Tunnel::kExitFatal);
    } else {
        spdlog::info("tunnel '{}', control socket {}", place->name, place->path);
    }
    int status = sd_event_loop(event.get());
    control.finish_watchers();  // when the session ended on its own: watchers learn "stopping"
    return status;
}

#include "helper/run.hpp"

#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

#include "common/logging.hpp"
#include "common/sd_handles.hpp"
#include "helper/authz.hpp"
#include "helper/caps.hpp"
#include "helper/methods.hpp"
#include "helper/service.hpp"

#ifndef SSHUTTLE_SERVICE_USER
#define SSHUTTLE_SERVICE_USER "sshuttle"
#endif

namespace sshuttle::helper {

namespace {

std::uint64_t now_usec() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000ULL +
           static_cast<std::uint64_t>(ts.tv_nsec) / 1000ULL;
}

bool same_file(int a, int b) {
    struct stat sa {
    }, sb{};
    return fstat(a, &sa) == 0 && fstat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
           sa.st_ino == sb.st_ino;
}

// The server end of a peer-to-peer D-Bus connection on stdin/stdout. When both are the same
// socket (started directly) sd-bus can pass fds over it; behind sudo's relay they are pipes.
Result<BusPtr> open_peer_bus() {
    sd_bus* raw = nullptr;
    int r = sd_bus_new(&raw);
    BusPtr bus(raw);
    if (r < 0) return Error(Errc::Io, "sd_bus_new", -r);
    const int out_fd = same_file(STDIN_FILENO, STDOUT_FILENO) ? STDIN_FILENO : STDOUT_FILENO;
    sd_id128_t id{};
    if ((r = sd_id128_randomize(&id)) < 0) return Error(Errc::Io, "sd_id128_randomize", -r);
    if ((r = sd_bus_set_fd(bus.get(), STDIN_FILENO, out_fd)) < 0 ||
        (r = sd_bus_set_server(bus.get(), 1, id)) < 0 ||
        (r = sd_bus_set_anonymous(bus.get(), 1)) < 0 ||
        (r = sd_bus_negotiate_fds(bus.get(), out_fd == STDIN_FILENO)) < 0)
        return Error(Errc::Io, "set up the peer connection", -r);
    if ((r = sd_bus_start(bus.get())) < 0) return Error(Errc::Io, "start the peer connection", -r);
    return bus;
}

Result<BusPtr> open_system_bus() {
    sd_bus* raw = nullptr;
    int r = sd_bus_open_system(&raw);
    if (r < 0) return Error(Errc::Io, "connect to the system bus", -r);
    return BusPtr(raw);
}

struct IdleState {
    Service* service = nullptr;
    sd_bus* bus = nullptr;
    std::uint64_t idle_usec = 0;
    std::uint64_t last_activity = 0;
};

int on_activity(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
    // Only calls to us count: the bus's NameOwnerChanged chatter about other clients must not
    // keep an idle helper alive.
    uint8_t type = 0;
    if (sd_bus_message_get_type(m, &type) >= 0 && type == SD_BUS_MESSAGE_METHOD_CALL)
        static_cast<IdleState*>(userdata)->last_activity = now_usec();
    return 0;  // a filter: let the message go on to its handler
}

int on_idle_timer(sd_event_source* source, std::uint64_t, void* userdata) noexcept {
    auto* st = static_cast<IdleState*>(userdata);
    const std::uint64_t now = now_usec();
    if (!st->service->owns_anything() && !st->service->busy() &&
        now - st->last_activity >= st->idle_usec) {
        spdlog::info("idle and owning nothing: exiting");
        // Give the name back first so the bus activates a fresh helper for the next caller.
        sd_bus_release_name(st->bus, kBusName);
        return sd_event_exit(sd_event_source_get_event(source), 0);
    }
    sd_event_source_set_time_relative(source, st->idle_usec);
    return sd_event_source_set_enabled(source, SD_EVENT_ONESHOT);
}

// The helper holds one system backend (one libnftables context owns every `flags owner` table);
// the service asks per method, so each method gets a forwarding view of it, or the reason that
// method does not work here.
class SharedBackend final : public FirewallBackend {
  public:
    explicit SharedBackend(std::shared_ptr<FirewallBackend> b) : b_(std::move(b)) {}
    Result<void> apply(const TunnelSpec& spec) override { return b_->apply(spec); }
    Result<void> remove(const std::string& name) override { return b_->remove(name); }
    Result<std::vector<std::string>> installed() override { return b_->installed(); }
    Result<std::vector<std::string>> sweep() override { return b_->sweep(); }

  private:
    std::shared_ptr<FirewallBackend> b_;
};

BackendFactory system_backends() {
    auto made = make_system_backend();
    std::shared_ptr<FirewallBackend> shared;
    std::string why;
    if (made)
        shared = std::move(*made);
    else
        why = made.error().to_string();
    return [shared, why,
            statuses = method_status()](Method m) -> Result<std::unique_ptr<FirewallBackend>> {
        if (!shared) return Error(Errc::Backend, why);
        for (const auto& s : statuses)
            if (s.method == m && !s.available) return Error(Errc::Backend, s.reason);
        return std::unique_ptr<FirewallBackend>(std::make_unique<SharedBackend>(shared));
    };
}

int on_signal(sd_event_source* source, const signalfd_siginfo*, void*) noexcept {
    return sd_event_exit(sd_event_source_get_event(source), 0);
}

}  // namespace

int run_helper(const HelperOptions& options) {
    setup_logging("sshuttle-helper", options.verbosity);
    auto caps = restrict_capabilities(capability_plan(options.net_raw));
    if (!caps) {
        spdlog::error("{}", caps.error().to_string());
        return 1;
    }
    spdlog::debug("capabilities: {}", current_capabilities());

    sd_event* raw_event = nullptr;
    if (int r = sd_event_default(&raw_event); r < 0) {
        spdlog::error("sd_event_default: {}", std::strerror(-r));
        return 1;
    }
    EventPtr event(raw_event);
    // A --stdio helper shares the daemon's terminal: Ctrl-C and a hang-up reach both. The daemon
    // answers them by removing its rules through us, so we must still be here; we end when our
    // connection closes (or on SIGTERM). The bus service stops on all three.
    std::vector<int> stop_signals{SIGTERM};
    if (options.stdio) {
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
    } else {
        stop_signals.insert(stop_signals.end(), {SIGINT, SIGHUP});
    }
    sigset_t mask;
    sigemptyset(&mask);
    for (int sig : stop_signals) sigaddset(&mask, sig);
    sigprocmask(SIG_BLOCK, &mask, nullptr);
    signal(SIGPIPE, SIG_IGN);
    for (int sig : stop_signals) sd_event_add_signal(event.get(), nullptr, sig, &on_signal, nullptr);

    auto bus = options.stdio ? open_peer_bus() : open_system_bus();
    if (!bus) {
        spdlog::error("{}", bus.error().to_string());
        return 1;
    }
    if (int r = sd_bus_attach_event(bus->get(), event.get(), SD_EVENT_PRIORITY_NORMAL); r < 0) {
        spdlog::error("attach the bus to the event loop: {}", std::strerror(-r));
        return 1;
    }
    // The peer closing (or the bus going away) ends the loop; cleanup follows below.
    sd_bus_set_exit_on_disconnect(bus->get(), 1);

    PeerAuthorizer peer_authz;
    BusAuthorizer bus_authz(bus->get(), lookup_uid(SSHUTTLE_SERVICE_USER),
                            PolkitAuthority::kDefaultTimeoutUsec);
    ServiceConfig config;
    config.mode = options.stdio ? ServiceMode::Peer : ServiceMode::Bus;
    config.backends = system_backends();
    config.minter = make_socket_minter();
    config.hosts_path = default_hosts_path();
    config.peer_key = "stdio-" + std::to_string(getpid());
    Authorizer& authz = options.stdio ? static_cast<Authorizer&>(peer_authz) : bus_authz;
    Service service(bus->get(), authz, std::move(config));
    if (auto started = service.start(); !started) {
        spdlog::error("{}", started.error().to_string());
        return 1;
    }

    if (options.stdio) service.sweep_hosts();
    IdleState idle{&service, bus->get(), options.idle_usec, now_usec()};
    BusSlotPtr filter;
    EventSourcePtr timer;
    if (!options.stdio) {
        service.sweep();
        if (int r = sd_bus_request_name(bus->get(), kBusName, 0); r < 0) {
            spdlog::error("cannot own {}: {}", kBusName, std::strerror(-r));
            return 1;
        }
        if (options.idle_usec > 0) {
            sd_bus_slot* slot = nullptr;
            sd_bus_add_filter(bus->get(), &slot, &on_activity, &idle);
            filter.reset(slot);
            sd_event_source* src = nullptr;
            sd_event_add_time_relative(event.get(), &src, CLOCK_MONOTONIC, options.idle_usec, 0,
                                       &on_idle_timer, &idle);
            timer.reset(src);
        }
    }
    spdlog::info("serving {} on {}", kInterface, options.stdio ? "stdin/stdout" : "the system bus");

    int r = sd_event_loop(event.get());
    service.remove_all();
    if (r < 0) {
        spdlog::error("event loop: {}", std::strerror(-r));
        return 1;
    }
    return 0;
}

}  // namespace sshuttle::helper

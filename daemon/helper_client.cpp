#include "daemon/helper_client.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cstring>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/process.hpp"
#include "helper/methods.hpp"
#include "helper/spec_codec.hpp"


namespace sshuttle::daemon {

namespace {

using helper::kBusName;
using helper::kInterface;
using helper::kObjectPath;

// A human may be answering a polkit or sudo prompt; otherwise the helper answers in
// milliseconds and D-Bus's 25 s default is plenty.
constexpr std::uint64_t kInteractiveCallUsec = 300'000'000;
// How long closing waits for the helper to finish removing rules before giving up on it.
constexpr int kExitWaitSteps = 500;
constexpr long kExitWaitStepNsec = 10'000'000;  // 10 ms, so 5 s in all

Error call_error(const sd_bus_error& e, int r) {
    if (e.name == nullptr) return Error(Errc::Io, "call sshuttle-helper", -r);
    std::string name = e.name;
    Errc code = helper::errc_from_error_name(name);
    if (name == "org.freedesktop.DBus.Error.AccessDenied" ||
        name == "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired")
        code = Errc::PermissionDenied;
    if (name == "org.freedesktop.DBus.Error.NoReply" ||
        name == "org.freedesktop.DBus.Error.Timeout")
        code = Errc::Timeout;
    std::string msg = "sshuttle-helper: ";
    msg += e.message ? e.message : name;
    if (name.rfind(helper::kErrorPrefix, 0) != 0) msg += " (" + name + ")";
    return Error(code, msg);
}

void sleep_step() {
    timespec ts{0, kExitWaitStepNsec};
    nanosleep(&ts, nullptr);
}

}  // namespace

HelperSpawnOptions HelperClient::default_spawn_options(std::string helper_path) {
    HelperSpawnOptions o;
    o.helper_path = std::move(helper_path);
    o.use_sudo = geteuid() != 0;
    return o;
}

Result<std::unique_ptr<HelperClient>> HelperClient::connect_system(sd_event* event) {
    std::unique_ptr<HelperClient> c(new HelperClient());
    sd_bus* raw = nullptr;
    int r = sd_bus_open_system(&raw);
    c->bus_.reset(raw);
    if (r < 0) return Error(Errc::Io, "connect to the system bus", -r);
    sd_bus_set_allow_interactive_authorization(c->bus_.get(), isatty(STDIN_FILENO) ? 1 : 0);
    if (event && (r = sd_bus_attach_event(c->bus_.get(), event, SD_EVENT_PRIORITY_NORMAL)) < 0)
        return Error(Errc::Io, "attach the system bus", -r);
    sd_bus_slot* slot = nullptr;
    r = sd_bus_match_signal(c->bus_.get(), &slot, nullptr, "/org/freedesktop/DBus/Local",
                            "org.freedesktop.DBus.Local", "Disconnected",
                            &HelperClient::on_disconnected, c.get());
    if (r < 0) return Error(Errc::Io, "watch the bus connection", -r);
    c->disconnect_match_.reset(slot);
    return c;
}

Result<std::unique_ptr<HelperClient>> HelperClient::spawn(sd_event* event,
                                                          const HelperSpawnOptions& options) {
    auto pair = make_socketpair(false);
    if (!pair) return std::move(pair).error();
    std::vector<std::string> args;
    if (options.use_sudo) args = {"sudo", "-p", "[local sudo] Password: ", "--"};
    args.push_back(options.helper_path);
    args.push_back("--stdio");
    for (const auto& a : options.extra_args) args.push_back(a);
    SpawnOptions spawn_options;
    spawn_options.search_path = true;
    auto spawned = spawn_process(
        args[0], args,
        {{STDIN_FILENO, pair->second.get()}, {STDOUT_FILENO, pair->second.get()}}, spawn_options);
    if (!spawned) return std::move(spawned).error();
    const pid_t pid = *spawned;
    pair->second.reset();

    std::unique_ptr<HelperClient> c(new HelperClient());
    c->peer_ = true;
    c->child_ = pid;
    sd_event_source* src = nullptr;
    int r = sd_event_add_child(event, &src, pid, WEXITED, &HelperClient::on_child_exit, c.get());
    if (r < 0) return Error(Errc::Io, "watch the helper process (is SIGCHLD blocked?)", -r);
    c->child_source_.reset(src);

    sd_bus* raw = nullptr;
    r = sd_bus_new(&raw);
    c->bus_.reset(raw);
    if (r < 0) return Error(Errc::Io, "sd_bus_new", -r);
    const int fd = pair->first.release();
    if ((r = sd_bus_set_fd(c->bus_.get(), fd, fd)) < 0) {
        close(fd);
        return Error(Errc::Io, "hand the socket to sd-bus", -r);
    }
    if ((r = sd_bus_set_anonymous(c->bus_.get(), 1)) < 0 ||
        (r = sd_bus_negotiate_fds(c->bus_.get(), 1)) < 0 || (r = sd_bus_start(c->bus_.get())) < 0 ||
        (r = sd_bus_attach_event(c->bus_.get(), event, SD_EVENT_PRIORITY_NORMAL)) < 0)
        return Error(Errc::Io, "start the helper connection", -r);
    sd_bus_slot* slot = nullptr;
    r = sd_bus_match_signal(c->bus_.get(), &slot, nullptr, "/org/freedesktop/DBus/Local",
                            "org.freedesktop.DBus.Local", "Disconnected",
                            &HelperClient::on_disconnected, c.get());
    if (r < 0) return Error(Errc::Io, "watch the helper connection", -r);
    c->disconnect_match_.reset(slot);
    return c;
}

HelperClient::~HelperClient() {
    owner_match_.reset();
    disconnect_match_.reset();
    child_source_.reset();
    // Closing the connection is the "remove everything" request in --stdio mode.
    bus_.reset();
    if (child_ <= 0) return;
    // Wait, bounded, so that when we return the helper has removed our rules.
    for (int i = 0; i < kExitWaitSteps; ++i) {
        pid_t w = waitpid(child_, nullptr, WNOHANG);
        if (w == child_ || (w < 0 && errno == ECHILD)) return;
        sleep_step();
    }
    spdlog::warn("sshuttle-helper (pid {}) did not exit; stopping it", child_);
    kill(child_, SIGTERM);
    for (int i = 0; i < kExitWaitSteps; ++i) {
        if (waitpid(child_, nullptr, WNOHANG) != 0) return;
        sleep_step();
    }
}

void HelperClient::mark_lost(const Error& why) {
    if (lost_) return;
    lost_ = true;
    spdlog::warn("{}", why.to_string());
    if (on_lost_) {
        auto cb = on_lost_;
        cb(why);
    }
}

int HelperClient::on_disconnected(sd_bus_message*, void* userdata, sd_bus_error*) noexcept {
    auto* self = static_cast<HelperClient*>(userdata);
    self->mark_lost(Error(Errc::Io, self->peer_ ? "the helper connection closed"
                                                : "the system bus connection closed"));
    return 0;
}

int HelperClient::on_owner_changed(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
    auto* self = static_cast<HelperClient*>(userdata);
    const char* name = nullptr;
    const char* old_owner = nullptr;
    const char* new_owner = nullptr;
    if (sd_bus_message_read(m, "sss", &name, &old_owner, &new_owner) < 0) return 0;
    if (!self->owner_.empty() && self->owner_ == old_owner)
        self->mark_lost(Error(Errc::Io, "sshuttle-helper left the bus"));
    return 0;
}

int HelperClient::on_child_exit(sd_event_source*, const siginfo_t* si, void* userdata) noexcept {
    auto* self = static_cast<HelperClient*>(userdata);
    const int status = si->si_status;
    self->child_ = -1;  // reaped by sd-event
    self->mark_lost(
        Error(Errc::Io, "sshuttle-helper exited (status " + std::to_string(status) +
                            (si->si_code == CLD_EXITED ? ")" : ", killed by a signal)")));
    return 0;
}

Result<void> HelperClient::watch_system_owner() {
    if (peer_ || !owner_.empty()) return ok();
    const char* unique = nullptr;
    sd_bus_creds* raw = nullptr;
    int r = sd_bus_get_name_creds(bus_.get(), kBusName, SD_BUS_CREDS_UNIQUE_NAME, &raw);
    BusCredsPtr creds(raw);
    if (r < 0 || sd_bus_creds_get_unique_name(creds.get(), &unique) < 0)
        return Error(Errc::Io, "find the helper's bus name", r < 0 ? -r : 0);
    owner_ = unique;
    std::string match =
        "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
        "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='" +
        owner_ + "'";
    sd_bus_slot* slot = nullptr;
    r = sd_bus_add_match(bus_.get(), &slot, match.c_str(), &HelperClient::on_owner_changed, this);
    if (r < 0) return Error(Errc::Io, "watch the helper's bus name", -r);
    owner_match_.reset(slot);
    return ok();
}

Result<BusMessagePtr> HelperClient::new_call(const char* member) {
    if (lost_) return Error(Errc::Io, "sshuttle-helper is gone");
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_call(bus_.get(), &raw, peer_ ? nullptr : kBusName,
                                           kObjectPath, kInterface, member);
    BusMessagePtr m(raw);
    if (r < 0) return Error(Errc::Internal, std::string("build ") + member, -r);
    return m;
}

Result<BusMessagePtr> HelperClient::call(BusMessagePtr& request) {
    sd_bus_error error = SD_BUS_ERROR_NULL;
    sd_bus_message* raw = nullptr;
    const bool interactive = sd_bus_message_get_allow_interactive_authorization(request.get()) > 0;
    int r = sd_bus_call(bus_.get(), request.get(),
                        (peer_ || interactive) ? kInteractiveCallUsec : 0, &error, &raw);
    BusMessagePtr reply(raw);
    if (r < 0) {
        Error e = call_error(error, r);
        sd_bus_error_free(&error);
        return e;
    }
    sd_bus_error_free(&error);
    if (auto watched = watch_system_owner(); !watched) return std::move(watched).error();
    return reply;
}

Result<void> HelperClient::apply(const nlohmann::json& spec) {
    auto m = new_call("Apply");
    if (!m) return std::move(m).error();
    if (auto a = helper::append_spec_dict(m->get(), spec); !a) return a;
    auto reply = call(*m);
    if (!reply) return std::move(reply).error();
    return ok();
}

Result<void> HelperClient::remove(const std::string& name) {
    auto m = new_call("Remove");
    if (!m) return std::move(m).error();
    if (int r = sd_bus_message_append(m->get(), "s", name.c_str()); r < 0)
        return Error(Errc::Internal, "build Remove", -r);
    auto reply = call(*m);
    if (!reply) return std::move(reply).error();
    return ok();
}

Result<std::vector<std::string>> HelperClient::list() {
    auto m = new_call("List");
    if (!m) return std::move(m).error();
    auto reply = call(*m);
    if (!reply) return std::move(reply).error();
    char** strv = nullptr;
    if (int r = sd_bus_message_read_strv(reply->get(), &strv); r < 0)
        return Error(Errc::Protocol, "read List reply", -r);
    std::vector<std::string> out;
    for (char** p = strv; p && *p; ++p) {
        out.emplace_back(*p);
        free(*p);
    }
    free(strv);
    return out;
}

Result<std::vector<HelperCapability>> HelperClient::capabilities() {
    auto m = new_call("Capabilities");
    if (!m) return std::move(m).error();
    auto reply = call(*m);
    if (!reply) return std::move(reply).error();
    std::vector<HelperCapability> out;
    int r = sd_bus_message_enter_container(reply->get(), 'a', "(sbs)");
    while (r >= 0) {
        const char* name = nullptr;
        int available = 0;
        const char* reason = nullptr;
        r = sd_bus_message_read(reply->get(), "(sbs)", &name, &available, &reason);
        if (r <= 0) break;
        out.push_back({name, available != 0, reason});
    }
    if (r < 0) return Error(Errc::Protocol, "read Capabilities reply", -r);
    return out;
}

Result<std::vector<TransparentSocket>> HelperClient::transparent_sockets(const std::string& name) {
    auto m = new_call("GetTransparentSockets");
    if (!m) return std::move(m).error();
    if (int r = sd_bus_message_append(m->get(), "s", name.c_str()); r < 0)
        return Error(Errc::Internal, "build GetTransparentSockets", -r);
    auto reply = call(*m);
    if (!reply) return std::move(reply).error();
    std::vector<TransparentSocket> out;
    int r = sd_bus_message_enter_container(reply->get(), 'a', "(ssh)");
    while (r >= 0) {
        const char* family = nullptr;
        const char* proto = nullptr;
        int fd = -1;
        r = sd_bus_message_read(reply->get(), "(ssh)", &family, &proto, &fd);
        if (r <= 0) break;
        // The message owns `fd`; keep our own copy.
        int copy = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (copy < 0) return Error::from_errno("dup a transparent socket");
        out.push_back({family, proto, UniqueFd(copy)});
    }
    if (r < 0) return Error(Errc::Protocol, "read GetTransparentSockets reply", -r);
    return out;
}

Result<void> HelperClient::set_hosts(
    const std::vector<std::pair<std::string, std::string>>& name_address) {
    auto m = new_call("SetHosts");
    if (!m) return std::move(m).error();
    int r = sd_bus_message_open_container(m->get(), 'a', "(ss)");
    for (const auto& [name, address] : name_address) {
        if (r < 0) break;
        r = sd_bus_message_append(m->get(), "(ss)", name.c_str(), address.c_str());
    }
    if (r >= 0) r = sd_bus_message_close_container(m->get());
    if (r < 0) return Error(Errc::Internal, "build SetHosts", -r);
    auto reply = call(*m);
    if (!reply) return std::move(reply).error();
    return ok();
}

Result<void> HelperClient::clear_hosts() {
    auto m = new_call("ClearHosts");
    if (!m) return std::move(m).error();
    auto reply = call(*m);
    if (!reply) return std::move(reply).error();
    return ok();
}

}  // namespace sshuttle::daemon

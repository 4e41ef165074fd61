#include "daemon/firewall.hpp"

#include <unistd.h>

#include <cctype>
#include <cstdint>
#include <cstdio>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "common/process.hpp"

namespace sshuttle::daemon {

namespace {

const HelperCapability* find_row(const std::vector<HelperCapability>& rows, std::string_view name) {
    for (const auto& row : rows)
        if (row.name == name) return &row;
    return nullptr;
}

}  // namespace

Result<HelperMode> parse_helper_mode(std::string_view text) {
    if (text.empty() || text == "auto") return HelperMode::Auto;
    if (text == "system") return HelperMode::System;
    if (text == "private") return HelperMode::Private;
    return Error(Errc::InvalidArgument, "SSHUTTLE_HELPER: '" + std::string(text) +
                                            "' is not one of auto, system, private");
}

Result<std::string> find_helper_binary(const std::string& explicit_path,
                                       const std::string& exe_path,
                                       const std::string& installed_path) {
    std::vector<std::string> candidates;
    if (!explicit_path.empty()) {
        candidates.push_back(explicit_path);
    } else {
        if (auto slash = exe_path.rfind('/'); slash != std::string::npos)
            candidates.push_back(exe_path.substr(0, slash) + "/../helper/sshuttle-helper");
        candidates.push_back(installed_path);
    }
    return first_executable(candidates, "sshuttle-helper");
}

std::string helper_tunnel_name(std::string_view tunnel_name) {
    constexpr std::size_t kMax = helper::kMaxTunnelNameBytes;
    std::string out;
    bool changed = false;
    for (char c : tunnel_name) {
        const auto u = static_cast<unsigned char>(c);
        char mapped = static_cast<char>(std::tolower(u));
        if (!(std::isdigit(u) || (mapped >= 'a' && mapped <= 'z') || c == '_' || c == '-'))
            mapped = '-';
        changed |= mapped != c;
        out += mapped;
    }
    if (out.empty()) return "tunnel";
    if (!changed && out.size() <= kMax) return out;
    char hash[10];
    std::snprintf(hash, sizeof hash, "-%08x", helper::name_hash(tunnel_name));
    out.resize(std::min(out.size(), kMax - 9));
    return out + hash;
}

Result<std::unique_ptr<Firewall>> Firewall::open(sd_event* event, HelperChoice choice) {
    std::unique_ptr<Firewall> fw(new Firewall(event, std::move(choice)));
    if (auto r = fw->connect(true); !r) return std::move(r).error();
    return fw;
}

Firewall::~Firewall() { remove(); }

Result<void> Firewall::connect(bool allow_system) {
    const HelperMode mode = choice_.mode;
    if (allow_system && mode != HelperMode::Private) {
        auto client = HelperClient::connect_system(event_);
        Result<std::vector<HelperCapability>> caps =
            client ? (*client)->capabilities()
                   : Result<std::vector<HelperCapability>>(client.error());
        std::string why_not;
        if (!caps) {
            why_not = caps.error().to_string();
        } else {
            const HelperCapability* ns = find_row(*caps, "network-namespace");
            const std::string mine = network_namespace_id();
            if (ns == nullptr || !ns->available || ns->reason != mine)
                why_not = "it runs in another network namespace (" +
                          (ns ? ns->reason : std::string("unknown")) + ", ours is " + mine +
                          "), where its rules would not see our traffic";
        }
        if (why_not.empty()) {
            capabilities_ = std::move(*caps);
            adopt(std::move(*client), true);
            return ok();
        }
        if (mode == HelperMode::System)
            return Error(Errc::NotFound, "the sshuttle-helper service cannot serve us: " + why_not);
        spdlog::info("not using the sshuttle-helper service: {}", why_not);
    }
    return connect_private();
}

Result<void> Firewall::connect_private() {
    auto path = find_helper_binary(choice_.private_path, self_exe_path(), SSHUTTLE_HELPER_PATH);
    if (!path) return std::move(path).error();
    HelperSpawnOptions options = HelperClient::default_spawn_options(*path);
    for (int i = 0; i < choice_.verbosity && i < 3; ++i) options.extra_args.push_back("-v");
    if (options.use_sudo)
        spdlog::info("starting {} through sudo (not root, and no usable helper service)", *path);
    auto client = HelperClient::spawn(event_, options);
    if (!client) return std::move(client).error().with_context("start " + *path);
    // The first call waits for sudo's password prompt to be answered: a helper that answers is
    // a helper that runs as root.
    auto caps = (*client)->capabilities();
    if (!caps)
        return Error(caps.error().code,
                     std::string(options.use_sudo ? "sshuttle-helper through sudo" : "sshuttle-helper") +
                         " did not start: " + caps.error().to_string());
    capabilities_ = std::move(*caps);
    adopt(std::move(*client), false);
    return ok();
}

void Firewall::adopt(std::unique_ptr<HelperClient> client, bool system) {
    client_ = std::move(client);
    system_ = system;
    client_->on_lost([this](const Error& why) { helper_lost(why); });
    spdlog::info("firewall rules through {}", description());
}

std::string Firewall::description() const {
    if (!client_) return "no helper";
    if (system_) return "the sshuttle-helper service";
    return "a private sshuttle-helper (pid " + std::to_string(client_->child_pid()) +
           (::geteuid() == 0 ? ")" : ", through sudo)");
}

Result<void> Firewall::check_method(helper::Method method) {
    // The rows connect() read: this helper's, asked once.
    if (!client_) return Error(Errc::Internal, "no helper");
    const std::string name(helper::method_name(method));
    const HelperCapability* row = find_row(capabilities_, name);
    if (row == nullptr) return Error(Errc::NotFound, "the helper does not know method " + name);
    if (!row->available)
        return Error(Errc::NotFound, "method " + name + " is not available: " + row->reason);
    if (method == helper::Method::Tproxy) {
        const HelperCapability* sockets = find_row(capabilities_, "transparent-sockets");
        if (sockets == nullptr || !sockets->available)
            return Error(Errc::NotFound, "method tproxy: the helper cannot hand out transparent "
                                         "sockets" +
                                             (sockets ? ": " + sockets->reason : std::string()));
    }
    return ok();
}

Result<void> Firewall::apply(const helper::TunnelSpec& spec) {
    if (!client_) return Error(Errc::Internal, "no helper");
    auto applied = client_->apply(helper::spec_to_json(spec));
    if (!applied && system_ && applied.error().code == Errc::PermissionDenied &&
        choice_.mode == HelperMode::Auto && ::isatty(STDIN_FILENO)) {
        spdlog::warn("{}; trying a private helper through sudo", applied.error().message);
        client_.reset();
        if (auto r = connect_private(); !r)
            return Error(r.error().code, applied.error().message + "; and then: " + r.error().message);
        applied = client_->apply(helper::spec_to_json(spec));
    }
    if (!applied) return applied;
    applied_ = spec;
    return ok();
}

Result<void> Firewall::set_hosts(const std::vector<std::pair<std::string, std::string>>& entries) {
    if (!client_ || !applied_) return Error(Errc::Internal, "no helper");
    if (auto r = client_->set_hosts(entries); !r) return r;
    hosts_ = entries;
    return ok();
}

Result<std::vector<TransparentSocket>> Firewall::transparent_sockets() {
    if (!client_ || !applied_) return Error(Errc::Internal, "no tproxy rules applied");
    return client_->transparent_sockets(applied_->name);
}

void Firewall::remove() {
    recover_.reset();
    if (!applied_) {
        client_.reset();
        return;
    }
    const std::string name = applied_->name;
    applied_.reset();
    if (client_ && !client_->lost() && !hosts_.empty()) {
        if (auto r = client_->clear_hosts(); !r)
            spdlog::error("removing our /etc/hosts lines: {}", r.error().to_string());
        else
            spdlog::info("/etc/hosts lines removed");
    }
    hosts_.clear();
    if (client_ && !client_->lost()) {
        if (auto r = client_->remove(name); !r)
            spdlog::error("removing the firewall rules of {}: {}", name, r.error().to_string());
        else
            spdlog::info("firewall rules of {} removed", name);
    }
    // A private helper exits when its connection closes (removing anything left, too).
    client_.reset();
}

void Firewall::helper_lost(const Error& why) {
    if (failed_ || recover_ || !applied_) return;
    spdlog::error("lost the firewall helper: {}", why.to_string());
    // Not from inside the client's own callback: the client is replaced there.
    sd_event_source* src = nullptr;
    if (sd_event_add_defer(event_, &src, &Firewall::on_recover, this) < 0) {
        failed_ = true;
        if (on_fatal_) on_fatal_(Error(Errc::Io, "lost the firewall helper: " + why.message));
        return;
    }
    recover_.reset(src);
}

int Firewall::on_recover(sd_event_source*, void* userdata) noexcept {
    auto* self = static_cast<Firewall*>(userdata);
    self->recover_.reset();  // one-shot; sd-event allows dropping a source from its handler
    if (!self->applied_) return 0;  // stopped meanwhile
    const helper::TunnelSpec spec = *self->applied_;
    self->client_.reset();
    Result<void> r = self->connect(self->system_);
    if (r) r = self->client_->apply(helper::spec_to_json(spec));
    // The dead helper's hosts lines are swept by the next one; ours go back in.
    if (r && !self->hosts_.empty()) r = self->client_->set_hosts(self->hosts_);
    if (r) {
        ++self->reapplied_;
        spdlog::warn("firewall rules re-applied through {}", self->description());
        return 0;
    }
    self->failed_ = true;
    self->applied_.reset();
    spdlog::error("cannot get a new firewall helper: {}", r.error().to_string());
    if (self->on_fatal_)
        self->on_fatal_(Error(r.error().code, "lost the firewall helper and could not replace it: " +
                                                  r.error().message));
    return 0;
}

}  // namespace sshuttle::daemon

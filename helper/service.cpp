#include "helper/service.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstring>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/process.hpp"
#include "helper/spec_codec.hpp"

namespace sshuttle::helper {


namespace {

constexpr Method kLinuxMethods[] = {Method::Nft, Method::Nat, Method::Tproxy};
constexpr Method kAllMethods[] = {Method::Nft, Method::Nat, Method::Tproxy, Method::Pf};
// Names from a caller are echoed in errors only this far: an error must not carry a megabyte.
constexpr std::size_t kEchoBytes = 40;

std::string echo(std::string_view text) {
    std::string out;
    for (char c : text.substr(0, kEchoBytes)) out.push_back((c >= 0x20 && c < 0x7f) ? c : '?');
    if (text.size() > kEchoBytes) out += "...";
    return out;
}

Error malformed(const char* what, int r) {
    return Error(Errc::InvalidArgument,
                 std::string(what) + ": malformed message: " + std::strerror(-r), -r);
}

Result<std::string> read_tunnel_name(sd_bus_message* m) {
    const char* name = nullptr;
    int r = sd_bus_message_read_basic(m, 's', &name);
    if (r < 0) return malformed("name", r);
    if (!valid_tunnel_name(name))
        return Error(Errc::InvalidArgument,
                     "tunnel name '" + echo(name) + "' must match ^[a-z0-9_-]{1,32}$");
    return std::string(name);
}

Result<std::vector<std::pair<std::string, std::string>>> read_host_pairs(sd_bus_message* m) {
    int r = sd_bus_message_enter_container(m, 'a', "(ss)");
    if (r < 0) return malformed("entries", r);
    std::vector<std::pair<std::string, std::string>> pairs;
    for (;;) {
        const char* name = nullptr;
        const char* address = nullptr;
        r = sd_bus_message_read(m, "(ss)", &name, &address);
        if (r < 0) return malformed("entries", r);
        if (r == 0) break;
        if (pairs.size() >= kMaxHostEntries)
            return Error(Errc::TooLarge,
                         "more than " + std::to_string(kMaxHostEntries) + " hosts entries");
        if (std::strlen(name) > kMaxHostNameBytes || std::strlen(address) > kMaxRequestStringBytes)
            return Error(Errc::TooLarge, "hosts entry string too long");
        pairs.emplace_back(name, address);
    }
    r = sd_bus_message_exit_container(m);
    if (r < 0) return malformed("entries", r);
    return pairs;
}

}  // namespace

int reply_error(sd_bus_message* m, const Error& error) {
    const std::string name = error_name(error.code);
    int r = sd_bus_reply_method_errorf(m, name.c_str(), "%s", error.to_string().c_str());
    if (r < 0) spdlog::debug("cannot send error reply: {}", std::strerror(-r));
    return 1;
}

Service::Service(sd_bus* bus, Authorizer& authorizer, ServiceConfig config)
    : bus_(bus), authorizer_(authorizer), config_(std::move(config)), hosts_(config_.hosts_path) {}

Service::~Service() = default;

Result<void> Service::start() {
    // The vtable is built from the one method table, so the object can only ever answer what
    // the table lists. Every method is UNPRIVILEGED for sd-bus: authorization is ours (authz.*).
    const auto table = method_table();
    vtable_names_.reserve(table.size());
    for (const auto& info : table) {
        std::string names;
        for (const char* list : {info.in_names, info.out_names}) {
            std::string_view rest = list;
            while (!rest.empty()) {
                auto sp = rest.find(' ');
                names.append(rest.substr(0, sp));
                names.push_back('\0');
                if (sp == std::string_view::npos) break;
                rest.remove_prefix(sp + 1);
            }
        }
        vtable_names_.push_back(std::move(names));
    }
    sd_bus_vtable start{};
    std::memset(&start, 0, sizeof start);
    start.type = _SD_BUS_VTABLE_START;
    start.flags = 0;
    start.x.start.element_size = sizeof(sd_bus_vtable);
    start.x.start.features = _SD_BUS_VTABLE_PARAM_NAMES;
    start.x.start.vtable_format_reference = &sd_bus_object_vtable_format;
    vtable_.push_back(start);
    for (std::size_t i = 0; i < table.size(); ++i) {
        sd_bus_vtable v{};
        std::memset(&v, 0, sizeof v);
        v.type = _SD_BUS_VTABLE_METHOD;
        v.flags = SD_BUS_VTABLE_UNPRIVILEGED;
        v.x.method.member = table[i].name;
        v.x.method.signature = table[i].in_sig;
        v.x.method.result = table[i].out_sig;
        v.x.method.handler = &Service::on_call_trampoline;
        v.x.method.offset = 0;
        v.x.method.names = vtable_names_[i].c_str();
        vtable_.push_back(v);
    }
    sd_bus_vtable end{};
    std::memset(&end, 0, sizeof end);
    end.type = _SD_BUS_VTABLE_END;
    vtable_.push_back(end);

    sd_bus_slot* slot = nullptr;
    int r = sd_bus_add_object_vtable(bus_, &slot, kObjectPath, kInterface, vtable_.data(), this);
    if (r < 0) return Error(Errc::Internal, "register the helper object", -r);
    object_slot_.reset(slot);

    if (config_.mode == ServiceMode::Bus) {
        auto watched = callers_.watch(bus_, [this](const std::string& c) { caller_gone(c); });
        if (!watched) return watched;
    }
    return ok();
}

int Service::on_call_trampoline(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
    try {
        return static_cast<Service*>(userdata)->on_call(m);
    } catch (const std::exception& e) {
        spdlog::error("helper method threw: {}", e.what());
        return reply_error(m, Error(Errc::Internal, "internal error"));
    } catch (...) {
        return reply_error(m, Error(Errc::Internal, "internal error"));
    }
}

std::string Service::caller_key(sd_bus_message* m) const {
    if (config_.mode == ServiceMode::Peer) return config_.peer_key;
    const char* sender = sd_bus_message_get_sender(m);
    return sender ? sender : "";
}

int Service::on_call(sd_bus_message* m) {
    const MethodInfo* info = find_method(sd_bus_message_get_member(m));
    if (info == nullptr) return reply_error(m, Error(Errc::InvalidArgument, "unknown method"));
    const std::string caller = caller_key(m);
    if (caller.empty()) return reply_error(m, Error(Errc::PermissionDenied, "caller has no name"));

    // Validate at the door, before polkit is bothered: a malformed request changes nothing,
    // whoever sends it.
    auto request = parse(m, *info);
    if (!request) return reply_error(m, request.error());

    if (info->action == nullptr) {
        execute(m, *info, caller, *request);
        return 1;
    }
    const std::uint64_t id = next_id_++;
    Pending& p = pending_[id];
    p.call.reset(sd_bus_message_ref(m));
    p.info = info;
    p.caller = caller;
    p.request = std::move(*request);
    auto handle = authorizer_.authorize(m, info->action, [this, id](Result<void> verdict) {
        on_authorized(id, std::move(verdict));
    });
    // A verdict given at once has already run and erased the entry.
    if (auto it = pending_.find(id); it != pending_.end()) it->second.authz = std::move(handle);
    return 1;
}

void Service::on_authorized(std::uint64_t id, Result<void> verdict) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    Pending p = std::move(it->second);
    pending_.erase(it);
    // `p.authz` may be the object whose callback is running now; it dies at the end of this
    // function, after the callback has stopped touching it (PolkitCall::finish).
    if (!verdict) {
        spdlog::info("denied {} for {}: {}", p.info->name, p.caller, verdict.error().message);
        reply_error(p.call.get(), verdict.error());
        return;
    }
    execute(p.call.get(), *p.info, p.caller, p.request);
}

Result<Service::Request> Service::parse(sd_bus_message* m, const MethodInfo& info) {
    switch (info.id) {
        case MethodId::Apply: {
            auto json = read_spec_dict(m);
            if (!json) return std::move(json).error();
            auto spec = spec_from_json(*json);
            if (!spec) return std::move(spec).error();
            auto valid = validate(*spec);
            if (!valid) return std::move(valid).error();
            return Request{std::move(*spec)};
        }
        case MethodId::Remove:
        case MethodId::GetTransparentSockets: {
            auto name = read_tunnel_name(m);
            if (!name) return std::move(name).error();
            return Request{NameRequest{std::move(*name)}};
        }
        case MethodId::SetHosts: {
            auto pairs = read_host_pairs(m);
            if (!pairs) return std::move(pairs).error();
            auto entries = parse_host_entries(*pairs);
            if (!entries) return std::move(entries).error();
            return Request{HostsRequest{std::move(*entries)}};
        }
        case MethodId::List:
        case MethodId::Capabilities:
        case MethodId::ClearHosts:
            return Request{std::monostate{}};
    }
    return Error(Errc::Internal, "method without a parser");
}

void Service::execute(sd_bus_message* m, const MethodInfo& info, const std::string& caller,
                      Request& request) {
    Result<void> done;
    switch (info.id) {
        case MethodId::Apply:
            done = do_apply(caller, std::get<TunnelSpec>(request));
            break;
        case MethodId::Remove:
            done = do_remove(caller, std::get<NameRequest>(request).name);
            break;
        case MethodId::SetHosts:
            done = do_set_hosts(caller, std::get<HostsRequest>(request).entries);
            break;
        case MethodId::ClearHosts:
            done = do_clear_hosts(caller);
            break;
        case MethodId::List:
            reply_list(m, caller);
            return;
        case MethodId::Capabilities:
            reply_capabilities(m);
            return;
        case MethodId::GetTransparentSockets: {
            auto sockets = do_sockets(caller, std::get<NameRequest>(request).name);
            if (!sockets) {
                reply_error(m, sockets.error());
                return;
            }
            sd_bus_message* raw = nullptr;
            int r = sd_bus_message_new_method_return(m, &raw);
            BusMessagePtr reply(raw);
            if (r >= 0) r = sd_bus_message_open_container(reply.get(), 'a', "(ssh)");
            for (const auto& s : *sockets) {
                if (r < 0) break;
                r = sd_bus_message_append(reply.get(), "(ssh)", s.family.c_str(), s.proto.c_str(),
                                          s.fd.get());
            }
            if (r >= 0) r = sd_bus_message_close_container(reply.get());
            if (r >= 0) r = sd_bus_send(nullptr, reply.get(), nullptr);
            if (r < 0) spdlog::warn("cannot send sockets to {}: {}", caller, std::strerror(-r));
            return;
        }
    }
    if (!done) {
        reply_error(m, done.error());
        return;
    }
    int r = sd_bus_reply_method_return(m, nullptr);
    if (r < 0) spdlog::debug("cannot send reply to {}: {}", caller, std::strerror(-r));
}

Result<FirewallBackend*> Service::backend(Method method) {
    auto it = backends_.find(method);
    if (it != backends_.end()) return it->second.get();
    if (!config_.backends) return Error(Errc::Internal, "no firewall backends configured");
    auto made = config_.backends(method);
    if (!made) return std::move(made).error();
    FirewallBackend* raw = made->get();
    backends_.emplace(method, std::move(*made));
    return raw;
}

Result<void> Service::do_apply(const std::string& caller, const TunnelSpec& spec) {
    if (auto owner = callers_.owner_of(spec.name)) {
        if (*owner == caller)
            return Error(Errc::InvalidArgument,
                         "tunnel '" + spec.name + "' is already applied; Remove it first");
        return Error(Errc::PermissionDenied,
                     "tunnel '" + spec.name + "' belongs to another caller");
    }
    const CallerState* st = callers_.find(caller);
    if (st && st->tunnels.size() >= kMaxTunnelsPerCaller)
        return Error(Errc::TooLarge, "a caller may own at most " +
                                         std::to_string(kMaxTunnelsPerCaller) + " tunnels");
    auto b = backend(spec.method);
    if (!b) return std::move(b).error();
    if (config_.mode == ServiceMode::Peer) {
        // A helper of ours that died (the daemon is re-applying after it noticed) may have left
        // this tunnel's iptables chain behind; nft owner tables vanished with it. A live
        // helper's owned table refuses the removal, and the apply below then fails.
        auto installed = (*b)->installed();
        if (installed && std::count(installed->begin(), installed->end(), spec.name)) {
            auto removed = (*b)->remove(spec.name);
            if (!removed)
                return std::move(removed).error().with_context("stale tunnel " + spec.name);
        }
    }
    auto applied = (*b)->apply(spec);
    if (!applied) return applied;
    callers_.state(caller).tunnels.emplace(spec.name, spec);
    spdlog::info("{}: applied tunnel {} ({})", caller, spec.name, method_name(spec.method));
    changed();
    return ok();
}

Result<void> Service::do_remove(const std::string& caller, const std::string& name) {
    const CallerState* st = callers_.find(caller);
    auto it = st ? st->tunnels.find(name) : decltype(st->tunnels.end()){};
    if (st == nullptr || it == st->tunnels.end())
        return Error(Errc::NotFound, "this caller owns no tunnel named '" + name + "'");
    auto b = backend(it->second.method);
    if (!b) return std::move(b).error();
    auto removed = (*b)->remove(name);
    if (!removed) return removed;
    callers_.state(caller).tunnels.erase(name);
    callers_.forget_if_empty(caller);
    spdlog::info("{}: removed tunnel {}", caller, name);
    changed();
    return ok();
}

Result<std::vector<MintedSocket>> Service::do_sockets(const std::string& caller,
                                                      const std::string& name) {
    const CallerState* st = callers_.find(caller);
    auto it = st ? st->tunnels.find(name) : decltype(st->tunnels.end()){};
    if (st == nullptr || it == st->tunnels.end())
        return Error(Errc::NotFound, "this caller owns no tunnel named '" + name + "'");
    if (it->second.method != Method::Tproxy)
        return Error(Errc::InvalidArgument, "tunnel '" + name + "' does not use tproxy");
    if (!config_.minter)
        return Error(Errc::Backend, "transparent sockets are not available in this build");
    return config_.minter(it->second);
}

Result<void> Service::do_set_hosts(const std::string& caller,
                                   const std::vector<HostEntry>& entries) {
    auto set = hosts_.set(caller, entries);
    if (!set) return set;
    callers_.state(caller).hosts = !entries.empty();
    callers_.forget_if_empty(caller);
    spdlog::info("{}: {} hosts entries in {}", caller, entries.size(), hosts_.path());
    changed();
    return ok();
}

Result<void> Service::do_clear_hosts(const std::string& caller) {
    auto cleared = hosts_.clear(caller);
    if (!cleared) return cleared;
    if (callers_.find(caller)) {
        callers_.state(caller).hosts = false;
        callers_.forget_if_empty(caller);
    }
    changed();
    return ok();
}

int Service::reply_list(sd_bus_message* m, const std::string& caller) {
    std::vector<const char*> names;
    if (const CallerState* st = callers_.find(caller))
        for (const auto& [name, spec] : st->tunnels) names.push_back(name.c_str());
    names.push_back(nullptr);
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(m, &raw);
    BusMessagePtr reply(raw);
    if (r >= 0) r = sd_bus_message_append_strv(reply.get(), const_cast<char**>(names.data()));
    if (r >= 0) r = sd_bus_send(nullptr, reply.get(), nullptr);
    if (r < 0) spdlog::debug("cannot send List reply: {}", std::strerror(-r));
    return 1;
}

int Service::reply_capabilities(sd_bus_message* m) {
    sd_bus_message* raw = nullptr;
    int r = sd_bus_message_new_method_return(m, &raw);
    BusMessagePtr reply(raw);
    if (r >= 0) r = sd_bus_message_open_container(reply.get(), 'a', "(sbs)");
    bool tproxy_ok = false;
    for (Method method : kAllMethods) {
        auto b = backend(method);
        if (method == Method::Tproxy) tproxy_ok = b.has_value();
        const std::string why = b ? "" : b.error().to_string();
        const std::string name(method_name(method));
        if (r >= 0)
            r = sd_bus_message_append(reply.get(), "(sbs)", name.c_str(), b.has_value() ? 1 : 0,
                                      why.c_str());
    }
    const bool sockets_ok = tproxy_ok && static_cast<bool>(config_.minter);
    const char* sockets_why = sockets_ok       ? ""
                              : config_.minter ? "the tproxy method is unavailable"
                                               : "not available in this build";
    if (r >= 0)
        r = sd_bus_message_append(reply.get(), "(sbs)", "transparent-sockets", sockets_ok ? 1 : 0,
                                  sockets_why);
    if (r >= 0) r = sd_bus_message_append(reply.get(), "(sbs)", "hosts", 1, "");
    // Rules apply in the helper's network namespace. A caller in another one (a lab namespace,
    // a container sharing the host's bus socket) compares this with its own and must not use us:
    // its traffic would never meet our rules.
    const std::string netns = network_namespace_id();
    if (r >= 0)
        r = sd_bus_message_append(reply.get(), "(sbs)", "network-namespace", netns.empty() ? 0 : 1,
                                  netns.empty() ? "cannot read /proc/self/ns/net" : netns.c_str());
    if (r >= 0) r = sd_bus_message_close_container(reply.get());
    if (r >= 0) r = sd_bus_send(nullptr, reply.get(), nullptr);
    if (r < 0) spdlog::debug("cannot send Capabilities reply: {}", std::strerror(-r));
    return 1;
}

void Service::caller_gone(const std::string& caller) {
    for (auto it = pending_.begin(); it != pending_.end();) {
        if (it->second.caller == caller)
            it = pending_.erase(it);
        else
            ++it;
    }
    const CallerState* st = callers_.find(caller);
    if (st == nullptr) return;
    for (const auto& [name, spec] : st->tunnels) {
        auto b = backend(spec.method);
        auto removed = b ? (*b)->remove(name) : Result<void>(b.error());
        if (removed)
            spdlog::info("{} is gone: removed tunnel {}", caller, name);
        else
            spdlog::error("{} is gone: cannot remove tunnel {}: {}", caller, name,
                          removed.error().to_string());
    }
    if (st->hosts) {
        auto cleared = hosts_.clear(caller);
        if (!cleared)
            spdlog::error("{} is gone: cannot clear hosts entries: {}", caller,
                          cleared.error().to_string());
    }
    callers_.forget(caller);
    changed();
}

void Service::remove_all() {
    for (const auto& caller : callers_.names()) caller_gone(caller);
    pending_.clear();
}

void Service::sweep() {
    for (Method method : kLinuxMethods) {
        auto b = backend(method);
        if (!b) continue;
        auto swept = (*b)->sweep();
        if (!swept) {
            spdlog::warn("sweep of {} leftovers failed: {}", method_name(method),
                         swept.error().to_string());
            continue;
        }
        for (const auto& name : *swept)
            spdlog::info("removed leftover {} tunnel {}", method_name(method), name);
    }
    sweep_hosts();
}

void Service::sweep_hosts() {
    const bool bus_mode = config_.mode == ServiceMode::Bus;
    auto hosts = hosts_.sweep_if(
        [bus_mode](std::string_view owner) { return stale_hosts_owner(owner, bus_mode); });
    if (!hosts) spdlog::warn("sweep of {} failed: {}", hosts_.path(), hosts.error().to_string());
}

void Service::changed() {
    if (on_change_) on_change_();
}

}  // namespace sshuttle::helper

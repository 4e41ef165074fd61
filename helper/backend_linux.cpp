// The real backends: libnftables for nft and tproxy (plus rtnetlink policy routing for tproxy),
// iptables-restore for nat. One class serves any subset of the methods; make_backend(m) gives
// one method, make_system_backend() every method that works here.
#include <nftables/libnftables.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <set>

#include "helper/backend.hpp"
#include "helper/policy_route.hpp"
#include "helper/render.hpp"
#include "helper/run_tool.hpp"

namespace sshuttle::helper {
namespace {

// One libnftables context, kept for the backend's whole life: its netlink socket is the owner
// of every `flags owner` table it creates, so those tables live exactly as long as this process
// (the kernel deletes them when the socket closes, SIGKILL included).
class NftContext {
public:
    static Result<std::unique_ptr<NftContext>> open() {
        nft_ctx* ctx = nft_ctx_new(NFT_CTX_DEFAULT);
        if (ctx == nullptr) return Error(Errc::Backend, "nft: cannot create a libnftables context");
        if (nft_ctx_buffer_output(ctx) != 0 || nft_ctx_buffer_error(ctx) != 0) {
            nft_ctx_free(ctx);
            return Error(Errc::Backend, "nft: cannot buffer libnftables output");
        }
        return std::unique_ptr<NftContext>(new NftContext(ctx));
    }
    ~NftContext() { nft_ctx_free(ctx_); }
    NftContext(const NftContext&) = delete;
    NftContext& operator=(const NftContext&) = delete;

    // Runs the commands in one transaction; returns the output, or the error nft printed.
    Result<std::string> run(const std::string& commands, bool check_only = false) {
        nft_ctx_set_dry_run(ctx_, check_only);
        int rc = nft_run_cmd_from_buffer(ctx_, commands.c_str());
        nft_ctx_set_dry_run(ctx_, false);
        std::string out = nft_ctx_get_output_buffer(ctx_);
        std::string err = nft_ctx_get_error_buffer(ctx_);
        if (rc != 0) {
            while (!err.empty() && err.back() == '\n') err.pop_back();
            return Error(Errc::Backend, "nft: " + (err.empty() ? "command failed" : err));
        }
        return out;
    }

private:
    explicit NftContext(nft_ctx* ctx) : ctx_(ctx) {}
    nft_ctx* ctx_;
};

// Names of `table inet sshuttle_*` in `list tables` output, without the prefix.
std::vector<std::string> nft_tunnels_in(std::string_view listing) {
    std::vector<std::string> names;
    const std::string marker = "table inet " + std::string(kNftTablePrefix);
    while (!listing.empty()) {
        std::size_t nl = listing.find('\n');
        std::string_view line = listing.substr(0, nl);
        if (line.starts_with(marker)) {
            std::string_view rest = line.substr(marker.size());
            names.emplace_back(rest.substr(0, rest.find_first_of(" {")));
        }
        if (nl == std::string_view::npos) break;
        listing.remove_prefix(nl + 1);
    }
    return names;
}

// A small table that needs what `method` needs from the kernel; check mode only (the kernel
// validates the batch and aborts it). Upper case: no tunnel can have this name.
std::string probe_ruleset(Method method) {
    TunnelSpec spec;
    spec.name = "PROBE";
    spec.method = method;
    spec.includes.push_back({Subnet(IpAddress::parse("192.0.2.0").value(), 24), {}});
    spec.tcp_port_v4 = 9;
    spec.udp = method == Method::Tproxy;
    return render_nft_table(spec);
}

struct NatTools {
    std::string restore;
    std::string save;
};

Result<NatTools> find_nat_tools(Family family) {
    const char* restore_name = family == Family::V4 ? "iptables-restore" : "ip6tables-restore";
    const char* save_name = family == Family::V4 ? "iptables-save" : "ip6tables-save";
    auto restore = find_tool(restore_name);
    if (!restore) return restore.error();
    auto save = find_tool(save_name);
    if (!save) return save.error();
    return NatTools{*restore, *save};
}

Error tool_failed(const std::string& what, const ToolOutput& out) {
    std::string err = out.err;
    while (!err.empty() && err.back() == '\n') err.pop_back();
    return Error(Errc::Backend, what + " failed (exit " + std::to_string(out.exit_code) + ")" +
                                    (err.empty() ? "" : ": " + err));
}

class LinuxBackend final : public FirewallBackend {
public:
    LinuxBackend(std::set<Method> methods, std::map<Method, std::string> unavailable,
                 std::unique_ptr<NftContext> nft)
        : methods_(std::move(methods)), unavailable_(std::move(unavailable)), nft_(std::move(nft)) {}

    ~LinuxBackend() override {
        // Owner-flag tables go with the context; routes and nat chains have no owner: undo them.
        std::vector<std::string> names;
        for (const auto& [name, method] : applied_) names.push_back(name);
        for (const auto& name : names) (void)remove(name);
    }

    Result<void> apply(const TunnelSpec& spec) override {
        if (auto valid = validate(spec); !valid) return valid.error();
        if (!methods_.contains(spec.method)) {
            auto why = unavailable_.find(spec.method);
            return Error(Errc::Backend, why != unavailable_.end()
                                            ? why->second
                                            : std::string(method_name(spec.method)) +
                                                  ": not handled by this backend");
        }
        if (applied_.contains(spec.name))
            return Error(Errc::Backend, "tunnel " + spec.name + " is already installed");
        Result<void> done = ok();
        switch (spec.method) {
            case Method::Nft: done = apply_nft(spec); break;
            case Method::Tproxy: done = apply_tproxy(spec); break;
            case Method::Nat: done = apply_nat(spec); break;
            case Method::Pf: done = Error(Errc::Backend, "pf: not available on Linux"); break;
        }
        if (!done) return done.error().with_context("applying tunnel " + spec.name);
        applied_.emplace(spec.name, spec.method);
        tproxy_families_.erase(spec.name);
        if (spec.method == Method::Tproxy) tproxy_families_[spec.name] = families_of(spec);
        return ok();
    }

    Result<void> remove(const std::string& name) override {
        if (!valid_tunnel_name(name)) return Error(Errc::InvalidArgument, "name: not a tunnel name");
        auto it = applied_.find(name);
        std::optional<Method> method;
        if (it != applied_.end()) method = it->second;
        // Not ours (a leftover): look for it in every place we know.
        if (nft_ && (!method || *method != Method::Nat)) {
            if (auto r = remove_nft_table(name); !r) return r;
        }
        if (has_nat() && (!method || *method == Method::Nat)) {
            if (auto r = remove_nat_chains(nat_chain_name(name)); !r) return r;
        }
        applied_.erase(name);
        if (method == Method::Tproxy) {
            auto families = tproxy_families_[name];
            tproxy_families_.erase(name);
            for (Family family : families)
                if (!tproxy_uses(family))
                    if (auto r = remove_tproxy_routing(family); !r) return r;
        }
        return ok();
    }

    Result<std::vector<std::string>> installed() override {
        std::set<std::string> names;
        if (nft_) {
            auto listing = nft_->run("list tables inet\n");
            if (!listing) return listing.error();
            for (auto& name : nft_tunnels_in(*listing)) names.insert(name);
        }
        if (has_nat()) {
            for (Family family : {Family::V4, Family::V6}) {
                auto save = nat_save(family);
                if (!save) return save.error();
                for (const auto& chain : nat_chains_in(*save)) {
                    // Our own hashed long names map back through applied_.
                    std::string name = chain.substr(kNatChainPrefix.size());
                    for (const auto& [applied, method] : applied_)
                        if (method == Method::Nat && nat_chain_name(applied) == chain) name = applied;
                    names.insert(name);
                }
            }
        }
        return std::vector<std::string>(names.begin(), names.end());
    }

    Result<std::vector<std::string>> sweep() override {
        std::set<std::string> removed;
        if (nft_) {
            auto listing = nft_->run("list tables inet\n");
            if (!listing) return listing.error();
            for (const auto& name : nft_tunnels_in(*listing)) {
                if (applied_.contains(name)) continue;
                auto r = nft_->run(render_nft_delete(name));
                // EPERM/EBUSY: another live process owns it, so it is not a leftover.
                if (r) removed.insert(name);
            }
        }
        if (has_nat()) {
            std::set<std::string> ours;
            for (const auto& [name, method] : applied_)
                if (method == Method::Nat) ours.insert(nat_chain_name(name));
            for (Family family : {Family::V4, Family::V6}) {
                auto save = nat_save(family);
                if (!save) return save.error();
                for (const auto& chain : nat_chains_in(*save)) {
                    if (ours.contains(chain)) continue;
                    if (auto r = remove_nat_chain(family, chain); !r) return r.error();
                    removed.insert(chain.substr(kNatChainPrefix.size()));
                }
            }
        }
        if (methods_.contains(Method::Tproxy))
            for (Family family : {Family::V4, Family::V6})
                if (!tproxy_uses(family))
                    if (auto r = remove_tproxy_routing(family); !r) return r.error();
        return std::vector<std::string>(removed.begin(), removed.end());
    }

private:
    bool has_nat() const { return methods_.contains(Method::Nat); }

    static std::set<Family> families_of(const TunnelSpec& spec) {
        std::set<Family> families;
        for (const auto& sp : spec.includes) families.insert(sp.subnet.family());
        for (const auto& ip : spec.dns_servers) families.insert(ip.family());
        return families;
    }

    bool tproxy_uses(Family family) const {
        for (const auto& [name, families] : tproxy_families_)
            if (families.contains(family)) return true;
        return false;
    }

    Result<void> apply_nft(const TunnelSpec& spec) {
        auto r = nft_->run(render_nft(spec));
        if (!r) return r.error();
        return ok();
    }

    Result<void> apply_tproxy(const TunnelSpec& spec) {
        std::vector<Family> added;
        auto undo = [&] {
            for (Family family : added) (void)remove_tproxy_routing(family);
        };
        for (Family family : families_of(spec)) {
            if (tproxy_uses(family)) continue;
            if (auto r = add_tproxy_routing(family); !r) {
                undo();
                return r;
            }
            added.push_back(family);
        }
        auto r = nft_->run(render_tproxy(spec));
        if (!r) {
            undo();
            return r.error();
        }
        return ok();
    }

    Result<void> remove_nft_table(const std::string& name) {
        auto r = nft_->run(render_nft_delete(name));
        if (r) return ok();
        // Deleting what is not there is fine; anything else (EPERM: owned by another process)
        // is reported.
        auto listing = nft_->run("list tables inet\n");
        if (!listing) return listing.error();
        auto names = nft_tunnels_in(*listing);
        if (std::find(names.begin(), names.end(), name) == names.end()) return ok();
        return r.error();
    }

    Result<std::string> nat_save(Family family) {
        auto tools = find_nat_tools(family);
        if (!tools) return tools.error();
        auto out = run_tool(tools->save, {tools->save, "-t", "nat"}, "");
        if (!out) return out.error();
        // ip6tables-save on a kernel without IPv6 nat: nothing of ours can exist there.
        if (out->exit_code != 0) {
            if (family == Family::V6) return std::string();
            return tool_failed(tools->save, *out);
        }
        return std::move(out->out);
    }

    Result<void> restore(Family family, const std::string& text) {
        auto tools = find_nat_tools(family);
        if (!tools) return tools.error();
        auto out = run_tool(tools->restore, {tools->restore, "--noflush", "-w"}, text);
        if (!out) return out.error();
        if (out->exit_code != 0) return tool_failed(tools->restore, *out);
        return ok();
    }

    Result<void> remove_nat_chain(Family family, const std::string& chain) {
        auto save = nat_save(family);
        if (!save) return save.error();
        std::string text = render_nat_remove(*save, chain);
        if (text.empty()) return ok();
        return restore(family, text);
    }

    Result<void> remove_nat_chains(const std::string& chain) {
        for (Family family : {Family::V6, Family::V4})
            if (auto r = remove_nat_chain(family, chain); !r) return r;
        return ok();
    }

    Result<void> apply_nat(const TunnelSpec& spec) {
        const std::string chain = nat_chain_name(spec.name);
        std::array<std::pair<Family, std::string>, 2> texts = {
            std::pair{Family::V6, render_nat(spec, Family::V6)},
            std::pair{Family::V4, render_nat(spec, Family::V4)}};
        // `:chain` under --noflush would silently flush an existing chain: refuse instead.
        for (const auto& [family, text] : texts) {
            if (text.empty()) continue;
            auto save = nat_save(family);
            if (!save) return save.error();
            auto chains = nat_chains_in(*save);
            if (std::find(chains.begin(), chains.end(), chain) != chains.end())
                return Error(Errc::Backend, "iptables chain " + chain + " already exists");
        }
        std::vector<Family> done;
        for (const auto& [family, text] : texts) {
            if (text.empty()) continue;
            if (auto r = restore(family, text); !r) {
                for (Family undo : done) (void)remove_nat_chain(undo, chain);
                return r;
            }
            done.push_back(family);
        }
        return ok();
    }

    std::set<Method> methods_;
    std::map<Method, std::string> unavailable_;
    std::unique_ptr<NftContext> nft_;
    std::map<std::string, Method> applied_;
    std::map<std::string, std::set<Family>> tproxy_families_;
};

// Why `method` does not work here, or "" when it does. `nft` is a context to probe with.
std::string unavailable_reason(Method method, NftContext* nft, const std::string& nft_error) {
    switch (method) {
        case Method::Pf: return "pf: only on macOS, FreeBSD and OpenBSD";
        case Method::Nat:
            for (Family family : {Family::V4, Family::V6})
                if (auto tools = find_nat_tools(family); !tools)
                    return "nat: " + tools.error().message;
            return "";
        case Method::Nft:
        case Method::Tproxy: {
            if (nft == nullptr) return std::string(method_name(method)) + ": " + nft_error;
            auto r = nft->run(probe_ruleset(method), true);
            if (!r)
                return std::string(method_name(method)) + ": the kernel refused a test ruleset (" +
                       (method == Method::Tproxy ? "no nft tproxy/socket support or no owner flag"
                                                 : "no nft nat or owner flag support") +
                       "): " + r.error().message;
            return "";
        }
    }
    return "unknown method";
}

struct Probe {
    std::set<Method> available;
    std::map<Method, std::string> unavailable;
    std::unique_ptr<NftContext> nft;
};

Probe probe(const std::vector<Method>& wanted) {
    Probe p;
    std::string nft_error;
    bool needs_nft = std::any_of(wanted.begin(), wanted.end(),
                                 [](Method m) { return m == Method::Nft || m == Method::Tproxy; });
    if (needs_nft) {
        auto ctx = NftContext::open();
        if (ctx) p.nft = std::move(*ctx);
        else nft_error = ctx.error().message;
    }
    for (Method m : wanted) {
        std::string why = unavailable_reason(m, p.nft.get(), nft_error);
        if (why.empty()) p.available.insert(m);
        else p.unavailable.emplace(m, why);
    }
    return p;
}

}  // namespace

Result<std::unique_ptr<FirewallBackend>> make_backend(Method method) {
    Probe p = probe({method});
    if (!p.available.contains(method)) return Error(Errc::Backend, p.unavailable[method]);
    return std::unique_ptr<FirewallBackend>(
        new LinuxBackend(std::move(p.available), std::move(p.unavailable), std::move(p.nft)));
}

Result<std::unique_ptr<FirewallBackend>> make_system_backend() {
    Probe p = probe({Method::Nft, Method::Nat, Method::Tproxy, Method::Pf});
    if (p.available.empty()) {
        std::string why;
        for (const auto& [method, reason] : p.unavailable) why += (why.empty() ? "" : "; ") + reason;
        return Error(Errc::Backend, "no firewall method works here: " + why);
    }
    return std::unique_ptr<FirewallBackend>(
        new LinuxBackend(std::move(p.available), std::move(p.unavailable), std::move(p.nft)));
}

std::vector<MethodStatus> method_status() {
    Probe p = probe({Method::Nft, Method::Nat, Method::Tproxy, Method::Pf});
    std::vector<MethodStatus> out;
    for (Method m : {Method::Nft, Method::Nat, Method::Tproxy, Method::Pf}) {
        MethodStatus status;
        status.method = m;
        status.available = p.available.contains(m);
        if (!status.available) status.reason = p.unavailable[m];
        out.push_back(status);
    }
    return out;
}

}  // namespace sshuttle::helper

// Firewall: the tunnel's rules, installed and kept by sshuttle-helper.
//
// The daemon never edits the firewall itself. It finds a helper, in this order:
//   1. the installed service io.sshuttle.Helper1 on the system bus (polkit decides), when the
//      bus answers, the service is there, and it runs in our network namespace;
//   2. otherwise a private helper, `sshuttle-helper --stdio`, started as our child: directly
//      when we are root, through sudo otherwise (the original sshuttle's way), so a fresh build
//      tree and a lab namespace work without `meson install`.
// SSHUTTLE_HELPER=system|private forces one of the two (no fallback); SSHUTTLE_HELPER_PATH names
// the binary for the private helper.
//
// The rules belong to our connection: if we die, the helper removes them. If the helper dies,
// we get a fresh one (which sweeps what the dead one left) and apply the same spec again; if that
// fails, on_fatal runs and the tunnel stops. remove() takes them away on an orderly stop.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <systemd/sd-event.h>

#include "common/error.hpp"
#include "common/sd_handles.hpp"
#include "daemon/helper_client.hpp"
#include "helper/spec.hpp"

namespace sshuttle::daemon {

enum class HelperMode { Auto, System, Private };

struct HelperChoice {
    HelperMode mode = HelperMode::Auto;
    std::string private_path;  // the sshuttle-helper binary for a private helper
    int verbosity = 0;         // passed on as -v
};

// SSHUTTLE_HELPER's value ("", "auto", "system", "private"); anything else is InvalidArgument.
[[nodiscard]] Result<HelperMode> parse_helper_mode(std::string_view text);

// The private helper's binary: `explicit_path` when given; else next to a build tree's daemon
// (EXE_DIR/../helper/sshuttle-helper); else the installed one (`installed_path`). The first that
// is an executable file wins; NotFound lists what was tried.
[[nodiscard]] Result<std::string> find_helper_binary(const std::string& explicit_path,
                                                     const std::string& exe_path,
                                                     const std::string& installed_path);

// The helper's tunnel name (^[a-z0-9_-]{1,32}$) for a tunnel name of ours (which may hold
// upper case, '.', '@' and be 64 long): lower-cased, other characters as '-', and when anything
// changed or was cut, a hash of the original at the end so two names never collide.
std::string helper_tunnel_name(std::string_view tunnel_name);


class Firewall {
  public:
    // Finds and starts a helper (see the top of this file). Blocks while sudo or polkit may ask
    // for a password, which is why it runs before ssh starts: one prompt at a time.
    [[nodiscard]] static Result<std::unique_ptr<Firewall>> open(sd_event* event,
                                                                HelperChoice choice);
    ~Firewall();
    Firewall(const Firewall&) = delete;
    Firewall& operator=(const Firewall&) = delete;

    // An error naming the method when this helper cannot use it (nft missing, pf on Linux...).
    [[nodiscard]] Result<void> check_method(helper::Method method);
    // Installs the rules. With a system helper that polkit refuses, in Auto mode and on a
    // terminal, falls back to a private helper through sudo, as the original would.
    [[nodiscard]] Result<void> apply(const helper::TunnelSpec& spec);
    // The IP_TRANSPARENT sockets of an applied tproxy tunnel.
    [[nodiscard]] Result<std::vector<TransparentSocket>> transparent_sockets();
    // -H: replaces our /etc/hosts block (name, address) with `entries`; kept for a re-apply.
    [[nodiscard]] Result<void> set_hosts(
        const std::vector<std::pair<std::string, std::string>>& entries);
    // Removes the rules and our hosts lines (orderly stop); errors are logged. Idempotent.
    void remove();

    // Called once if the helper is lost and a fresh one cannot re-apply the rules.
    void on_fatal(std::function<void(const Error&)> callback) { on_fatal_ = std::move(callback); }
    // "the system service" or "a private helper (pid N, through sudo)", for logs and status.
    std::string description() const;
    std::uint64_t reapplied() const noexcept { return reapplied_; }

  private:
    Firewall(sd_event* event, HelperChoice choice) : event_(event), choice_(std::move(choice)) {}
    [[nodiscard]] Result<void> connect(bool allow_system);
    [[nodiscard]] Result<void> connect_private();
    void adopt(std::unique_ptr<HelperClient> client, bool system);
    void helper_lost(const Error& why);
    static int on_recover(sd_event_source*, void* userdata) noexcept;

    sd_event* event_;
    HelperChoice choice_;
    std::unique_ptr<HelperClient> client_;
    std::vector<HelperCapability> capabilities_;  // what client_ answered when connected
    bool system_ = false;
    std::optional<helper::TunnelSpec> applied_;
    std::vector<std::pair<std::string, std::string>> hosts_;  // what set_hosts gave the helper
    EventSourcePtr recover_;
    std::function<void(const Error&)> on_fatal_;
    std::uint64_t reapplied_ = 0;
    bool failed_ = false;
};

}  // namespace sshuttle::daemon

// Tunnel: one sshuttled instance. Owns the event loop's components and wires them: the ssh
// child, the mux on its stream, the TCP listeners, the DNS proxy and the firewall (through
// sshuttle-helper). States:
//   starting (listeners bound, helper found, rules planned) -> connecting (ssh started,
//   bootstrap sent) -> ready (sync seen, extensions settled, rules applied, listeners accepting,
//   READY=1 sent) -> stopping (signal, the session broke, or the helper was lost for good; the
//   rules are removed first).
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "common/sd_handles.hpp"
#include "daemon/dns_proxy.hpp"
#include "daemon/firewall.hpp"
#include "daemon/firewall_plan.hpp"
#include "daemon/mux.hpp"
#include "daemon/options.hpp"
#include "daemon/ssh_forward.hpp"
#include "daemon/ssh_session.hpp"
#include "daemon/tcp_listener.hpp"
#include "daemon/tcp_router.hpp"
#include "daemon/tunnel_stats.hpp"

namespace sshuttle::daemon {

// The first port tried for listeners and the lowest, as sshuttle (12300 down to 9001).
inline constexpr std::uint16_t kFirstPort = 12300;
inline constexpr std::uint16_t kLastPort = 9001;

// The JSON options our agent's main() receives.
std::string agent_options_json(const TunnelConfig& config);

class Tunnel {
public:
    // Exit status for a session that failed (sshuttle's "Fatal").
    static constexpr int kExitFatal = 99;

    Tunnel(sd_event* event, TunnelConfig config, HelperChoice helper = {});
    ~Tunnel();
    // Binds the listeners, starts ssh and the bootstrap. Errors here are fatal before any I/O.
    [[nodiscard]] Result<void> start();
    // Begins an orderly stop; the loop exits once ssh is gone (or after a grace period).
    void stop(int exit_status);
    // A snapshot for the control socket (state, channels, bytes, listeners).
    TunnelStats stats() const;

private:
    Result<void> bind_listeners();
    Result<void> prepare_firewall();
    Result<void> apply_firewall();
    void start_listeners(std::vector<std::pair<IpAddress, UniqueFd>> sockets);
    void on_ready();
    void on_mux_failure(const Error& error);
    void on_host_list(std::string_view text);
    void on_ssh_exit(int status, bool signaled);
    // The data path over ssh channels (docs/ARCHITECTURE.md "Data path").
    Result<void> prepare_masters();
    void start_ssh_path();
    void on_master_exit(std::size_t index, int status, bool signaled);
    static int on_master_poll(sd_event_source* s, uint64_t usec, void* userdata) noexcept;
    static int on_bytes_sample(sd_event_source* s, uint64_t usec, void* userdata) noexcept;
    static int on_grace_timeout(sd_event_source* s, uint64_t usec, void* userdata) noexcept;
    static int on_retire(sd_event_source* s, void* userdata) noexcept;

    sd_event* event_;
    TunnelConfig config_;
    HelperChoice helper_choice_;
    // ssh ControlMasters: master 0 is the session's ssh (ssh_), the others extra_masters_[i-1].
    // The router outlives the mux: its channels report to it until the mux is gone.
    ControlDir control_dir_;
    std::unique_ptr<SshForwarder> forwarder_;  // null with --tcp-path agent
    std::unique_ptr<TcpRouter> router_;        // made when the session is ready
    std::vector<std::unique_ptr<SshSession>> extra_masters_;
    std::vector<UniqueFd> extra_master_streams_;  // their stdin/stdout, held open, unused
    EventSourcePtr master_poll_;
    EventSourcePtr bytes_timer_;  // samples the ssh path's byte counters each second
    std::unique_ptr<Firewall> firewall_;  // null with --no-firewall
    FirewallInputs firewall_inputs_;      // ports and all; -N's routes are added when they come
    helper::Method method_ = helper::Method::Nft;
    std::string routes_;                  // the server's ROUTES payload (for -N)
    // -H: every name the server reported, with its latest address (what /etc/hosts shows).
    // Capped at the helper's limit per caller.
    static constexpr std::size_t kMaxHosts = 1024;
    std::map<std::string, std::string> hosts_;
    std::unique_ptr<SshSession> ssh_;
    std::unique_ptr<Mux> mux_;
    std::vector<std::unique_ptr<TcpListener>> listeners_;
    std::vector<std::pair<IpAddress, UniqueFd>> tcp_sockets_;  // bound before the mux exists
    std::unique_ptr<DnsProxy> dns_;
    std::vector<UniqueFd> dns_sockets_;
    std::uint16_t dns_port_ = 0;
    EventSourcePtr grace_timer_;
    // What stop() took down, destroyed from the loop (see stop()). Declared after the live
    // parts (destroyed first when the Tunnel goes), the mux before what refers to it.
    std::unique_ptr<Mux> retired_mux_;
    std::unique_ptr<DnsProxy> retired_dns_;
    std::vector<std::unique_ptr<TcpListener>> retired_listeners_;
    EventSourcePtr retire_source_;
    bool stopping_ = false;
    // The stream broke while ssh ran: ssh's exit status usually explains it better, so the
    // error waits for it (empty message: already logged).
    std::optional<Error> stream_error_;
    bool draining_ = false;  // reading what an exited ssh left in the stream
    int exit_status_ = 0;
};

}  // namespace sshuttle::daemon

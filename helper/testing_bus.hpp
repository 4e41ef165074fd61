// Test support: a private peer-to-peer D-Bus connection on a socketpair, both ends on one
// sd-event loop, so a test can serve an object on one end and call it from the other without
// any bus daemon, root or timing assumptions (calls are async; the loop runs until the reply).
#pragma once

#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <stdexcept>
#include <string>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>
#include <systemd/sd-id128.h>

#include "common/sd_handles.hpp"

namespace sshuttle::helper::testing {

class PeerPair {
  public:
    PeerPair() {
        sd_event* e = nullptr;
        check(sd_event_new(&e));
        event_.reset(e);
        int fds[2];
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0)
            throw std::runtime_error("socketpair");
        server_ = make(fds[0], true);
        client_ = make(fds[1], false);
    }

    // Closes without flushing: both ends share this thread, so a flush could wait forever for
    // a handshake only the other end's loop would finish.
    ~PeerPair() {
        if (client_) sd_bus_close(client_.get());
        if (server_) sd_bus_close(server_.get());
    }
    PeerPair(const PeerPair&) = delete;
    PeerPair& operator=(const PeerPair&) = delete;

    sd_bus* server() { return server_.get(); }
    sd_bus* client() { return client_.get(); }
    sd_event* event() { return event_.get(); }

    // Runs the loop until `done()` or `max_iterations` 10 ms steps have passed.
    template <class Pred>
    bool run_until(Pred done, int max_iterations = 500) {
        for (int i = 0; i < max_iterations && !done(); ++i) sd_event_run(event_.get(), 10'000);
        return done();
    }

    // Sends `m` from the client and waits for the reply (or error).
    BusMessagePtr call(sd_bus_message* m, std::uint64_t timeout_usec = 5'000'000) {
        std::optional<BusMessagePtr> reply;
        sd_bus_slot* slot = nullptr;
        check(sd_bus_call_async(client(), &slot, m, &on_reply, &reply, timeout_usec));
        BusSlotPtr hold(slot);
        run_until([&] { return reply.has_value(); });
        if (!reply) throw std::runtime_error("no reply");
        return std::move(*reply);
    }

    BusMessagePtr new_call(const char* path, const char* interface, const char* member) {
        sd_bus_message* m = nullptr;
        check(sd_bus_message_new_method_call(client(), &m, nullptr, path, interface, member));
        return BusMessagePtr(m);
    }

    // Closes the client end (the peer "goes away").
    void close_client() {
        sd_bus_close(client_.get());
        client_.reset();
    }

    static void check(int r) {
        if (r < 0) throw std::runtime_error("sd-bus call failed: " + std::to_string(r));
    }

  private:
    static int on_reply(sd_bus_message* m, void* userdata, sd_bus_error*) noexcept {
        auto* out = static_cast<std::optional<BusMessagePtr>*>(userdata);
        out->emplace(sd_bus_message_ref(m));
        return 0;
    }

    BusPtr make(int fd, bool server) {
        sd_bus* b = nullptr;
        check(sd_bus_new(&b));
        BusPtr bus(b);
        check(sd_bus_set_fd(b, fd, fd));
        if (server) {
            sd_id128_t id{};
            check(sd_id128_randomize(&id));
            check(sd_bus_set_server(b, 1, id));
        }
        check(sd_bus_set_anonymous(b, 1));
        check(sd_bus_negotiate_fds(b, 1));
        check(sd_bus_start(b));
        check(sd_bus_attach_event(b, event_.get(), 0));
        return bus;
    }

    EventPtr event_;
    BusPtr server_;
    BusPtr client_;
};

// The D-Bus error name of a reply, or "" when it is a method return.
inline std::string error_name_of(sd_bus_message* reply) {
    if (!sd_bus_message_is_method_error(reply, nullptr)) return "";
    const sd_bus_error* e = sd_bus_message_get_error(reply);
    return e && e->name ? e->name : "?";
}

}  // namespace sshuttle::helper::testing

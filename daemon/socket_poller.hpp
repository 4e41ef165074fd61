// SocketPoller: the channels' sockets behind one sd-event source.
//
// sd-event dispatches one source per loop iteration, and every iteration starts with an
// epoll_wait() over all of its sources that returns every ready one (level-triggered: the kernel
// polls each again). With thousands of channel sockets ready at once (a burst of connections
// half-closing, or channels resumed together), each single dispatch costs a poll of every ready
// socket: serving R ready sockets costs O(R^2). At 15,000 sockets in CLOSE-WAIT that was ~4 ms
// per dispatch, 250 dispatches a second, and every other source (the ssh stream, the control
// socket, SIGTERM) waited behind all of them (issue 10, "no wedge under load").
//
// The poller keeps the sockets in an epoll instance of its own, whose descriptor is one sd-event
// io source. A dispatch takes at most kBatch ready sockets from the kernel and calls each: the
// cost of a dispatch is bounded by the batch, not by how many sockets are ready. Level-triggered
// like sd-event's io sources: a socket still ready after its turn goes to the back of the
// kernel's ready list, so every ready socket gets a turn before any gets a second one, and the
// other sources of the loop get theirs between two batches.
//
// A socket with no events is taken out of the epoll set (as sd-event's SD_EVENT_OFF), so a
// hung-up socket nobody wants to hear from does not keep the poller ready (EPOLLHUP and EPOLLERR
// are reported whatever the mask).
#pragma once

#include <cstdint>
#include <vector>

#include "common/error.hpp"
#include "common/sd_handles.hpp"
#include "common/unique_fd.hpp"

namespace sshuttle::daemon {

class SocketPoller {
public:
    // Ready sockets served per dispatch.
    static constexpr int kBatch = 256;

    class Client {
    public:
        // revents: what epoll reported, limited to the current mask plus EPOLLHUP/EPOLLERR.
        virtual void on_poll(std::uint32_t revents) = 0;

    protected:
        ~Client() = default;
    };

    // Owns one registration; removing it (destruction, reset()) must happen before the fd is
    // closed. Events already fetched for it in the current batch are dropped.
    class Registration {
    public:
        Registration() = default;
        Registration(Registration&& other) noexcept { *this = std::move(other); }
        Registration& operator=(Registration&& other) noexcept;
        ~Registration() { reset(); }
        Registration(const Registration&) = delete;
        Registration& operator=(const Registration&) = delete;

        explicit operator bool() const noexcept { return poller_ != nullptr; }
        // EPOLLIN/EPOLLOUT/...; 0 takes the socket out of the epoll set. No system call when the
        // mask does not change.
        [[nodiscard]] Result<void> set_events(std::uint32_t events);
        void reset() noexcept;

    private:
        friend class SocketPoller;
        Registration(SocketPoller* poller, std::uint32_t slot) : poller_(poller), slot_(slot) {}
        SocketPoller* poller_ = nullptr;
        std::uint32_t slot_ = 0;
    };

    explicit SocketPoller(sd_event* event);
    ~SocketPoller();
    SocketPoller(const SocketPoller&) = delete;
    SocketPoller& operator=(const SocketPoller&) = delete;

    // Creates the epoll instance and its sd-event source at the given priority.
    [[nodiscard]] Result<void> start(std::int64_t priority);
    // Registers fd for client, with no events yet. The poller must outlive the registration.
    [[nodiscard]] Result<Registration> add(int fd, Client* client);

    // Registrations, and those with a non-empty mask (in the epoll set).
    std::size_t size() const noexcept { return entries_.size() - free_.size(); }
    std::size_t armed() const noexcept { return armed_; }

private:
    struct Entry {
        int fd = -1;
        std::uint32_t events = 0;
        std::uint32_t generation = 0;  // bumped on removal: stale events do not match
        Client* client = nullptr;
    };

    static int on_io(sd_event_source* s, int fd, uint32_t revents, void* userdata) noexcept;
    void dispatch();
    Result<void> set_events(std::uint32_t slot, std::uint32_t events);
    void remove(std::uint32_t slot) noexcept;

    sd_event* event_;
    UniqueFd epoll_;
    EventSourcePtr source_;
    std::vector<Entry> entries_;
    std::vector<std::uint32_t> free_;
    std::size_t armed_ = 0;
};

}  // namespace sshuttle::daemon

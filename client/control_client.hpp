// ControlClient: the CLI's end of a tunnel's control socket (daemon/control_server.hpp has the
// methods). Blocking, with a deadline on every wait: the CLI has nothing else to do meanwhile.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/error.hpp"
#include "common/unique_fd.hpp"
#include "proto/control.hpp"
#include "proto/control_decoder.hpp"

namespace sshuttle::client {

// Where the control socket of tunnel `name` may be, most likely first: the user's runtime
// directory, then the system one (root: the other way round).
std::vector<std::string> control_socket_candidates(const std::string& name);
// The directories holding control sockets, in the same order.
std::vector<std::string> control_socket_dirs();

class ControlClient {
  public:
    // Milliseconds we wait for one reply: the daemon answers from its event loop at once.
    static constexpr int kReplyTimeoutMs = 5000;

    // NotFound when nothing answers on `path` (no such tunnel or a stale socket).
    [[nodiscard]] static Result<ControlClient> connect(const std::string& path);

    // Sends a call; for `more` the first reply comes from call(), the rest from next().
    [[nodiscard]] Result<proto::Reply> call(std::string_view method, bool more = false);
    // The next reply of a stream; Protocol error "connection closed" at EOF. timeout_ms < 0 waits
    // for ever (status --watch).
    [[nodiscard]] Result<proto::Reply> next(int timeout_ms = kReplyTimeoutMs);

  private:
    explicit ControlClient(UniqueFd fd) : fd_(std::move(fd)) {}
    UniqueFd fd_;
    proto::ControlDecoder decoder_;
};

// A reply that is an error, as one line for a human: the error's own "reason" when it gives
// one, else its name and parameters.
std::string describe_error(const proto::Reply& reply);

}  // namespace sshuttle::client

// OpenSSH's connection-multiplexing protocol (openssh-portable's PROTOCOL.mux, version 4): the
// few messages sshuttled speaks to an ssh ControlMaster to hand it a captured TCP connection.
//
// Packets are `uint32 length, uint32 type, body`, big-endian; strings are `uint32 length,
// bytes`. A client and the master each send MUX_MSG_HELLO first. sshuttled then asks for a stdio
// forward (MUX_C_NEW_STDIO_FWD: request id, reserved string, host, uint32 port; PROTOCOL.mux
// says "string connect port" but mux.c reads a uint32) and passes the two descriptors in their
// own sendmsg() calls, which is not this file's business. The master answers
// MUX_S_SESSION_OPENED once the server confirmed the channel, or MUX_S_PERMISSION_DENIED /
// MUX_S_FAILURE with a reason.
//
// Everything here is pure: bytes in, typed messages out. The master is a local process of ours,
// but it is still a peer: lengths are capped and malformed packets are errors, never crashes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "proto/bytes.hpp"

namespace sshuttle::proto::sshmux {

inline constexpr std::uint32_t kVersion = 4;

inline constexpr std::uint32_t kMsgHello = 0x00000001;
inline constexpr std::uint32_t kNewSession = 0x10000002;
inline constexpr std::uint32_t kAliveCheck = 0x10000004;
inline constexpr std::uint32_t kNewStdioFwd = 0x10000008;
inline constexpr std::uint32_t kOk = 0x80000001;
inline constexpr std::uint32_t kPermissionDenied = 0x80000002;
inline constexpr std::uint32_t kFailure = 0x80000003;
inline constexpr std::uint32_t kExitMessage = 0x80000004;
inline constexpr std::uint32_t kAlive = 0x80000005;
inline constexpr std::uint32_t kSessionOpened = 0x80000006;

// The largest packet we accept from a master. Its replies to us are a few dozen bytes; ssh
// itself caps mux packets at 256 KiB.
inline constexpr std::size_t kMaxPacket = 256 * 1024;
// Host names sent in a forward request: a DNS name or an address literal.
inline constexpr std::size_t kMaxHost = 255;

// MUX_MSG_HELLO, version 4, no extensions.
std::vector<std::uint8_t> encode_hello();
// MUX_C_NEW_STDIO_FWD for host:port. host is an address literal or a name (no brackets for
// IPv6: ssh sends it as is in the direct-tcpip open); InvalidArgument when empty or too long.
[[nodiscard]] Result<std::vector<std::uint8_t>> encode_stdio_fwd(std::uint32_t request_id,
                                                                 std::string_view host,
                                                                 std::uint32_t port);

// One message from the master, as far as sshuttled cares.
struct Reply {
    enum class Kind {
        Hello,             // version in `value`
        SessionOpened,     // request_id, session id in `value`
        PermissionDenied,  // request_id, reason
        Failure,           // request_id, reason
        Other,             // a valid packet of a type we do not use (type kept)
    };
    Kind kind = Kind::Other;
    std::uint32_t type = 0;
    std::uint32_t request_id = 0;
    std::uint32_t value = 0;
    std::string reason;  // as sent (may hold any bytes: quote it before logging)
};

// Parses one packet body (after the length: type and the rest). Protocol errors name the field.
[[nodiscard]] Result<Reply> parse_reply(ByteView packet);

// Reassembles packets from a byte stream. feed() appends what a read() brought; next() returns
// the next complete packet, nothing when more bytes are needed, or an error (a length above
// kMaxPacket or below 4, a malformed body) after which the stream is unusable.
class ReplyReader {
public:
    void feed(ByteView bytes);
    [[nodiscard]] Result<std::optional<Reply>> next();
    std::size_t buffered() const noexcept { return buffer_.size() - pos_; }

private:
    std::vector<std::uint8_t> buffer_;
    std::size_t pos_ = 0;
};

const char* type_name(std::uint32_t type) noexcept;

}  // namespace sshuttle::proto::sshmux

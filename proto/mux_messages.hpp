// Typed payloads for the fifteen mux commands (sshuttle-upstream.md §2.5, docs/PROTOCOL.md).
//
// Each type parses its payload once, at the door, into values (parse) and writes it back
// (append_payload). Parsing is strict where upstream's own output is regular (no spaces, no
// extra fields, addresses only as literals) and compatible where upstream is loose on purpose
// (the address family number of another OS, blank lines in lists). Every error is Protocol or
// TooLarge and names the command and the offending text, escaped and truncated.
//
// Raw payloads (PING data, TCP data, DNS and UDP datagrams) are ByteViews into the parsed
// payload, not copies: they are valid as long as the bytes they were parsed from (for a frame
// from FrameDecoder, until the decoder's next call). Copy them to keep them longer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "proto/bytes.hpp"
#include "proto/mux_frame.hpp"

namespace sshuttle::proto {

// Address family numbers on the wire are the *sender's* AF_INET / AF_INET6. AF_INET is 2 on
// every OS; AF_INET6 differs (10 Linux, 30 macOS, 28 FreeBSD, 24 OpenBSD), so a reader treats 2
// as IPv4 and any other number as IPv6, as upstream's server does. We send Linux's values.
inline constexpr unsigned kWireAfInet = 2;
inline constexpr unsigned kWireAfInet6 = 10;

// Most names in one HOST_REQ or HOST_LIST. A frame could carry ~32k one-letter names; seed lists
// are a handful and upstream's hostwatch sends what one 4 KiB read gave (~200 lines), so this
// only bounds the vector against a hostile peer.
inline constexpr std::size_t kMaxHostNames = 4096;
// Characters in one host name: the DNS limit for a full name.
inline constexpr std::size_t kMaxHostNameLength = 253;

struct Exit {
    static constexpr Command kCommand = Command::Exit;
    // The payload is ignored, as upstream does; we send none.
    static Result<Exit> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

struct Ping {
    static constexpr Command kCommand = Command::Ping;
    ByteView data;  // opaque; the PONG must echo it
    static Result<Ping> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

struct Pong {
    static constexpr Command kCommand = Command::Pong;
    ByteView data;  // the PING's payload
    static Result<Pong> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// "<family>,<ip>,<port>", e.g. "2,10.1.2.3,443" or "10,fd00::5,22".
struct TcpConnect {
    static constexpr Command kCommand = Command::TcpConnect;
    IpAddress dst;
    std::uint16_t port = 0;
    static Result<TcpConnect> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// Empty. Upstream ignores a payload here; we reject one (no sender has ever written bytes
// there, and an extension would be negotiated, not slipped into an ignored field).
struct TcpStopSending {
    static constexpr Command kCommand = Command::TcpStopSending;
    static Result<TcpStopSending> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// Empty; same rule as TcpStopSending.
struct TcpEof {
    static constexpr Command kCommand = Command::TcpEof;
    static Result<TcpEof> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

struct TcpData {
    static constexpr Command kCommand = Command::TcpData;
    ByteView data;
    static Result<TcpData> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

struct Route {
    IpAddress network;
    int width = 0;  // prefix length, 0..32 or 0..128 by the family
};

// Lines "<family>,<ip>,<width>\n"; an empty payload is an empty list. Blank lines are skipped.
struct Routes {
    static constexpr Command kCommand = Command::Routes;
    std::vector<Route> routes;
    static Result<Routes> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// Host names joined by '\n' (no trailing newline); may be empty. Names are [-A-Za-z0-9_.]+.
struct HostReq {
    static constexpr Command kCommand = Command::HostReq;
    std::vector<std::string> hostnames;
    static Result<HostReq> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

struct HostEntry {
    std::string name;  // [-A-Za-z0-9_.]+, the set upstream's client asserts
    IpAddress ip;      // IPv4 only: upstream's client asserts that too
};

// Lines "<name>,<ipv4>\n"; may be empty. Blank lines are skipped.
struct HostList {
    static constexpr Command kCommand = Command::HostList;
    std::vector<HostEntry> hosts;
    static Result<HostList> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

struct DnsReq {
    static constexpr Command kCommand = Command::DnsReq;
    ByteView query;  // one raw DNS datagram
    static Result<DnsReq> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

struct DnsResponse {
    static constexpr Command kCommand = Command::DnsResponse;
    ByteView answer;  // one raw DNS datagram
    static Result<DnsResponse> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// The socket family as ASCII decimal ("2" or the sender's AF_INET6 number).
struct UdpOpen {
    static constexpr Command kCommand = Command::UdpOpen;
    Family family = Family::V4;
    static Result<UdpOpen> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// "<ip>,<port>," then the datagram. Client to server: the destination; server to client: the
// remote peer that sent it. IPv6 unbracketed.
struct UdpData {
    static constexpr Command kCommand = Command::UdpData;
    IpAddress ip;
    std::uint16_t port = 0;
    ByteView datagram;
    static Result<UdpData> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// Empty; same rule as TcpStopSending.
struct UdpClose {
    static constexpr Command kCommand = Command::UdpClose;
    static Result<UdpClose> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// ---- our extensions (docs/EXTENSIONS.md), sent only after both ends agreed on them ----

// Most credit one WINDOW may return: the window is kept below 2^31 so the sum never overflows.
inline constexpr std::uint32_t kMaxWindowIncrement = 0x7fffffff;
// Bytes of a CONNECT_ERROR payload: errno and strerror() text fit easily; our agent truncates
// to this.
inline constexpr std::size_t kMaxConnectErrorPayload = 256;

// credit: the receiver returns this many bytes of window; exactly 4 bytes, big-endian.
struct Window {
    static constexpr Command kCommand = Command::Window;
    std::uint32_t increment = 0;  // 1..kMaxWindowIncrement
    static Result<Window> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

// connect-error: why the remote connect failed, "<errno>,<message>" in printable ASCII.
struct ConnectError {
    static constexpr Command kCommand = Command::ConnectError;
    int error_number = 0;  // the remote errno, 1..65535 (numbers differ between OSes)
    std::string message;   // strerror() text, printable ASCII, may be empty
    static Result<ConnectError> parse(ByteView payload);
    Result<void> append_payload(std::vector<std::uint8_t>& out) const;
};

using Message =
    std::variant<Exit, Ping, Pong, TcpConnect, TcpStopSending, TcpEof, TcpData, Routes, HostReq,
                 HostList, DnsReq, DnsResponse, UdpOpen, UdpData, UdpClose, Window, ConnectError>;

// Parses the payload of a frame with the given command into the matching type.
[[nodiscard]] Result<Message> parse_message(Command command, ByteView payload);
Command message_command(const Message& message) noexcept;

// Appends one whole frame carrying message. On error (an invalid field, TooLarge when the
// payload exceeds kMaxPayload) out is left as it was.
template <class T>
[[nodiscard]] Result<void> append_message(std::vector<std::uint8_t>& out, std::uint16_t channel,
                                          const T& message) {
    const std::size_t at = begin_frame(out, channel, T::kCommand);
    if (auto written = message.append_payload(out); !written) {
        out.resize(at);
        return written;
    }
    return end_frame(out, at);
}
[[nodiscard]] Result<void> append_message(std::vector<std::uint8_t>& out, std::uint16_t channel,
                                          const Message& message);

}  // namespace sshuttle::proto

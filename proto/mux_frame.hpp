// The sshuttle 1.x mux frame, byte for byte (docs/PROTOCOL.md, sshuttle-upstream.md §2.4-2.5).
//
// After the sync header, both directions of the ssh stream are a sequence of frames:
//
//   offset 0  'S' 'S'            magic
//   offset 2  u16 channel        big-endian; 0 is the control channel
//   offset 4  u16 command        big-endian; one of Command
//   offset 6  u16 payload size   big-endian; 0..65535
//   offset 8  payload
//
// This header pins the layout; the encoder functions below append frames to a caller-owned
// buffer without allocating per frame (the buffer grows, nothing else). FrameDecoder
// (mux_decoder.hpp) reads them back.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "common/error.hpp"
#include "proto/bytes.hpp"

namespace sshuttle::proto {

// Bytes of the fixed header: magic (2) + channel (2) + command (2) + payload size (2).
inline constexpr std::size_t kHeaderSize = 8;
static_assert(kHeaderSize == 2 + 2 + 2 + 2, "the header is four 16-bit fields");
// Bytes: the payload size field is a u16, so no frame can carry more.
inline constexpr std::size_t kMaxPayload = 65535;
// Bytes: the largest frame on the wire.
inline constexpr std::size_t kMaxFrameSize = kHeaderSize + kMaxPayload;
// The first two bytes of every frame.
inline constexpr std::uint8_t kMagic = 'S';
// What the server writes once before its first frame: two NULs and "SSHUTTLE0001" (14 bytes).
inline constexpr std::string_view kSyncHeader{"\0\0SSHUTTLE0001", 14};
static_assert(kSyncHeader.size() == 14);
// Channel 0 carries the session-wide commands (PING, ROUTES, ...); it is never allocated.
inline constexpr std::uint16_t kControlChannel = 0;

// Every command sshuttle 1.x knows, with its wire value, plus our two extensions (used only
// after both ends agreed on them, docs/EXTENSIONS.md). Anything else on the wire is fatal.
enum class Command : std::uint16_t {
    Exit = 0x4200,
    Ping = 0x4201,
    Pong = 0x4202,
    TcpConnect = 0x4203,
    TcpStopSending = 0x4204,
    TcpEof = 0x4205,
    TcpData = 0x4206,
    Routes = 0x4207,
    HostReq = 0x4208,
    HostList = 0x4209,
    DnsReq = 0x420a,
    DnsResponse = 0x420b,
    UdpOpen = 0x420c,
    UdpData = 0x420d,
    UdpClose = 0x420e,
    // Extensions, outside upstream's range so a stock peer can never mean them.
    Window = 0x4280,        // credit extension: u32 BE window increment
    ConnectError = 0x4281,  // connect-error extension: "<errno>,<message>"
};
// Upstream's commands are one contiguous range.
inline constexpr std::uint16_t kFirstUpstreamCommand = 0x4200;
inline constexpr std::uint16_t kLastUpstreamCommand = 0x420e;
inline constexpr std::size_t kUpstreamCommandCount =
    kLastUpstreamCommand - kFirstUpstreamCommand + 1;
static_assert(kUpstreamCommandCount == 15);

constexpr bool is_upstream_command(std::uint16_t value) noexcept {
    return value >= kFirstUpstreamCommand && value <= kLastUpstreamCommand;
}
constexpr bool is_extension_command(std::uint16_t value) noexcept {
    return value == static_cast<std::uint16_t>(Command::Window) ||
           value == static_cast<std::uint16_t>(Command::ConnectError);
}
// Whether the value is a Command the decoder accepts. Whether an extension was negotiated is
// the session's business, not the framing's.
constexpr bool is_known_command(std::uint16_t value) noexcept {
    return is_upstream_command(value) || is_extension_command(value);
}
// The upstream name ("TCP_DATA"; "WINDOW", "CONNECT_ERROR" for ours), or "UNKNOWN" for a value
// outside the table.
std::string_view command_name(Command command) noexcept;
// Whether the command belongs on channel 0 (EXIT, PING, PONG, ROUTES, HOST_REQ, HOST_LIST) rather
// than on a connection channel (all others, which never use channel 0).
bool is_control_command(Command command) noexcept;
// Protocol error when a command arrives on the wrong kind of channel. Upstream does not check
// this (it dispatches on the command alone); callers that want to be strict call it.
[[nodiscard]] Result<void> check_channel(Command command, std::uint16_t channel);

struct FrameHeader {
    std::uint16_t channel = 0;
    Command command = Command::Exit;
    std::uint16_t payload_size = 0;
};

// Writes the 8 header bytes into dst. The in-place form for buffers this module does not know:
// reserve kHeaderSize bytes, read the payload from a socket straight after them, then write the
// header once the size is known.
void write_header(std::span<std::uint8_t, kHeaderSize> dst, std::uint16_t channel, Command command,
                  std::uint16_t payload_size) noexcept;

// Parses a header: Protocol error on bad magic or an unknown command. The payload size is not
// checked here (every u16 is legal on the wire); the decoder applies its own limit.
[[nodiscard]] Result<FrameHeader> parse_header(std::span<const std::uint8_t, kHeaderSize> bytes);

// Appends a header announcing payload_size bytes; the caller must append exactly that many
// payload bytes next (e.g. a UDP_DATA prefix and then the datagram, without joining them first).
void append_header(std::vector<std::uint8_t>& out, std::uint16_t channel, Command command,
                   std::uint16_t payload_size);

// Appends a whole frame. TooLarge (and out unchanged) when the payload exceeds kMaxPayload.
[[nodiscard]] Result<void> append_frame(std::vector<std::uint8_t>& out, std::uint16_t channel,
                                        Command command, ByteView payload);

// A frame whose payload is produced in place: begin_frame() appends a header with size 0 and
// returns its offset; the caller appends payload bytes to out (e.g. resize, then read(2) into the
// new space); end_frame() writes the real size into the header. If more than kMaxPayload bytes
// were appended, end_frame() removes the whole frame from out and returns TooLarge.
[[nodiscard]] std::size_t begin_frame(std::vector<std::uint8_t>& out, std::uint16_t channel,
                                      Command command);
[[nodiscard]] Result<void> end_frame(std::vector<std::uint8_t>& out, std::size_t header_offset);

}  // namespace sshuttle::proto

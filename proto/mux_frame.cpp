#include "proto/mux_frame.hpp"

#include <cstdio>
#include <string>

namespace sshuttle::proto {

namespace {

std::uint16_t load_be16(const std::uint8_t* p) noexcept {
    return static_cast<std::uint16_t>((p[0] << 8) | p[1]);
}

void store_be16(std::uint8_t* p, std::uint16_t v) noexcept {
    p[0] = static_cast<std::uint8_t>(v >> 8);
    p[1] = static_cast<std::uint8_t>(v & 0xff);
}

std::string hex16(std::uint16_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "0x%04x", static_cast<unsigned>(v));
    return buf;
}

}  // namespace

std::string_view command_name(Command command) noexcept {
    switch (command) {
        case Command::Exit:
            return "EXIT";
        case Command::Ping:
            return "PING";
        case Command::Pong:
            return "PONG";
        case Command::TcpConnect:
            return "TCP_CONNECT";
        case Command::TcpStopSending:
            return "TCP_STOP_SENDING";
        case Command::TcpEof:
            return "TCP_EOF";
        case Command::TcpData:
            return "TCP_DATA";
        case Command::Routes:
            return "ROUTES";
        case Command::HostReq:
            return "HOST_REQ";
        case Command::HostList:
            return "HOST_LIST";
        case Command::DnsReq:
            return "DNS_REQ";
        case Command::DnsResponse:
            return "DNS_RESPONSE";
        case Command::UdpOpen:
            return "UDP_OPEN";
        case Command::UdpData:
            return "UDP_DATA";
        case Command::UdpClose:
            return "UDP_CLOSE";
        case Command::Window:
            return "WINDOW";
        case Command::ConnectError:
            return "CONNECT_ERROR";
    }
    return "UNKNOWN";
}

bool is_control_command(Command command) noexcept {
    switch (command) {
        case Command::Exit:
        case Command::Ping:
        case Command::Pong:
        case Command::Routes:
        case Command::HostReq:
        case Command::HostList:
            return true;
        default:
            return false;
    }
}

Result<void> check_channel(Command command, std::uint16_t channel) {
    const bool on_control = channel == kControlChannel;
    if (is_control_command(command) == on_control) return ok();
    std::string name(command_name(command));
    if (on_control) return Error(Errc::Protocol, name + " on the control channel 0");
    return Error(Errc::Protocol, name + " on channel " + std::to_string(channel) +
                                     ", but it belongs on the control channel 0");
}

void write_header(std::span<std::uint8_t, kHeaderSize> dst, std::uint16_t channel, Command command,
                  std::uint16_t payload_size) noexcept {
    dst[0] = kMagic;
    dst[1] = kMagic;
    store_be16(&dst[2], channel);
    store_be16(&dst[4], static_cast<std::uint16_t>(command));
    store_be16(&dst[6], payload_size);
}

Result<FrameHeader> parse_header(std::span<const std::uint8_t, kHeaderSize> bytes) {
    if (bytes[0] != kMagic || bytes[1] != kMagic)
        return Error(Errc::Protocol,
                     "bad mux frame magic: expected 'SS', got " + quote_bytes(bytes.first(2)));
    FrameHeader h;
    h.channel = load_be16(&bytes[2]);
    const std::uint16_t command = load_be16(&bytes[4]);
    if (!is_known_command(command))
        return Error(Errc::Protocol, "unknown mux command " + hex16(command) + " on channel " +
                                         std::to_string(h.channel));
    h.command = static_cast<Command>(command);
    h.payload_size = load_be16(&bytes[6]);
    return h;
}

void append_header(std::vector<std::uint8_t>& out, std::uint16_t channel, Command command,
                   std::uint16_t payload_size) {
    const std::size_t at = out.size();
    out.resize(at + kHeaderSize);
    write_header(std::span<std::uint8_t, kHeaderSize>(out.data() + at, kHeaderSize), channel,
                 command, payload_size);
}

Result<void> append_frame(std::vector<std::uint8_t>& out, std::uint16_t channel, Command command,
                          ByteView payload) {
    if (payload.size() > kMaxPayload)
        return Error(Errc::TooLarge, std::string(command_name(command)) + " payload of " +
                                         std::to_string(payload.size()) +
                                         " bytes does not fit a mux frame (at most 65535)");
    append_header(out, channel, command, static_cast<std::uint16_t>(payload.size()));
    out.insert(out.end(), payload.begin(), payload.end());
    return ok();
}

std::size_t begin_frame(std::vector<std::uint8_t>& out, std::uint16_t channel, Command command) {
    const std::size_t at = out.size();
    append_header(out, channel, command, 0);
    return at;
}

Result<void> end_frame(std::vector<std::uint8_t>& out, std::size_t header_offset) {
    if (header_offset > out.size() || out.size() - header_offset < kHeaderSize)
        return Error(Errc::Internal,
                     "end_frame: no frame header at offset " + std::to_string(header_offset));
    std::uint8_t* header = out.data() + header_offset;
    const std::size_t size = out.size() - header_offset - kHeaderSize;
    if (size > kMaxPayload) {
        const auto command = static_cast<Command>(load_be16(header + 4));
        out.resize(header_offset);
        return Error(Errc::TooLarge, std::string(command_name(command)) + " payload of " +
                                         std::to_string(size) +
                                         " bytes does not fit a mux frame (at most 65535)");
    }
    store_be16(header + 6, static_cast<std::uint16_t>(size));
    return ok();
}

}  // namespace sshuttle::proto

#include "proto/mux_messages.hpp"

#include <string_view>

#include "proto/payload_text.hpp"

namespace sshuttle::proto {

using namespace payload_text;

namespace {

Result<void> check_width(Command command, Family family, int width) {
    if (width >= 0 && width <= family_bits(family)) return ok();
    return Error(Errc::InvalidArgument, std::string(command_name(command)) + ": prefix width " +
                                            std::to_string(width) + " is out of range for " +
                                            family_name(family));
}

Result<void> check_host_name(Command command, const std::string& name) {
    if (is_host_name(name)) return ok();
    return Error(Errc::InvalidArgument, std::string(command_name(command)) + ": " +
                                            quote_bytes(name) +
                                            " is not a host name of [-A-Za-z0-9_.], 1 to 253 "
                                            "characters");
}

}  // namespace

// ---- payloads without structure ----

Result<Exit> Exit::parse(ByteView) {
    return Exit{};
}
Result<void> Exit::append_payload(std::vector<std::uint8_t>&) const {
    return ok();
}

Result<Ping> Ping::parse(ByteView payload) {
    return Ping{payload};
}
Result<void> Ping::append_payload(std::vector<std::uint8_t>& out) const {
    append_bytes(out, data);
    return ok();
}

Result<Pong> Pong::parse(ByteView payload) {
    return Pong{payload};
}
Result<void> Pong::append_payload(std::vector<std::uint8_t>& out) const {
    append_bytes(out, data);
    return ok();
}

Result<TcpStopSending> TcpStopSending::parse(ByteView payload) {
    if (!payload.empty()) return must_be_empty(kCommand, payload);
    return TcpStopSending{};
}
Result<void> TcpStopSending::append_payload(std::vector<std::uint8_t>&) const {
    return ok();
}

Result<TcpEof> TcpEof::parse(ByteView payload) {
    if (!payload.empty()) return must_be_empty(kCommand, payload);
    return TcpEof{};
}
Result<void> TcpEof::append_payload(std::vector<std::uint8_t>&) const {
    return ok();
}

Result<TcpData> TcpData::parse(ByteView payload) {
    return TcpData{payload};
}
Result<void> TcpData::append_payload(std::vector<std::uint8_t>& out) const {
    append_bytes(out, data);
    return ok();
}

Result<DnsReq> DnsReq::parse(ByteView payload) {
    return DnsReq{payload};
}
Result<void> DnsReq::append_payload(std::vector<std::uint8_t>& out) const {
    append_bytes(out, query);
    return ok();
}

Result<DnsResponse> DnsResponse::parse(ByteView payload) {
    return DnsResponse{payload};
}
Result<void> DnsResponse::append_payload(std::vector<std::uint8_t>& out) const {
    append_bytes(out, answer);
    return ok();
}

Result<UdpClose> UdpClose::parse(ByteView payload) {
    if (!payload.empty()) return must_be_empty(kCommand, payload);
    return UdpClose{};
}
Result<void> UdpClose::append_payload(std::vector<std::uint8_t>&) const {
    return ok();
}

// ---- TCP_CONNECT ----

Result<TcpConnect> TcpConnect::parse(ByteView payload) {
    const std::string_view text = as_chars(payload);
    auto fields = split_exact<3>(text, ',');
    if (!fields) return malformed(kCommand, payload, "expected '<family>,<ip>,<port>'");
    auto family = parse_family((*fields)[0]);
    if (!family)
        return malformed(kCommand, payload,
                         "address family " + quote_bytes((*fields)[0]) + " is not a number");
    auto ip = parse_ip((*fields)[1], *family);
    if (!ip)
        return malformed(kCommand, payload,
                         quote_bytes((*fields)[1]) + " is not an " + family_name(*family) +
                             " address (family " + std::string((*fields)[0]) + ")");
    auto port = parse_port((*fields)[2]);
    if (!port)
        return malformed(kCommand, payload,
                         "port " + quote_bytes((*fields)[2]) + " is not a number in 0..65535");
    return TcpConnect{*ip, *port};
}

Result<void> TcpConnect::append_payload(std::vector<std::uint8_t>& out) const {
    append_text(out, std::to_string(wire_family(dst.family())) + "," + dst.to_string() + "," +
                         std::to_string(port));
    return ok();
}

// ---- ROUTES ----

Result<Routes> Routes::parse(ByteView payload) {
    if (payload.size() > kMaxPayload) return too_large(kCommand, payload.size());
    Routes out;
    auto parsed = for_each_line(as_chars(payload), [&](std::string_view line) -> Result<void> {
        const ByteView bytes = as_bytes(line);
        auto fields = split_exact<3>(line, ',');
        if (!fields) return malformed(kCommand, bytes, "expected '<family>,<ip>,<width>'");
        auto family = parse_family((*fields)[0]);
        if (!family)
            return malformed(kCommand, bytes,
                             "address family " + quote_bytes((*fields)[0]) + " is not a number");
        auto ip = parse_ip((*fields)[1], *family);
        if (!ip)
            return malformed(
                kCommand, bytes,
                quote_bytes((*fields)[1]) + " is not an " + family_name(*family) + " address");
        auto width = parse_decimal((*fields)[2], kMaxWidthDigits);
        if (!width || *width > static_cast<unsigned>(family_bits(*family)))
            return malformed(kCommand, bytes,
                             "width " + quote_bytes((*fields)[2]) + " is not a prefix length for " +
                                 family_name(*family));
        out.routes.push_back(Route{*ip, static_cast<int>(*width)});
        return ok();
    });
    if (!parsed) return std::move(parsed).error();
    return out;
}

Result<void> Routes::append_payload(std::vector<std::uint8_t>& out) const {
    for (const Route& r : routes) {
        if (auto w = check_width(kCommand, r.network.family(), r.width); !w) return w;
        append_text(out, std::to_string(wire_family(r.network.family())) + "," +
                             r.network.to_string() + "," + std::to_string(r.width) + "\n");
    }
    return ok();
}

// ---- HOST_REQ ----

Result<HostReq> HostReq::parse(ByteView payload) {
    if (payload.size() > kMaxPayload) return too_large(kCommand, payload.size());
    HostReq out;
    auto parsed = for_each_line(as_chars(payload), [&](std::string_view name) -> Result<void> {
        if (!is_host_name(name))
            return malformed(kCommand, as_bytes(name),
                             "not a host name of [-A-Za-z0-9_.], 1 to 253 characters");
        if (out.hostnames.size() == kMaxHostNames)
            return Error(Errc::TooLarge, "HOST_REQ payload names more than " +
                                             std::to_string(kMaxHostNames) + " hosts");
        out.hostnames.emplace_back(name);
        return ok();
    });
    if (!parsed) return std::move(parsed).error();
    return out;
}

Result<void> HostReq::append_payload(std::vector<std::uint8_t>& out) const {
    if (hostnames.size() > kMaxHostNames)
        return Error(Errc::TooLarge,
                     "HOST_REQ: more than " + std::to_string(kMaxHostNames) + " host names");
    for (std::size_t i = 0; i < hostnames.size(); ++i) {
        if (auto r = check_host_name(kCommand, hostnames[i]); !r) return r;
        if (i > 0) out.push_back('\n');
        append_text(out, hostnames[i]);
    }
    return ok();
}

// ---- HOST_LIST ----

Result<HostList> HostList::parse(ByteView payload) {
    if (payload.size() > kMaxPayload) return too_large(kCommand, payload.size());
    HostList out;
    auto parsed = for_each_line(as_chars(payload), [&](std::string_view line) -> Result<void> {
        const ByteView bytes = as_bytes(line);
        auto fields = split_exact<2>(line, ',');
        if (!fields) return malformed(kCommand, bytes, "expected '<name>,<ipv4>'");
        if (!is_host_name((*fields)[0]))
            return malformed(kCommand, bytes,
                             quote_bytes((*fields)[0]) +
                                 " is not a host name of [-A-Za-z0-9_.], 1 to 253 characters");
        auto ip = parse_ip((*fields)[1], Family::V4);
        if (!ip)
            return malformed(kCommand, bytes,
                             quote_bytes((*fields)[1]) + " is not an IPv4 address");
        if (out.hosts.size() == kMaxHostNames)
            return Error(Errc::TooLarge, "HOST_LIST payload names more than " +
                                             std::to_string(kMaxHostNames) + " hosts");
        out.hosts.push_back(HostEntry{std::string((*fields)[0]), *ip});
        return ok();
    });
    if (!parsed) return std::move(parsed).error();
    return out;
}

Result<void> HostList::append_payload(std::vector<std::uint8_t>& out) const {
    if (hosts.size() > kMaxHostNames)
        return Error(Errc::TooLarge,
                     "HOST_LIST: more than " + std::to_string(kMaxHostNames) + " hosts");
    for (const HostEntry& h : hosts) {
        if (auto r = check_host_name(kCommand, h.name); !r) return r;
        // Upstream's client asserts [0-9.]+ on the address and would crash on IPv6.
        if (!h.ip.is_v4())
            return Error(Errc::InvalidArgument,
                         "HOST_LIST: " + h.ip.to_string() + " for " + h.name + " is not IPv4");
        append_text(out, h.name + "," + h.ip.to_string() + "\n");
    }
    return ok();
}

// ---- UDP_OPEN ----

Result<UdpOpen> UdpOpen::parse(ByteView payload) {
    auto family = parse_family(as_chars(payload));
    if (!family) return malformed(kCommand, payload, "not an address family number");
    return UdpOpen{*family};
}

Result<void> UdpOpen::append_payload(std::vector<std::uint8_t>& out) const {
    append_text(out, std::to_string(wire_family(family)));
    return ok();
}

// ---- UDP_DATA ----

Result<UdpData> UdpData::parse(ByteView payload) {
    // Look for the two commas only in the header part: the datagram may contain anything.
    const std::string_view text = as_chars(payload);
    const std::string_view head = text.substr(0, kMaxIpText + 1 + kMaxU16Digits + 1);
    const std::size_t comma1 = head.find(',');
    const std::size_t comma2 =
        comma1 == std::string_view::npos ? comma1 : head.find(',', comma1 + 1);
    if (comma2 == std::string_view::npos)
        return malformed(kCommand, payload, "expected '<ip>,<port>,' before the datagram");
    const std::string_view ip_text = text.substr(0, comma1);
    const std::string_view port_text = text.substr(comma1 + 1, comma2 - comma1 - 1);
    auto ip = IpAddress::parse(ip_text);
    if (!ip) return malformed(kCommand, payload, quote_bytes(ip_text) + " is not an IP address");
    auto port = parse_port(port_text);
    if (!port)
        return malformed(kCommand, payload,
                         "port " + quote_bytes(port_text) + " is not a number in 0..65535");
    return UdpData{*ip, *port, payload.subspan(comma2 + 1)};
}

Result<void> UdpData::append_payload(std::vector<std::uint8_t>& out) const {
    append_text(out, ip.to_string() + "," + std::to_string(port) + ",");
    append_bytes(out, datagram);
    return ok();
}

// ---- the variant ----

Result<Message> parse_message(Command command, ByteView payload) {
    auto wrap = [](auto parsed) -> Result<Message> {
        if (!parsed) return std::move(parsed).error();
        return Message{std::move(parsed).value()};
    };
    switch (command) {
        case Command::Exit:
            return wrap(Exit::parse(payload));
        case Command::Ping:
            return wrap(Ping::parse(payload));
        case Command::Pong:
            return wrap(Pong::parse(payload));
        case Command::TcpConnect:
            return wrap(TcpConnect::parse(payload));
        case Command::TcpStopSending:
            return wrap(TcpStopSending::parse(payload));
        case Command::TcpEof:
            return wrap(TcpEof::parse(payload));
        case Command::TcpData:
            return wrap(TcpData::parse(payload));
        case Command::Routes:
            return wrap(Routes::parse(payload));
        case Command::HostReq:
            return wrap(HostReq::parse(payload));
        case Command::HostList:
            return wrap(HostList::parse(payload));
        case Command::DnsReq:
            return wrap(DnsReq::parse(payload));
        case Command::DnsResponse:
            return wrap(DnsResponse::parse(payload));
        case Command::UdpOpen:
            return wrap(UdpOpen::parse(payload));
        case Command::UdpData:
            return wrap(UdpData::parse(payload));
        case Command::UdpClose:
            return wrap(UdpClose::parse(payload));
        case Command::Window:
            return wrap(Window::parse(payload));
        case Command::ConnectError:
            return wrap(ConnectError::parse(payload));
    }
    return Error(Errc::Protocol,
                 "unknown mux command " + std::to_string(static_cast<unsigned>(command)));
}

Command message_command(const Message& message) noexcept {
    return std::visit([](const auto& m) { return std::decay_t<decltype(m)>::kCommand; }, message);
}

Result<void> append_message(std::vector<std::uint8_t>& out, std::uint16_t channel,
                            const Message& message) {
    return std::visit([&](const auto& m) { return append_message(out, channel, m); }, message);
}

}  // namespace sshuttle::proto

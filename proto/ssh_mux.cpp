#include "proto/ssh_mux.hpp"

namespace sshuttle::proto::sshmux {

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
    out.push_back(static_cast<std::uint8_t>(v >> 24));
    out.push_back(static_cast<std::uint8_t>(v >> 16));
    out.push_back(static_cast<std::uint8_t>(v >> 8));
    out.push_back(static_cast<std::uint8_t>(v));
}

void put_string(std::vector<std::uint8_t>& out, std::string_view s) {
    put_u32(out, static_cast<std::uint32_t>(s.size()));
    out.insert(out.end(), s.begin(), s.end());
}

// Writes the length in front of a packet built after 4 placeholder bytes.
std::vector<std::uint8_t> finish(std::vector<std::uint8_t> packet) {
    auto len = static_cast<std::uint32_t>(packet.size() - 4);
    packet[0] = static_cast<std::uint8_t>(len >> 24);
    packet[1] = static_cast<std::uint8_t>(len >> 16);
    packet[2] = static_cast<std::uint8_t>(len >> 8);
    packet[3] = static_cast<std::uint8_t>(len);
    return packet;
}

std::uint32_t get_u32(const std::uint8_t* p) {
    return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
           std::uint32_t{p[3]};
}

// A cursor over a packet body; every read is bounds-checked.
struct Cursor {
    ByteView bytes;
    std::size_t pos = 0;

    Result<std::uint32_t> u32(const char* field) {
        if (bytes.size() - pos < 4)
            return Error(Errc::Protocol, std::string("ssh mux: packet ends inside ") + field);
        std::uint32_t v = get_u32(bytes.data() + pos);
        pos += 4;
        return v;
    }
    Result<std::string> string(const char* field) {
        auto len = u32(field);
        if (!len) return std::move(len).error();
        if (bytes.size() - pos < *len)
            return Error(Errc::Protocol,
                         std::string("ssh mux: ") + field + " longer than the packet");
        std::string s(reinterpret_cast<const char*>(bytes.data() + pos), *len);
        pos += *len;
        return s;
    }
};

}  // namespace

std::vector<std::uint8_t> encode_hello() {
    std::vector<std::uint8_t> p(4);
    put_u32(p, kMsgHello);
    put_u32(p, kVersion);
    return finish(std::move(p));
}

Result<std::vector<std::uint8_t>> encode_stdio_fwd(std::uint32_t request_id, std::string_view host,
                                                   std::uint32_t port) {
    if (host.empty() || host.size() > kMaxHost)
        return Error(Errc::InvalidArgument, "ssh mux: a forward's host must be 1 to 255 bytes");
    if (host.find('\0') != std::string_view::npos)
        return Error(Errc::InvalidArgument, "ssh mux: a forward's host holds a NUL byte");
    if (port == 0 || port > 65535)
        return Error(Errc::InvalidArgument, "ssh mux: a forward's port must be 1 to 65535");
    std::vector<std::uint8_t> p(4);
    put_u32(p, kNewStdioFwd);
    put_u32(p, request_id);
    put_string(p, "");  // reserved
    put_string(p, host);
    put_u32(p, port);
    return finish(std::move(p));
}

Result<Reply> parse_reply(ByteView packet) {
    Cursor c{packet};
    auto type = c.u32("the type");
    if (!type) return std::move(type).error();
    Reply r;
    r.type = *type;
    switch (*type) {
        case kMsgHello: {
            auto version = c.u32("the hello's version");
            if (!version) return std::move(version).error();
            r.kind = Reply::Kind::Hello;
            r.value = *version;
            // Extensions (name, value pairs) follow; mux.c sends "info". None matter to us, but
            // they must be well-formed.
            while (c.pos < packet.size()) {
                if (auto name = c.string("an extension name"); !name) return std::move(name).error();
                if (auto value = c.string("an extension value"); !value)
                    return std::move(value).error();
            }
            return r;
        }
        case kSessionOpened: {
            auto rid = c.u32("the request id");
            if (!rid) return std::move(rid).error();
            auto sid = c.u32("the session id");
            if (!sid) return std::move(sid).error();
            r.kind = Reply::Kind::SessionOpened;
            r.request_id = *rid;
            r.value = *sid;
            return r;
        }
        case kPermissionDenied:
        case kFailure: {
            auto rid = c.u32("the request id");
            if (!rid) return std::move(rid).error();
            auto reason = c.string("the reason");
            if (!reason) return std::move(reason).error();
            r.kind = *type == kFailure ? Reply::Kind::Failure : Reply::Kind::PermissionDenied;
            r.request_id = *rid;
            r.reason = std::move(*reason);
            return r;
        }
        default:
            r.kind = Reply::Kind::Other;
            return r;
    }
}

void ReplyReader::feed(ByteView bytes) {
    if (pos_ > 0 && pos_ == buffer_.size()) {
        buffer_.clear();
        pos_ = 0;
    }
    buffer_.insert(buffer_.end(), bytes.begin(), bytes.end());
}

Result<std::optional<Reply>> ReplyReader::next() {
    std::size_t avail = buffer_.size() - pos_;
    if (avail < 4) return std::optional<Reply>();
    std::uint32_t len = get_u32(buffer_.data() + pos_);
    if (len < 4 || len > kMaxPacket)
        return Error(Errc::Protocol,
                     "ssh mux: packet length " + std::to_string(len) + " outside 4.." +
                         std::to_string(kMaxPacket));
    if (avail - 4 < len) return std::optional<Reply>();
    auto reply = parse_reply(ByteView(buffer_.data() + pos_ + 4, len));
    if (!reply) return std::move(reply).error();
    pos_ += 4 + len;
    if (pos_ == buffer_.size()) {
        buffer_.clear();
        pos_ = 0;
    }
    return std::optional<Reply>(std::move(*reply));
}

const char* type_name(std::uint32_t type) noexcept {
    switch (type) {
        case kMsgHello: return "MUX_MSG_HELLO";
        case kNewSession: return "MUX_C_NEW_SESSION";
        case kAliveCheck: return "MUX_C_ALIVE_CHECK";
        case kNewStdioFwd: return "MUX_C_NEW_STDIO_FWD";
        case kOk: return "MUX_S_OK";
        case kPermissionDenied: return "MUX_S_PERMISSION_DENIED";
        case kFailure: return "MUX_S_FAILURE";
        case kExitMessage: return "MUX_S_EXIT_MESSAGE";
        case kAlive: return "MUX_S_ALIVE";
        case kSessionOpened: return "MUX_S_SESSION_OPENED";
        default: return "unknown";
    }
}

}  // namespace sshuttle::proto::sshmux

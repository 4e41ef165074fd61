// Control-socket messages between the CLI and the daemon, in varlink's shape.
//
//   call:   {"method": "io.sshuttle.Daemon.Status", "parameters": {...}, "more": false,
//            "oneway": false}
//   reply:  {"parameters": {...}, "continues": true}
//   error:  {"error": "io.sshuttle.Daemon.NoSuchTunnel", "parameters": {...}}
//
// each followed by a NUL byte on the wire (ControlDecoder splits the stream). Parsing is the
// door: the text is checked for size, UTF-8 and nesting depth, parsed without exceptions, and
// every field is type-checked; unknown fields are rejected. What comes out is a Call or Reply
// whose parameters are a JSON object for the method's own parser. nlohmann::json is used only in
// its non-throwing forms, so no exception leaves this module.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.hpp"

namespace sshuttle::proto {

// Characters in a method or error name ("io.sshuttle.Daemon.Status"): varlink's interface-name
// limit, ample for ours.
inline constexpr std::size_t kMaxQualifiedName = 255;
// Nesting of JSON arrays and objects in one message. Our parameters nest three or four deep;
// the cap keeps recursion in dump() and in method parsers shallow whatever a peer sends.
inline constexpr int kMaxJsonDepth = 32;
// Bytes in one message without its NUL; the same default as ControlDecoder's.
inline constexpr std::size_t kMaxControlMessage = 64 * 1024;

struct Call {
    std::string method;  // a qualified name: dotted segments of [A-Za-z0-9]
    nlohmann::json parameters = nlohmann::json::object();  // always an object
    bool more = false;    // the caller wants a stream of replies ("continues": true until done)
    bool oneway = false;  // the caller wants no reply at all
};

struct Reply {
    nlohmann::json parameters = nlohmann::json::object();  // always an object
    bool continues = false;  // more replies follow this one (only for calls with "more")
    std::string error;       // empty for success, else a qualified error name
    bool is_error() const noexcept { return !error.empty(); }
};

// Dotted segments of [A-Za-z0-9]+, at least two, at most kMaxQualifiedName characters.
bool is_qualified_name(std::string_view name) noexcept;

// Parse one message (without its NUL). Protocol errors name the problem: invalid UTF-8 (with
// the byte offset), not JSON, not an object, too deep, a missing or mistyped field, a bad name,
// an unknown field. TooLarge beyond kMaxControlMessage.
[[nodiscard]] Result<Call> parse_call(std::string_view text);
[[nodiscard]] Result<Reply> parse_reply(std::string_view text);

// The wire form of a message: compact JSON followed by its NUL terminator, ready to write.
// InvalidArgument for a bad name or non-object parameters, TooLarge when the text would exceed
// kMaxControlMessage. Strings that are not valid UTF-8 are written with U+FFFD in their place.
[[nodiscard]] Result<std::string> serialize_call(const Call& call);
[[nodiscard]] Result<std::string> serialize_reply(const nlohmann::json& parameters,
                                                  bool continues = false);
[[nodiscard]] Result<std::string> serialize_error(
    std::string_view error, const nlohmann::json& parameters = nlohmann::json::object());

}  // namespace sshuttle::proto

#include "proto/control.hpp"

#include <cstdint>
#include <initializer_list>
#include <optional>

#include "proto/bytes.hpp"

namespace sshuttle::proto {

namespace {

using nlohmann::json;

// The offset of the first byte that is not part of well-formed UTF-8 (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or nullopt when the text is valid.
std::optional<std::size_t> invalid_utf8_at(std::string_view text) noexcept {
    const auto* p = reinterpret_cast<const std::uint8_t*>(text.data());
    const std::size_t n = text.size();
    std::size_t i = 0;
    while (i < n) {
        const std::uint8_t c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        std::size_t len = 0;
        std::uint8_t lo = 0x80;  // bounds of the second byte, which exclude overlong forms,
        std::uint8_t hi = 0xbf;  // surrogates and code points above U+10FFFF
        if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            if (c == 0xe0) lo = 0xa0;
            if (c == 0xed) hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            if (c == 0xf0) lo = 0x90;
            if (c == 0xf4) hi = 0x8f;
        } else {
            return i;
        }
        if (n - i < len) return i;
        if (p[i + 1] < lo || p[i + 1] > hi) return i;
        for (std::size_t k = 2; k < len; ++k)
            if (p[i + k] < 0x80 || p[i + k] > 0xbf) return i;
        i += len;
    }
    return std::nullopt;
}

// The deepest nesting of arrays and objects, counted on the text outside strings, so that a
// too-deep message is refused before a parser builds it.
int json_depth(std::string_view text) noexcept {
    int depth = 0;
    int deepest = 0;
    bool in_string = false;
    bool escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        if (c == '"')
            in_string = true;
        else if (c == '[' || c == '{')
            deepest = std::max(deepest, ++depth);
        else if ((c == ']' || c == '}') && depth > 0)
            --depth;
    }
    return deepest;
}

Error protocol(const std::string& what, const std::string& message) {
    return Error(Errc::Protocol, "control " + what + ": " + message);
}

// Checks size, encoding and depth, then parses; the result is always an object.
Result<json> parse_object(std::string_view text, const char* what) {
    if (text.size() > kMaxControlMessage)
        return Error(Errc::TooLarge, std::string("control ") + what + " of " +
                                         std::to_string(text.size()) +
                                         " bytes is longer than the limit of " +
                                         std::to_string(kMaxControlMessage));
    if (auto bad = invalid_utf8_at(text))
        return protocol(what, "not valid UTF-8 at byte " + std::to_string(*bad) + " in " +
                                  quote_bytes(text.substr(*bad > 8 ? *bad - 8 : 0)));
    if (json_depth(text) > kMaxJsonDepth)
        return protocol(what,
                        "JSON nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) return protocol(what, "not valid JSON: " + quote_bytes(text));
    if (!j.is_object())
        return protocol(what, std::string("a JSON ") + j.type_name() + ", not an object");
    return j;
}

Result<void> reject_unknown_fields(const json& j, const char* what,
                                   std::initializer_list<std::string_view> known) {
    for (const auto& item : j.items()) {
        bool found = false;
        for (std::string_view k : known) found = found || item.key() == k;
        if (!found) return protocol(what, "unknown field " + quote_bytes(item.key()));
    }
    return ok();
}

// An optional boolean field: fallback when absent, an error when not a boolean.
Result<bool> optional_bool(const json& j, const char* what, const char* field, bool fallback) {
    const auto it = j.find(field);
    if (it == j.end()) return fallback;
    const bool* value = it->get_ptr<const bool*>();
    if (value == nullptr)
        return protocol(
            what, std::string("\"") + field + "\" must be a boolean, got a " + it->type_name());
    return *value;
}

// An optional "parameters" field: an empty object when absent.
Result<json> optional_parameters(const json& j, const char* what) {
    const auto it = j.find("parameters");
    if (it == j.end()) return json::object();
    if (!it->is_object())
        return protocol(what,
                        std::string("\"parameters\" must be an object, got a ") + it->type_name());
    return *it;
}

// A required qualified-name field ("method" or "error").
Result<std::string> name_field(const json& j, const char* what, const char* field) {
    const auto it = j.find(field);
    if (it == j.end()) return protocol(what, std::string("missing \"") + field + "\"");
    const std::string* name = it->get_ptr<const std::string*>();
    if (name == nullptr)
        return protocol(
            what, std::string("\"") + field + "\" must be a string, got a " + it->type_name());
    if (!is_qualified_name(*name))
        return protocol(what, std::string("\"") + field + "\" " + quote_bytes(*name) +
                                  " is not a qualified name like io.sshuttle.Daemon.Status");
    return *name;
}

// Compact JSON plus the NUL terminator. dump() in replace mode cannot throw on bad UTF-8, and
// it escapes U+0000 and every control character, so the text contains no NUL of its own.
Result<std::string> frame(const json& j) {
    std::string text = j.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() > kMaxControlMessage)
        return Error(Errc::TooLarge, "control message of " + std::to_string(text.size()) +
                                         " bytes is longer than the limit of " +
                                         std::to_string(kMaxControlMessage));
    text.push_back('\0');
    return text;
}

Result<void> check_parameters(const json& parameters) {
    if (parameters.is_object()) return ok();
    return Error(
        Errc::InvalidArgument,
        std::string("control parameters must be an object, got a ") + parameters.type_name());
}

}  // namespace

bool is_qualified_name(std::string_view name) noexcept {
    if (name.empty() || name.size() > kMaxQualifiedName) return false;
    std::size_t segments = 1;
    std::size_t segment_length = 0;
    for (char c : name) {
        if (c == '.') {
            if (segment_length == 0) return false;
            ++segments;
            segment_length = 0;
            continue;
        }
        const bool alnum =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum) return false;
        ++segment_length;
    }
    return segments >= 2 && segment_length > 0;
}

Result<Call> parse_call(std::string_view text) {
    constexpr const char* kWhat = "call";
    auto j = parse_object(text, kWhat);
    if (!j) return std::move(j).error();
    if (auto r = reject_unknown_fields(*j, kWhat, {"method", "parameters", "more", "oneway"}); !r)
        return std::move(r).error();
    Call call;
    auto method = name_field(*j, kWhat, "method");
    if (!method) return std::move(method).error();
    call.method = std::move(method).value();
    auto parameters = optional_parameters(*j, kWhat);
    if (!parameters) return std::move(parameters).error();
    call.parameters = std::move(parameters).value();
    auto more = optional_bool(*j, kWhat, "more", false);
    if (!more) return std::move(more).error();
    auto oneway = optional_bool(*j, kWhat, "oneway", false);
    if (!oneway) return std::move(oneway).error();
    if (*more && *oneway)
        return protocol(kWhat, "\"more\" and \"oneway\" exclude each other (" + call.method + ")");
    call.more = *more;
    call.oneway = *oneway;
    return call;
}

Result<Reply> parse_reply(std::string_view text) {
    constexpr const char* kWhat = "reply";
    auto j = parse_object(text, kWhat);
    if (!j) return std::move(j).error();
    if (auto r = reject_unknown_fields(*j, kWhat, {"parameters", "continues", "error"}); !r)
        return std::move(r).error();
    Reply reply;
    if (j->contains("error")) {
        auto error = name_field(*j, kWhat, "error");
        if (!error) return std::move(error).error();
        reply.error = std::move(error).value();
    }
    auto parameters = optional_parameters(*j, kWhat);
    if (!parameters) return std::move(parameters).error();
    reply.parameters = std::move(parameters).value();
    auto continues = optional_bool(*j, kWhat, "continues", false);
    if (!continues) return std::move(continues).error();
    if (*continues && reply.is_error())
        return protocol(kWhat, "error " + reply.error + " cannot have \"continues\"");
    reply.continues = *continues;
    return reply;
}

Result<std::string> serialize_call(const Call& call) {
    if (!is_qualified_name(call.method))
        return Error(Errc::InvalidArgument, "control call: method " + quote_bytes(call.method) +
                                                " is not a qualified name");
    if (auto r = check_parameters(call.parameters); !r) return std::move(r).error();
    if (call.more && call.oneway)
        return Error(Errc::InvalidArgument,
                     "control call: \"more\" and \"oneway\" exclude each other");
    json j = json::object();
    j["method"] = call.method;
    j["parameters"] = call.parameters;
    if (call.more) j["more"] = true;
    if (call.oneway) j["oneway"] = true;
    return frame(j);
}

Result<std::string> serialize_reply(const nlohmann::json& parameters, bool continues) {
    if (auto r = check_parameters(parameters); !r) return std::move(r).error();
    json j = json::object();
    j["parameters"] = parameters;
    if (continues) j["continues"] = true;
    return frame(j);
}

Result<std::string> serialize_error(std::string_view error, const nlohmann::json& parameters) {
    if (!is_qualified_name(error))
        return Error(Errc::InvalidArgument,
                     "control error: " + quote_bytes(error) + " is not a qualified name");
    if (auto r = check_parameters(parameters); !r) return std::move(r).error();
    json j = json::object();
    j["error"] = std::string(error);
    j["parameters"] = parameters;
    return frame(j);
}

}  // namespace sshuttle::proto

// libFuzzer target: the control socket as the daemon (calls) and the CLI (replies) read it.
//
// Input: byte 0 picks the chunk size for ControlDecoder; the rest is the stream, split into
// messages at NULs. Checks, besides "no crash, no exception, no sanitizer report":
//   * the decoder returns the same messages however the stream is chunked;
//   * a message that parses serialises, and the serialised text parses to the same values.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "proto/control.hpp"
#include "proto/control_decoder.hpp"

using namespace sshuttle;
using namespace sshuttle::proto;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

std::string_view unframed(const std::string& framed) {
    check(!framed.empty() && framed.back() == '\0');
    check(framed.find('\0') == framed.size() - 1);
    return std::string_view(framed).substr(0, framed.size() - 1);
}

void check_message(std::string_view text) {
    if (auto call = parse_call(text)) {
        auto framed = serialize_call(*call);
        // Re-serialising may grow the text (1E5 becomes 100000.0), so only the size can fail.
        if (!framed) {
            check(framed.error().code == Errc::TooLarge);
        } else {
            auto again = parse_call(unframed(*framed));
            check(again.has_value());
            check(again->method == call->method && again->parameters == call->parameters &&
                  again->more == call->more && again->oneway == call->oneway);
        }
    } else {
        check(!call.error().message.empty());
    }
    if (auto reply = parse_reply(text)) {
        auto framed = reply->is_error() ? serialize_error(reply->error, reply->parameters)
                                        : serialize_reply(reply->parameters, reply->continues);
        if (!framed) {
            check(framed.error().code == Errc::TooLarge);
        } else {
            auto again = parse_reply(unframed(*framed));
            check(again.has_value());
            check(again->error == reply->error && again->parameters == reply->parameters &&
                  again->continues == reply->continues);
        }
    }
}

std::vector<std::string> split(std::string_view stream, std::size_t chunk, std::string& error) {
    ControlDecoder decoder;
    std::vector<std::string> messages;
    for (std::size_t at = 0; at < stream.size() && error.empty(); at += chunk) {
        if (auto fed = decoder.feed(stream.substr(at, chunk)); !fed) {
            error = fed.error().message;
            break;
        }
        for (;;) {
            auto next = decoder.next();
            if (!next) {
                error = next.error().message;
                break;
            }
            if (!next->has_value()) break;
            messages.emplace_back(**next);
        }
    }
    return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t chunk = 1 + data[0] % 61;
    const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

    // The whole input as one message, NULs and all.
    check_message(stream);

    std::string whole_error;
    std::string chunked_error;
    const auto whole = split(stream, stream.size() + 1, whole_error);
    const auto chunked = split(stream, chunk, chunked_error);
    // An oversized tail is caught as it arrives when chunked but only at next() in one go, so
    // the two may stop at different points; the messages before an error agree.
    if (whole_error.empty() && chunked_error.empty()) check(whole == chunked);
    for (const std::string& m : chunked) check_message(m);
    return 0;
}

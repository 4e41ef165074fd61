// libFuzzer target: the server's stdout as the daemon reads it (sync header, then frames) and
// every typed payload parser.
//
// Input: byte 0 picks the chunk size the stream is fed in, byte 1 the decoder's payload limit;
// the rest is the stream. Checks, besides "no crash, no sanitizer report":
//   * feeding in chunks decodes exactly what feeding in one go decodes (same frames, same error);
//   * a payload that parses serialises to bytes that parse again to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "proto/mux_decoder.hpp"
#include "proto/mux_frame.hpp"
#include "proto/mux_messages.hpp"
#include "proto/sync_scanner.hpp"

using namespace sshuttle;
using namespace sshuttle::proto;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

// What decoding produced: one line per frame, then the error message if any.
struct Transcript {
    std::vector<std::string> frames;
    std::string error;
    friend bool operator==(const Transcript&, const Transcript&) = default;
};

// serialise(parse(payload)) parses again and serialises to the same bytes.
void check_round_trip(Command command, ByteView payload) {
    auto message = parse_message(command, payload);
    if (!message) {
        check(!message.error().message.empty());
        return;
    }
    check(message_command(*message) == command);
    std::vector<std::uint8_t> once;
    if (!append_message(once, 1, *message)) return;  // e.g. a name upstream would crash on
    const ByteView once_payload = ByteView(once).subspan(kHeaderSize);
    auto again = parse_message(command, once_payload);
    check(again.has_value());
    std::vector<std::uint8_t> twice;
    check(append_message(twice, 1, *again).has_value());
    check(once == twice);
}

// Takes every complete frame out of the decoder, recording it or the error.
void drain(FrameDecoder& decoder, std::size_t max_payload, Transcript& t) {
    for (;;) {
        auto next = decoder.next();
        if (!next) {
            t.error = next.error().message;
            check(decoder.failed());
            return;
        }
        if (!next->has_value()) return;
        const FrameView& f = **next;
        check(f.payload.size() <= max_payload);
        check(is_known_command(static_cast<std::uint16_t>(f.command)));
        t.frames.push_back(std::to_string(f.channel) + " " + std::string(command_name(f.command)) +
                           " " + std::string(as_chars(f.payload)));
        check_round_trip(f.command, f.payload);
    }
}

Transcript decode(ByteView stream, std::size_t chunk, std::size_t max_payload) {
    Transcript t;
    SyncScanner scanner;
    // The smallest legal buffer: cheaper per run under ASan, and it exercises compaction more.
    FrameDecoder decoder(0, max_payload);
    for (std::size_t at = 0; at < stream.size() && t.error.empty();) {
        ByteView piece = stream.subspan(at, std::min(chunk, stream.size() - at));
        at += piece.size();
        if (!scanner.done()) {
            auto progress = scanner.feed(piece);
            if (!progress) {
                t.error = progress.error().message;
                break;
            }
            check(progress->consumed <= piece.size());
            if (!progress->done) {
                check(progress->consumed == piece.size());
                continue;
            }
            piece = piece.subspan(progress->consumed);
        }
        // Feed what fits, drain, repeat: a caller honouring backpressure. A full buffer always
        // holds a complete frame or an error (it is at least one largest frame), so this ends.
        while (!piece.empty() && t.error.empty()) {
            const std::size_t n = std::min(piece.size(), decoder.space());
            check(decoder.feed(piece.first(n)).has_value());
            if (piece.size() > n) check(!decoder.feed(piece.subspan(n)).has_value());
            piece = piece.subspan(n);
            const std::size_t space_before = decoder.space();
            drain(decoder, max_payload, t);
            if (n == 0) check(decoder.space() > space_before || !t.error.empty());
        }
    }
    if (t.error.empty() && !scanner.done()) t.error = scanner.eof_error().message;
    return t;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::size_t chunk = 1 + data[0] % 97;
    const std::size_t max_payload = data[1] == 0 ? kMaxPayload : std::size_t{data[1]} * 16;
    const ByteView stream(data + 2, size - 2);

    const Transcript whole = decode(stream, stream.size() + 1, max_payload);
    const Transcript chunked = decode(stream, chunk, max_payload);
    check(whole == chunked);

    // Every typed parser on the raw bytes, whatever the framing made of them.
    for (std::uint16_t c = kFirstUpstreamCommand; c <= kLastUpstreamCommand; ++c)
        check_round_trip(static_cast<Command>(c), stream);
    check_round_trip(Command::Window, stream);
    check_round_trip(Command::ConnectError, stream);
    return 0;
}

// libFuzzer target: replies from an ssh ControlMaster as sshuttled reads them
// (proto/ssh_mux.hpp).
//
// Input: byte 0 picks the chunk size fed to ReplyReader; the rest is the stream. Checks, besides
// "no crash, no exception, no sanitizer report":
//   * the reader returns the same replies (or the same first error) however the stream is
//     chunked;
//   * what it buffers stays below one maximal packet plus one chunk.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "proto/ssh_mux.hpp"

using namespace sshuttle;
using namespace sshuttle::proto;

namespace {

void check(bool condition) {
    if (!condition) std::abort();
}

// "kind/type/rid/value/reason" per reply, then "error" if one ended the stream.
std::vector<std::string> read_all(const std::uint8_t* data, std::size_t size, std::size_t chunk) {
    sshmux::ReplyReader reader;
    std::vector<std::string> out;
    for (std::size_t pos = 0; pos < size; pos += chunk) {
        std::size_t n = std::min(chunk, size - pos);
        reader.feed(ByteView(data + pos, n));
        for (;;) {
            auto next = reader.next();
            if (!next) {
                out.push_back("error");
                return out;
            }
            if (!*next) break;
            const auto& r = **next;
            out.push_back(std::to_string(static_cast<int>(r.kind)) + "/" + std::to_string(r.type) +
                          "/" + std::to_string(r.request_id) + "/" + std::to_string(r.value) +
                          "/" + r.reason);
        }
        check(reader.buffered() <= sshmux::kMaxPacket + 4 + chunk);
    }
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    std::size_t chunk = 1 + data[0] % 64;
    ++data;
    --size;
    auto whole = read_all(data, size, size == 0 ? 1 : size);
    auto pieces = read_all(data, size, chunk);
    check(whole == pieces);
    return 0;
}

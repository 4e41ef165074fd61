// libFuzzer target: the tunnel option language (proto/tunnel_options.hpp) on arbitrary @file
// contents. The input is the text of a profile; every @name inside it reads the same text again
// (so nesting and its caps are exercised), subnet files (-s/-X) too. Names never resolve. Any
// crash, sanitizer report or unbounded time is a bug; errors are fine. Whatever parses must
// survive the canonical round trip: parse(to_args(o)) == o as far as to_args can tell.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "proto/tunnel_options.hpp"

using namespace sshuttle;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    proto::FileReader reader = [&](const std::string&) -> Result<std::string> { return text; };
    Resolver resolver = [](std::string_view host) -> Result<std::vector<IpAddress>> {
        return Error(Errc::NotFound, "Unable to resolve address: " + std::string(host));
    };
    auto args = proto::expand_arg_files(proto::args_file_lines(text, "fuzz.conf"), reader);
    if (!args) return 0;
    auto options = proto::parse_tunnel_options(*args, resolver, reader);
    if (!options) return 0;
    (void)proto::check_usage(*options);
    (void)proto::check_fatal(*options);
    (void)proto::check_supported(*options);
    auto canonical = proto::to_args(*options);
    auto again = proto::parse_tunnel_options(canonical, resolver, reader);
    if (!again || proto::to_args(*again) != canonical) std::abort();
    return 0;
}

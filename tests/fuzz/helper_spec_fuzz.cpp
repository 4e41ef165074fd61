// libFuzzer target: the helper's typed request, as the D-Bus front end hands it over (JSON).
//
// Checks, besides "no crash, no exception, no sanitizer report": a spec that is accepted
// passes validate(), and spec_to_json() of it is accepted again as the same spec.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include <nlohmann/json.hpp>

#include "helper/spec.hpp"

using namespace sshuttle;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto json = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
    if (json.is_discarded()) return 0;
    auto spec = helper::spec_from_json(json);
    if (!spec) return 0;
    if (!helper::validate(*spec)) std::abort();
    auto again = helper::spec_from_json(helper::spec_to_json(*spec));
    if (!again || !(*again == *spec)) std::abort();
    return 0;
}

// TunnelSpec on the wire: Apply's a{sv} argument, converted to and from the JSON shape that
// spec_from_json()/spec_to_json() understand (helper/spec.hpp).
//
// The dict's keys and each value's D-Bus type are fixed by spec_fields(); the helper reads a
// dict strictly (unknown key, duplicate key, wrong variant type, oversized string or list: a
// named error naming the key) and never trusts the client to have used this encoder.
#pragma once

#include <span>
#include <string_view>

#include <systemd/sd-bus.h>

#include <nlohmann/json_fwd.hpp>

#include "common/error.hpp"

namespace sshuttle::helper {

struct SpecField {
    const char* key;
    const char* type;  // D-Bus signature of the variant's content: "s", "as", "q", "b", "u"
};

std::span<const SpecField> spec_fields() noexcept;

// Reads one a{sv} from `m` (positioned at it) into a JSON object. Absent uid/gid stay absent.
[[nodiscard]] Result<nlohmann::json> read_spec_dict(sd_bus_message* m);

// Appends `spec` (a JSON object of spec_to_json's shape) to `m` as a{sv}; null values are left
// out. Fails on keys or value types the table does not know.
[[nodiscard]] Result<void> append_spec_dict(sd_bus_message* m, const nlohmann::json& spec);

}  // namespace sshuttle::helper

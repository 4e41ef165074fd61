#include "helper/spec_codec.hpp"

#include <array>
#include <cstring>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "helper/methods.hpp"
#include "helper/spec.hpp"

namespace sshuttle::helper {

namespace {

constexpr std::array kFields{
    SpecField{"name", "s"},         SpecField{"method", "s"},
    SpecField{"includes", "as"},    SpecField{"excludes", "as"},
    SpecField{"dns_servers", "as"}, SpecField{"server_addresses", "as"},
    SpecField{"tcp_port_v4", "q"},  SpecField{"tcp_port_v6", "q"},
    SpecField{"dns_port_v4", "q"},  SpecField{"dns_port_v6", "q"},
    SpecField{"udp", "b"},          SpecField{"uid", "u"},
    SpecField{"gid", "u"},
};

// A list longer than the largest cap in spec.hpp is refused while reading, before all of it is
// held in memory as JSON.
constexpr std::size_t kMaxListEntries = kMaxSubnetsPerSpec;
constexpr std::size_t kMaxKeyBytes = 64;

const SpecField* find_field(std::string_view key) {
    for (const auto& f : kFields)
        if (key == f.key) return &f;
    return nullptr;
}

Error bus_error(const std::string& what, int r) {
    return Error(Errc::InvalidArgument, what + ": malformed message: " + std::strerror(-r), -r);
}

Result<std::string> read_string(sd_bus_message* m, const std::string& key) {
    const char* s = nullptr;
    int r = sd_bus_message_read_basic(m, 's', &s);
    if (r < 0) return bus_error("field '" + key + "'", r);
    if (std::strlen(s) > kMaxRequestStringBytes)
        return Error(Errc::TooLarge, "field '" + key + "': string longer than " +
                                         std::to_string(kMaxRequestStringBytes) + " bytes");
    return std::string(s);
}

Result<nlohmann::json> read_string_list(sd_bus_message* m, const std::string& key) {
    int r = sd_bus_message_enter_container(m, 'a', "s");
    if (r < 0) return bus_error("field '" + key + "'", r);
    nlohmann::json list = nlohmann::json::array();
    for (;;) {
        r = sd_bus_message_at_end(m, false);
        if (r < 0) return bus_error("field '" + key + "'", r);
        if (r > 0) break;
        if (list.size() >= kMaxListEntries)
            return Error(Errc::TooLarge, "field '" + key + "': more than " +
                                             std::to_string(kMaxListEntries) + " entries");
        auto s = read_string(m, key);
        if (!s) return std::move(s).error();
        list.push_back(std::move(*s));
    }
    r = sd_bus_message_exit_container(m);
    if (r < 0) return bus_error("field '" + key + "'", r);
    return list;
}

// Reads the variant's content, which the caller has checked is of field.type.
Result<nlohmann::json> read_value(sd_bus_message* m, const SpecField& field) {
    const std::string key = field.key;
    const std::string_view type = field.type;
    if (type == "s") {
        auto s = read_string(m, key);
        if (!s) return std::move(s).error();
        return nlohmann::json(std::move(*s));
    }
    if (type == "as") return read_string_list(m, key);
    if (type == "q") {
        uint16_t v = 0;
        int r = sd_bus_message_read_basic(m, 'q', &v);
        if (r < 0) return bus_error("field '" + key + "'", r);
        return nlohmann::json(v);
    }
    if (type == "u") {
        uint32_t v = 0;
        int r = sd_bus_message_read_basic(m, 'u', &v);
        if (r < 0) return bus_error("field '" + key + "'", r);
        return nlohmann::json(v);
    }
    if (type == "b") {
        int v = 0;
        int r = sd_bus_message_read_basic(m, 'b', &v);
        if (r < 0) return bus_error("field '" + key + "'", r);
        return nlohmann::json(v != 0);
    }
    return Error(Errc::Internal, "spec field '" + key + "' has an unhandled type");
}

Result<void> read_entry(sd_bus_message* m, nlohmann::json& out, std::set<std::string>& seen) {
    const char* raw_key = nullptr;
    int r = sd_bus_message_read_basic(m, 's', &raw_key);
    if (r < 0) return bus_error("spec key", r);
    std::string key(raw_key, strnlen(raw_key, kMaxKeyBytes + 1));
    if (key.size() > kMaxKeyBytes) return Error(Errc::TooLarge, "spec key too long");
    const SpecField* field = find_field(key);
    if (field == nullptr) return Error(Errc::InvalidArgument, "unknown spec field '" + key + "'");
    if (!seen.insert(key).second)
        return Error(Errc::InvalidArgument, "spec field '" + key + "' given twice");

    char type = 0;
    const char* contents = nullptr;
    r = sd_bus_message_peek_type(m, &type, &contents);
    if (r < 0) return bus_error("field '" + key + "'", r);
    if (type != 'v' || contents == nullptr || std::strcmp(contents, field->type) != 0)
        return Error(Errc::InvalidArgument, "field '" + key + "' must have D-Bus type '" +
                                                field->type + "', got '" +
                                                (contents ? contents : "?") + "'");
    r = sd_bus_message_enter_container(m, 'v', field->type);
    if (r < 0) return bus_error("field '" + key + "'", r);
    auto value = read_value(m, *field);
    if (!value) return std::move(value).error();
    r = sd_bus_message_exit_container(m);
    if (r < 0) return bus_error("field '" + key + "'", r);
    out[key] = std::move(*value);
    return ok();
}

Result<void> append_value(sd_bus_message* m, const SpecField& field, const nlohmann::json& v) {
    const std::string_view type = field.type;
    const std::string key = field.key;
    int r = sd_bus_message_open_container(m, 'v', field.type);
    if (r < 0) return Error(Errc::Internal, "open variant for '" + key + "'", -r);
    if (type == "s") {
        if (!v.is_string()) return Error(Errc::InvalidArgument, "'" + key + "' must be a string");
        r = sd_bus_message_append_basic(m, 's', v.get_ref<const std::string&>().c_str());
    } else if (type == "as") {
        if (!v.is_array()) return Error(Errc::InvalidArgument, "'" + key + "' must be a list");
        r = sd_bus_message_open_container(m, 'a', "s");
        for (const auto& item : v) {
            if (r < 0) break;
            if (!item.is_string())
                return Error(Errc::InvalidArgument, "'" + key + "' must hold strings");
            r = sd_bus_message_append_basic(m, 's', item.get_ref<const std::string&>().c_str());
        }
        if (r >= 0) r = sd_bus_message_close_container(m);
    } else if (type == "q") {
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 0xffff)
            return Error(Errc::InvalidArgument, "'" + key + "' must be a port number");
        uint16_t q = v.get<std::uint16_t>();
        r = sd_bus_message_append_basic(m, 'q', &q);
    } else if (type == "u") {
        if (!v.is_number_integer() || v.get<std::int64_t>() < 0 ||
            v.get<std::int64_t>() > 0xffffffffLL)
            return Error(Errc::InvalidArgument, "'" + key + "' must be an unsigned 32-bit number");
        uint32_t u = v.get<std::uint32_t>();
        r = sd_bus_message_append_basic(m, 'u', &u);
    } else if (type == "b") {
        if (!v.is_boolean()) return Error(Errc::InvalidArgument, "'" + key + "' must be a bool");
        int b = v.get<bool>() ? 1 : 0;
        r = sd_bus_message_append_basic(m, 'b', &b);
    }
    if (r < 0) return Error(Errc::Internal, "append '" + key + "'", -r);
    r = sd_bus_message_close_container(m);
    if (r < 0) return Error(Errc::Internal, "close variant for '" + key + "'", -r);
    return ok();
}

}  // namespace

std::span<const SpecField> spec_fields() noexcept {
    return kFields;
}

Result<nlohmann::json> read_spec_dict(sd_bus_message* m) {
    int r = sd_bus_message_enter_container(m, 'a', "{sv}");
    if (r < 0) return bus_error("spec", r);
    nlohmann::json out = nlohmann::json::object();
    std::set<std::string> seen;
    for (;;) {
        r = sd_bus_message_enter_container(m, 'e', "sv");
        if (r < 0) return bus_error("spec", r);
        if (r == 0) break;
        auto entry = read_entry(m, out, seen);
        if (!entry) return std::move(entry).error();
        r = sd_bus_message_exit_container(m);
        if (r < 0) return bus_error("spec", r);
    }
    r = sd_bus_message_exit_container(m);
    if (r < 0) return bus_error("spec", r);
    return out;
}

Result<void> append_spec_dict(sd_bus_message* m, const nlohmann::json& spec) {
    if (!spec.is_object()) return Error(Errc::InvalidArgument, "spec must be a JSON object");
    int r = sd_bus_message_open_container(m, 'a', "{sv}");
    if (r < 0) return Error(Errc::Internal, "open spec dict", -r);
    for (const auto& [key, value] : spec.items()) {
        if (value.is_null()) continue;
        const SpecField* field = find_field(key);
        if (field == nullptr)
            return Error(Errc::InvalidArgument, "unknown spec field '" + key + "'");
        r = sd_bus_message_open_container(m, 'e', "sv");
        if (r < 0) return Error(Errc::Internal, "open dict entry", -r);
        r = sd_bus_message_append_basic(m, 's', field->key);
        if (r < 0) return Error(Errc::Internal, "append key", -r);
        auto appended = append_value(m, *field, value);
        if (!appended) return appended;
        r = sd_bus_message_close_container(m);
        if (r < 0) return Error(Errc::Internal, "close dict entry", -r);
    }
    r = sd_bus_message_close_container(m);
    if (r < 0) return Error(Errc::Internal, "close spec dict", -r);
    return ok();
}

}  // namespace sshuttle::helper

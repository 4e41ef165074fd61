// The method table, the checked-in introspection XML, the live object's introspection, the bus
// policy and the polkit policy must all say the same thing.
#include "helper/methods.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "helper/service.hpp"
#include "helper/testing_bus.hpp"

namespace sshuttle::helper {
namespace {

std::string read_source(const std::string& relative) {
    std::ifstream in(std::string(SSHUTTLE_SOURCE_ROOT) + "/" + relative);
    REQUIRE_MESSAGE(in.good(), "cannot read " << relative);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

// The value of attribute `name` in an XML tag's text, or "". (Plain string scanning: GCC 12's
// <regex> trips -Wmaybe-uninitialized under the sanitizer build.)
std::string attr(const std::string& tag, const std::string& name) {
    const std::string key = name + "=\"";
    auto at = tag.find(key);
    if (at == std::string::npos) return "";
    at += key.size();
    return tag.substr(at, tag.find('"', at) - at);
}

// Every `<open ...>` tag's text in `text` (from after `open` to the closing '>').
std::vector<std::string> tags(const std::string& text, const std::string& open) {
    std::vector<std::string> out;
    for (auto at = text.find(open); at != std::string::npos; at = text.find(open, at + 1))
        out.push_back(text.substr(at + open.size(), text.find('>', at) - at - open.size()));
    return out;
}

// method name -> "in:<sigs> out:<sigs> names:<names>" for interface io.sshuttle.Helper1 in an
// introspection document.
std::map<std::string, std::string> methods_in_xml(const std::string& xml) {
    std::map<std::string, std::string> out;
    auto start = xml.find("<interface name=\"io.sshuttle.Helper1\">");
    REQUIRE(start != std::string::npos);
    const std::string body = xml.substr(start, xml.find("</interface>", start) - start);
    for (auto at = body.find("<method "); at != std::string::npos;
         at = body.find("<method ", at + 1)) {
        const auto tag_end = body.find('>', at);
        const std::string name = attr(body.substr(at, tag_end - at), "name");
        std::string args;
        if (body[tag_end - 1] != '/')
            args = body.substr(tag_end, body.find("</method>", tag_end) - tag_end);
        std::string in, out_sig, names;
        for (const auto& arg : tags(args, "<arg ")) {
            (attr(arg, "direction") == "out" ? out_sig : in) += attr(arg, "type");
            names += attr(arg, "name") + " ";
        }
        out[name] = "in:" + in + " out:" + out_sig + " names:" + names;
    }
    return out;
}

std::map<std::string, std::string> methods_in_table() {
    std::map<std::string, std::string> out;
    for (const auto& m : method_table()) {
        std::string names;
        for (const char* list : {m.in_names, m.out_names})
            if (*list) names += std::string(list) + " ";
        out[m.name] = std::string("in:") + m.in_sig + " out:" + m.out_sig + " names:" + names;
    }
    return out;
}

TEST_CASE("every method id has exactly one row and member names are unique") {
    std::set<std::string> names;
    for (const auto& m : method_table()) {
        CHECK(names.insert(m.name).second);
        CHECK(&method_info(m.id) == &m);
        CHECK(find_method(m.name) == &m);
    }
    CHECK(find_method("Flush") == nullptr);
}

TEST_CASE("methods that change the machine on a caller's behalf are guarded by the polkit action") {
    for (const auto& m : method_table()) {
        CAPTURE(m.name);
        if (m.action != nullptr) CHECK(m.mutates);
        if (!m.mutates) CHECK(m.action == nullptr);
    }
    CHECK(method_info(MethodId::Apply).action == std::string(kTunnelAction));
    CHECK(method_info(MethodId::SetHosts).action == std::string(kTunnelAction));
    CHECK(method_info(MethodId::GetTransparentSockets).action == std::string(kTunnelAction));
}

TEST_CASE("the checked-in XML describes exactly the method table") {
    CHECK(methods_in_xml(read_source("proto/io.sshuttle.Helper1.xml")) == methods_in_table());
}

TEST_CASE("the live object introspects exactly as the checked-in XML") {
    testing::PeerPair pair;
    PeerAuthorizer authz;
    ServiceConfig config;
    config.mode = ServiceMode::Peer;
    config.peer_key = "stdio-test";
    config.hosts_path = "/nonexistent/hosts";
    Service service(pair.server(), authz, std::move(config));
    REQUIRE(service.start());
    auto m = pair.new_call(kObjectPath, "org.freedesktop.DBus.Introspectable", "Introspect");
    auto reply = pair.call(m.get());
    const char* xml = nullptr;
    REQUIRE(sd_bus_message_read(reply.get(), "s", &xml) > 0);
    CHECK(methods_in_xml(xml) == methods_in_xml(read_source("proto/io.sshuttle.Helper1.xml")));
}

TEST_CASE("the polkit policy declares exactly the actions the table uses") {
    std::set<std::string> in_table;
    for (const auto& m : method_table())
        if (m.action) in_table.insert(m.action);
    const std::string policy = read_source("polkit/io.sshuttle.policy");
    std::set<std::string> in_policy;
    for (const auto& tag : tags(policy, "<action ")) in_policy.insert(attr(tag, "id"));
    CHECK(in_policy == in_table);
    // The defaults the design asks for: an active desktop user is not prompted.
    CHECK(policy.find("<allow_active>yes</allow_active>") != std::string::npos);
    CHECK(policy.find("<allow_any>auth_admin_keep</allow_any>") != std::string::npos);
}

TEST_CASE("the bus policy lets through exactly the table's methods") {
    const std::string conf = read_source("helper/dbus/io.sshuttle.Helper1.conf");
    std::set<std::string> members;
    for (const auto& tag : tags(conf, "<allow "))
        if (attr(tag, "send_interface") == "io.sshuttle.Helper1") {
            CHECK(attr(tag, "send_destination") == "io.sshuttle.Helper1");
            members.insert(attr(tag, "send_member"));
        }
    std::set<std::string> table;
    for (const auto& m : method_table()) table.insert(m.name);
    CHECK(members == table);
    CHECK(conf.find("<allow own=\"io.sshuttle.Helper1\"/>") != std::string::npos);
}

TEST_CASE("error names are io.sshuttle.Helper1.Error.<category> and map back") {
    CHECK(error_name(Errc::InvalidArgument) == "io.sshuttle.Helper1.Error.InvalidArgument");
    CHECK(error_name(Errc::PermissionDenied) == "io.sshuttle.Helper1.Error.PermissionDenied");
    for (Errc c : {Errc::InvalidArgument, Errc::TooLarge, Errc::PermissionDenied, Errc::NotFound,
                   Errc::Backend, Errc::Timeout, Errc::Io, Errc::Internal, Errc::Protocol})
        CHECK(errc_from_error_name(error_name(c)) == c);
    CHECK(errc_from_error_name("org.freedesktop.DBus.Error.AccessDenied") == Errc::Backend);
}

}  // namespace
}  // namespace sshuttle::helper

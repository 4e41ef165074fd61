#include "proto/control.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace sshuttle;
using namespace sshuttle::proto;
using namespace std::string_literals;
using nlohmann::json;

namespace {

// The text of a serialised message, checked for its single NUL terminator.
std::string text_of(const Result<std::string>& framed) {
    REQUIRE_MESSAGE(framed, framed.error().message);
    REQUIRE_FALSE(framed->empty());
    CHECK(framed->back() == '\0');
    CHECK(framed->find('\0') == framed->size() - 1);
    return framed->substr(0, framed->size() - 1);
}

Error call_error(std::string_view text) {
    auto r = parse_call(text);
    REQUIRE_FALSE(r);
    return r.error();
}

}  // namespace

TEST_CASE("a call round-trips through serialize_call and parse_call") {
    Call call;
    call.method = "io.sshuttle.Daemon.Status";
    call.parameters = {{"tunnel", "corp"}, {"verbose", true}};
    call.more = true;
    const std::string text = text_of(serialize_call(call));
    CHECK(
        text ==
        R"({"method":"io.sshuttle.Daemon.Status","more":true,"parameters":{"tunnel":"corp","verbose":true}})");
    auto back = parse_call(text);
    REQUIRE(back);
    CHECK(back->method == call.method);
    CHECK(back->parameters == call.parameters);
    CHECK(back->more);
    CHECK_FALSE(back->oneway);
}

TEST_CASE("a minimal call has empty parameters and no flags") {
    auto call = parse_call(R"({"method":"io.sshuttle.Daemon.List"})");
    REQUIRE(call);
    CHECK(call->parameters == json::object());
    CHECK_FALSE(call->more);
    CHECK_FALSE(call->oneway);
    auto oneway = parse_call(R"( {"method":"a.B", "oneway": true, "more": false} )");
    REQUIRE(oneway);
    CHECK(oneway->oneway);
}

TEST_CASE("replies and errors round-trip") {
    const std::string reply = text_of(serialize_reply({{"state", "connected"}}, true));
    CHECK(reply == R"({"continues":true,"parameters":{"state":"connected"}})");
    auto parsed = parse_reply(reply);
    REQUIRE(parsed);
    CHECK_FALSE(parsed->is_error());
    CHECK(parsed->continues);
    CHECK(parsed->parameters["state"] == "connected");

    const std::string error =
        text_of(serialize_error("io.sshuttle.Daemon.NoSuchTunnel", {{"name", "corp"}}));
    CHECK(error == R"({"error":"io.sshuttle.Daemon.NoSuchTunnel","parameters":{"name":"corp"}})");
    auto perr = parse_reply(error);
    REQUIRE(perr);
    CHECK(perr->is_error());
    CHECK(perr->error == "io.sshuttle.Daemon.NoSuchTunnel");
    CHECK(perr->parameters["name"] == "corp");

    auto bare = parse_reply("{}");
    REQUIRE(bare);
    CHECK(bare->parameters == json::object());
}

TEST_CASE("a NUL in a string is escaped, so the terminator stays unique") {
    const std::string text = text_of(serialize_reply({{"s", "a\0b"s}}));
    CHECK(text == R"({"parameters":{"s":"a\u0000b"}})");
    auto back = parse_reply(text);
    REQUIRE(back);
    CHECK(back->parameters["s"] == "a\0b"s);
}

TEST_CASE("serialising invalid UTF-8 replaces it instead of throwing") {
    const std::string text = text_of(serialize_reply({{"s", "bad\xff"}}));
    CHECK(text == "{\"parameters\":{\"s\":\"bad\xef\xbf\xbd\"}}");
}

TEST_CASE("serialising checks names, parameters and size") {
    Call call;
    call.method = "Status";
    auto r = serialize_call(call);
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::InvalidArgument);
    CHECK(r.error().message == "control call: method 'Status' is not a qualified name");
    call.method = "a.b";
    call.parameters = json::array();
    CHECK_FALSE(serialize_call(call));
    call.parameters = json::object();
    call.more = call.oneway = true;
    CHECK_FALSE(serialize_call(call));
    CHECK_FALSE(serialize_error("no dots", json::object()));
    CHECK_FALSE(serialize_reply(json(5)));
    auto big = serialize_reply({{"s", std::string(kMaxControlMessage, 'x')}});
    REQUIRE_FALSE(big);
    CHECK(big.error().code == Errc::TooLarge);
}

TEST_CASE("text that is not JSON is a named error quoting it") {
    const Error e = call_error("{\"method\": \"a.b\"");
    CHECK(e.code == Errc::Protocol);
    CHECK(e.message == "control call: not valid JSON: '{\"method\": \"a.b\"'");
    CHECK(call_error("").message == "control call: not valid JSON: ''");
    CHECK(call_error("{} {}").message.find("not valid JSON") != std::string::npos);
    CHECK(call_error("{\"method\":\"a.b\",}").message.find("not valid JSON") != std::string::npos);
}

TEST_CASE("JSON that is not an object is refused by its type") {
    CHECK(call_error("[1,2]").message == "control call: a JSON array, not an object");
    CHECK(call_error("\"a.b\"").message == "control call: a JSON string, not an object");
    CHECK(call_error("null").message == "control call: a JSON null, not an object");
    CHECK(parse_reply("42").error().message == "control reply: a JSON number, not an object");
}

TEST_CASE("a call without a method is refused") {
    CHECK(call_error("{}").message == "control call: missing \"method\"");
    CHECK(call_error(R"({"parameters":{}})").message == "control call: missing \"method\"");
}

TEST_CASE("method and error names must be qualified") {
    for (const char* bad : {"Status", "", ".a", "a.", "a..b", "io.sshuttle.Daemon.Sta-tus",
                            "io.sshuttle.Daemon.Sta tus", "io/sshuttle.X", "ä.b"}) {
        CAPTURE(bad);
        CHECK_FALSE(is_qualified_name(bad));
        auto r =
            parse_call(json{{"method", bad}}.dump(-1, ' ', false, json::error_handler_t::replace));
        REQUIRE_FALSE(r);
        CHECK(r.error().message.find("is not a qualified name") != std::string::npos);
    }
    CHECK_FALSE(is_qualified_name(std::string(kMaxQualifiedName - 1, 'a') + ".b"));
    CHECK(is_qualified_name(std::string(kMaxQualifiedName - 2, 'a') + ".b"));
    CHECK(is_qualified_name("io.sshuttle.Daemon.Status"));
    CHECK(is_qualified_name("a.B2"));
    auto error = parse_reply(R"({"error":"NoSuchTunnel"})");
    REQUIRE_FALSE(error);
    CHECK(error.error().message ==
          "control reply: \"error\" 'NoSuchTunnel' is not a qualified name like "
          "io.sshuttle.Daemon.Status");
}

TEST_CASE("fields of the wrong type are refused by name") {
    struct Case {
        const char* text;
        const char* message;
    };
    const std::vector<Case> calls = {
        {R"({"method":5})", "control call: \"method\" must be a string, got a number"},
        {R"({"method":null})", "control call: \"method\" must be a string, got a null"},
        {R"({"method":"a.b","parameters":[]})",
         "control call: \"parameters\" must be an object, got a array"},
        {R"({"method":"a.b","parameters":null})",
         "control call: \"parameters\" must be an object, got a null"},
        {R"({"method":"a.b","more":1})", "control call: \"more\" must be a boolean, got a number"},
        {R"({"method":"a.b","oneway":"yes"})",
         "control call: \"oneway\" must be a boolean, got a string"},
        {R"({"method":"a.b","more":true,"oneway":true})",
         "control call: \"more\" and \"oneway\" exclude each other (a.b)"},
    };
    for (const Case& c : calls) {
        CAPTURE(c.text);
        CHECK(call_error(c.text).message == c.message);
    }
    const std::vector<Case> replies = {
        {R"({"error":7})", "control reply: \"error\" must be a string, got a number"},
        {R"({"continues":"no"})", "control reply: \"continues\" must be a boolean, got a string"},
        {R"({"parameters":"x"})", "control reply: \"parameters\" must be an object, got a string"},
        {R"({"error":"a.B","continues":true})",
         "control reply: error a.B cannot have \"continues\""},
    };
    for (const Case& c : replies) {
        CAPTURE(c.text);
        auto r = parse_reply(c.text);
        REQUIRE_FALSE(r);
        CHECK(r.error().message == c.message);
    }
}

TEST_CASE("unknown top-level fields are refused, naming the field") {
    CHECK(call_error(R"({"method":"a.b","upgrade":true})").message ==
          "control call: unknown field 'upgrade'");
    CHECK(call_error(R"({"method":"a.b","Method":"c.d"})").message ==
          "control call: unknown field 'Method'");
    CHECK(parse_reply(R"({"parameters":{},"method":"a.b"})").error().message ==
          "control reply: unknown field 'method'");
    // Fields inside parameters belong to the method's parser, not to this one.
    CHECK(parse_call(R"({"method":"a.b","parameters":{"anything":[1,{"x":null}]}})"));
}

TEST_CASE("invalid UTF-8 is refused with its offset") {
    struct Case {
        std::string text;
        std::size_t offset;
    };
    const std::vector<Case> cases = {
        {"{\"method\":\"a.b\",\"parameters\":{\"s\":\"\xff\"}}", 35},  // never valid
        {"{\"method\":\"a.\x80\"}", 13},                               // lone continuation
        {"{\"method\":\"\xc0\xaf\"}", 11},                             // overlong '/'
        {"{\"method\":\"\xed\xa0\x80\"}", 11},                         // UTF-16 surrogate
        {"{\"method\":\"\xf4\x90\x80\x80\"}", 11},                     // above U+10FFFF
        {"{\"method\":\"a.b\xe2\x82\"}", 14},                          // truncated sequence
        {"{\"method\":\"a.b\"}\xe2", 16},                              // truncated at the end
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        const Error e = call_error(c.text);
        CHECK(e.code == Errc::Protocol);
        CHECK(e.message.find("control call: not valid UTF-8 at byte " + std::to_string(c.offset)) ==
              0);
    }
    // Valid multi-byte text passes (the name check then refuses it for other reasons).
    auto ok = parse_call(
        "{\"method\":\"a.b\",\"parameters\":{\"s\":\"\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80\"}}");
    CHECK(ok);
}

TEST_CASE("an escaped lone surrogate is refused as invalid JSON") {
    CHECK(call_error(R"({"method":"a.b","parameters":{"s":"\ud800"}})")
              .message.find("not valid JSON") != std::string::npos);
}

TEST_CASE("nesting deeper than the limit is refused before parsing") {
    std::string deep = "{\"method\":\"a.b\",\"parameters\":{\"x\":";
    for (int i = 0; i < kMaxJsonDepth; ++i) deep += "[";
    for (int i = 0; i < kMaxJsonDepth; ++i) deep += "]";
    deep += "}}";
    CHECK(call_error(deep).message == "control call: JSON nested deeper than 32 levels");
    // Brackets inside strings do not count.
    CHECK(parse_call("{\"method\":\"a.b\",\"parameters\":{\"x\":\"" + std::string(100, '[') +
                     "\"}}"));
}

TEST_CASE("a message over the size limit is TooLarge") {
    auto r = parse_call(std::string(kMaxControlMessage + 1, ' '));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == Errc::TooLarge);
}

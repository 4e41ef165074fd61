#include "daemon/tcp_router.hpp"

#include <doctest/doctest.h>

using namespace sshuttle;
using namespace sshuttle::daemon;

TEST_CASE("auto prefers ssh, and takes the agent when ssh cannot or must not carry it") {
    RouteInputs in;
    in.mode = TcpPath::Auto;
    in.master_available = true;
    CHECK(choose_route(in) == Route::Ssh);
    in.master_available = false;  // every master gone or at its descriptor budget
    CHECK(choose_route(in) == Route::Agent);
    in.master_available = true;
    in.destination_on_agent = true;  // PermitOpen refused this one before
    CHECK(choose_route(in) == Route::Agent);
    in.destination_on_agent = false;
    for (SshVerdict v : {SshVerdict::Forbidden, SshVerdict::Unavailable}) {
        in.verdict = v;
        CHECK(choose_route(in) == Route::Agent);
    }
}

TEST_CASE("--tcp-path ssh never uses the agent; --tcp-path agent never uses ssh") {
    RouteInputs in;
    in.mode = TcpPath::Ssh;
    in.master_available = true;
    CHECK(choose_route(in) == Route::Ssh);
    in.master_available = false;
    CHECK(choose_route(in) == Route::Reset);
    in.mode = TcpPath::Agent;
    in.master_available = true;
    CHECK(choose_route(in) == Route::Agent);
}

TEST_CASE("a refused ssh forward is retried on the agent in auto mode; a timeout is reset") {
    CHECK(after_ssh_failure(TcpPath::Auto, false) == Route::Agent);
    CHECK(after_ssh_failure(TcpPath::Auto, true) == Route::Reset);
    CHECK(after_ssh_failure(TcpPath::Ssh, false) == Route::Reset);
    CHECK(after_ssh_failure(TcpPath::Ssh, true) == Route::Reset);
}

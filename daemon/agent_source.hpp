// The remote agent's Python source (daemon/remote/agent.py), embedded at build time.
#pragma once

#include <string_view>

namespace sshuttle::daemon {
std::string_view agent_source() noexcept;
}

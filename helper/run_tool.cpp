#include "helper/run_tool.hpp"

#include <unistd.h>

namespace sshuttle::helper {

Result<std::string> find_tool(std::string_view name) {
    for (const char* dir : {"/usr/sbin/", "/sbin/", "/usr/bin/", "/bin/"}) {
        std::string path = std::string(dir) + std::string(name);
        if (access(path.c_str(), X_OK) == 0) return path;
    }
    return Error(Errc::NotFound,
                 std::string(name) + " not found in /usr/sbin, /sbin, /usr/bin or /bin");
}

Result<ToolOutput> run_tool(const std::string& path, const std::vector<std::string>& argv,
                            std::string_view input, std::chrono::milliseconds timeout) {
    static const std::vector<std::string> kEnvironment = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                                                          "LC_ALL=C"};
    SpawnOptions options;
    options.environment = &kEnvironment;
    return run_program(path, argv, input, timeout, options);
}

}  // namespace sshuttle::helper

#include "common/logging.hpp"

#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_sinks.h>

namespace sshuttle {

spdlog::level::level_enum level_for_verbosity(int verbosity) noexcept {
    if (verbosity <= 0) return spdlog::level::info;
    if (verbosity == 1) return spdlog::level::debug;
    return spdlog::level::trace;
}

std::string_view journal_prefix(spdlog::level::level_enum level) noexcept {
    switch (level) {
        case spdlog::level::critical: return "<2>";
        case spdlog::level::err: return "<3>";
        case spdlog::level::warn: return "<4>";
        case spdlog::level::info: return "<6>";
        default: return "<7>";  // debug, trace
    }
}

bool stderr_is_journal() {
    const char* env = std::getenv("JOURNAL_STREAM");
    if (env == nullptr) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    if (::fstat(STDERR_FILENO, &st) < 0) return false;
    return st.st_dev == dev && st.st_ino == ino;
}

namespace {

// Writes "<N>message\n" to stderr; journald turns N into the entry's priority.
class JournalPrefixSink final : public spdlog::sinks::base_sink<std::mutex> {
protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        std::string line(journal_prefix(msg.level));
        line.append(msg.payload.data(), msg.payload.size());
        line.push_back('\n');
        std::fwrite(line.data(), 1, line.size(), stderr);
    }
    void flush_() override { std::fflush(stderr); }
};

}  // namespace

void setup_logging(std::string_view program, int verbosity, LogStyle style) {
    std::shared_ptr<spdlog::logger> logger;
    if (style == LogStyle::Journal) {
        logger = std::make_shared<spdlog::logger>(std::string(program),
                                                  std::make_shared<JournalPrefixSink>());
    } else {
        auto sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
        logger = std::make_shared<spdlog::logger>(std::string(program), sink);
        // Verbose runs get timestamps and levels; normal runs read like sshuttle's messages.
        logger->set_pattern(verbosity > 0 ? "%H:%M:%S.%e %n[%P] %l: %v" : "%n: %v");
    }
    logger->set_level(level_for_verbosity(verbosity));
    logger->flush_on(spdlog::level::trace);
    spdlog::set_default_logger(std::move(logger));
}

}  // namespace sshuttle

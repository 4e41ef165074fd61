// Logging setup for every program of the project, through spdlog.
//
// Two output shapes, chosen at start:
//  * plain: "sshuttled: message" on stderr, for a terminal or a test log;
//  * journal: "<N>message" on stderr, where N is the syslog priority. systemd-journald parses that
//    prefix (sd-daemon(3)), so levels survive without linking the journal API. Chosen when
//    stderr is the stream named by $JOURNAL_STREAM (i.e. we run under systemd).
// Library code (common/, proto/) logs at debug at most; errors are logged where handled.
#pragma once

#include <string_view>

#include <spdlog/spdlog.h>

namespace sshuttle {

enum class LogStyle { Plain, Journal };

// The level for a count of -v flags, as sshuttle's -v: 0 info, 1 debug, 2 or more trace.
spdlog::level::level_enum level_for_verbosity(int verbosity) noexcept;

// True when stderr is the journal stream systemd connected us to ($JOURNAL_STREAM = "dev:ino").
bool stderr_is_journal();

// Installs the default logger for this process. Call once, early in main().
void setup_logging(std::string_view program, int verbosity, LogStyle style);
inline void setup_logging(std::string_view program, int verbosity) {
    setup_logging(program, verbosity, stderr_is_journal() ? LogStyle::Journal : LogStyle::Plain);
}

// The sd-daemon priority prefix for a level ("<3>" for error ...), exposed for tests.
std::string_view journal_prefix(spdlog::level::level_enum level) noexcept;

}  // namespace sshuttle

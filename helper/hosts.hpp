// The callers' /etc/hosts lines (sshuttle's --auto-hosts), kept between marker comments that
// name the owning caller, so each caller's block can be replaced or removed alone and every
// block can be swept at start.
//
// The file's path is fixed when the helper starts (HostsFile's constructor); no request can name
// a path. Writes are atomic (a temporary file in the same directory, fsync, rename) except where
// the file is a bind mount in a read-only /etc, as the hardened unit sets it up: then it is
// rewritten in place.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.hpp"
#include "common/ip_address.hpp"
#include "helper/spec.hpp"  // valid_host_name()

namespace sshuttle::helper {

struct HostEntry {
    std::string name;  // a DNS name: labels of [A-Za-z0-9-], 1..63 bytes, no leading '-'
    IpAddress address;
    friend bool operator==(const HostEntry&, const HostEntry&) = default;
};

// Validates (name, address) pairs from a request: every name a hostname, every address an IP,
// at most kMaxHostEntries pairs.
[[nodiscard]] Result<std::vector<HostEntry>> parse_host_entries(
    const std::vector<std::pair<std::string, std::string>>& pairs);


// Pure text edits on a hosts file's contents. `owner` is a marker key the helper chooses (never
// the caller): a bus unique name such as ":1.42" or "stdio-1234".
// Returns `text` with the owner's block removed and, when `entries` is non-empty, a fresh block
// appended at the end.
std::string replace_hosts_block(std::string_view text, std::string_view owner,
                                const std::vector<HostEntry>& entries);
// Returns `text` with every block of ours removed (a start-up sweep).
std::string remove_all_hosts_blocks(std::string_view text);
// Returns `text` without the blocks whose owner key satisfies `stale`.
using StaleOwner = std::function<bool(std::string_view owner)>;
std::string remove_hosts_blocks_if(std::string_view text, const StaleOwner& stale);

// Which blocks a starting helper may sweep. Blocks of "stdio-<pid>" helpers whose process is
// gone are always stale; on the system bus (`bus_mode`) so are all blocks keyed by a bus name,
// since the bus helper that wrote them is the one now starting. A live stdio helper's block is
// never touched.
bool stale_hosts_owner(std::string_view owner, bool bus_mode);

class HostsFile {
  public:
    explicit HostsFile(std::string path) : path_(std::move(path)) {}
    const std::string& path() const noexcept { return path_; }

    [[nodiscard]] Result<void> set(std::string_view owner, const std::vector<HostEntry>& entries);
    [[nodiscard]] Result<void> clear(std::string_view owner) { return set(owner, {}); }
    [[nodiscard]] Result<void> sweep() {
        return sweep_if([](std::string_view) { return true; });
    }
    [[nodiscard]] Result<void> sweep_if(const StaleOwner& stale);

  private:
    // Replaces `owner`'s block with `entries`, or (entries == nullptr) drops the stale blocks.
    [[nodiscard]] Result<void> rewrite(std::string_view owner,
                                       const std::vector<HostEntry>* entries,
                                       const StaleOwner* stale = nullptr);
    // The fallback when the file cannot be replaced by rename (a bind-mounted file in a
    // read-only /etc): one write from offset 0 and a truncate, not atomic for readers.
    [[nodiscard]] Result<void> rewrite_in_place(std::string_view text);
    std::string path_;
};

// The path the helper edits: /etc/hosts, or $SSHUTTLE_HELPER_HOSTS_FILE when set at start (for
// tests; the helper reads it once from its own environment, which callers cannot reach).
std::string default_hosts_path();

}  // namespace sshuttle::helper

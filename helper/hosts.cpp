#include "helper/hosts.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "common/unique_fd.hpp"
#include "helper/methods.hpp"

namespace sshuttle::helper {

namespace {

constexpr std::string_view kBeginMarker = "# sshuttle-helper begin ";
constexpr std::string_view kEndMarker = "# sshuttle-helper end ";
// A hosts file bigger than this is not ours to rewrite in memory.
constexpr std::size_t kMaxHostsFileBytes = 16 * 1024 * 1024;

// Splits into lines keeping every byte; a missing final newline is added by the caller.
std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        auto nl = text.find('\n');
        if (nl == std::string_view::npos) {
            lines.push_back(text);
            break;
        }
        lines.push_back(text.substr(0, nl));
        text.remove_prefix(nl + 1);
    }
    return lines;
}

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

// Drops the lines from a begin marker whose owner `matches` to the next end marker, both
// included. A begin marker without an end is left alone: never eat a hand-edited file's tail.
std::string drop_blocks(std::string_view text,
                        const std::function<bool(std::string_view)>& matches) {
    auto lines = split_lines(text);
    std::string out;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        if (starts_with(lines[i], kBeginMarker)) {
            auto who = lines[i].substr(kBeginMarker.size());
            if (matches(who)) {
                std::size_t j = i + 1;
                while (j < lines.size() && !starts_with(lines[j], kEndMarker)) ++j;
                if (j < lines.size() && lines[j].substr(kEndMarker.size()) == who) {
                    i = j;
                    continue;
                }
            }
        }
        out.append(lines[i]);
        out.push_back('\n');
    }
    return out;
}

Result<std::string> read_file(const std::string& path) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        if (errno == ENOENT) return std::string();
        return Error::from_errno("open " + path);
    }
    std::string text;
    char buf[65536];
    for (;;) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("read " + path);
        }
        if (n == 0) break;
        text.append(buf, static_cast<std::size_t>(n));
        if (text.size() > kMaxHostsFileBytes) return Error(Errc::TooLarge, path + " is too large");
    }
    return text;
}

Result<void> write_all(int fd, std::string_view data, const std::string& what) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("write " + what);
        }
        data.remove_prefix(static_cast<std::size_t>(n));
    }
    return ok();
}

}  // namespace

Result<std::vector<HostEntry>> parse_host_entries(
    const std::vector<std::pair<std::string, std::string>>& pairs) {
    if (pairs.size() > kMaxHostEntries)
        return Error(Errc::TooLarge,
                     "more than " + std::to_string(kMaxHostEntries) + " hosts entries");
    std::vector<HostEntry> out;
    out.reserve(pairs.size());
    for (const auto& [name, address] : pairs) {
        if (!valid_host_name(name))
            return Error(Errc::InvalidArgument,
                         "hosts entry: '" + name.substr(0, 64) + "' is not a valid host name");
        auto ip = IpAddress::parse(address);
        if (!ip)
            return Error(Errc::InvalidArgument, "hosts entry for '" + name + "': '" +
                                                    address.substr(0, 64) +
                                                    "' is not an IP address");
        out.push_back(HostEntry{name, *ip});
    }
    return out;
}

std::string replace_hosts_block(std::string_view text, std::string_view owner,
                                const std::vector<HostEntry>& entries) {
    std::string out = drop_blocks(text, [owner](std::string_view who) { return who == owner; });
    if (entries.empty()) return out;
    out.append(kBeginMarker).append(owner).push_back('\n');
    for (const auto& e : entries) out.append(e.address.to_string() + " " + e.name + "\n");
    out.append(kEndMarker).append(owner).push_back('\n');
    return out;
}

std::string remove_all_hosts_blocks(std::string_view text) {
    return drop_blocks(text, [](std::string_view) { return true; });
}

std::string remove_hosts_blocks_if(std::string_view text, const StaleOwner& stale) {
    return drop_blocks(text, stale);
}

bool stale_hosts_owner(std::string_view owner, bool bus_mode) {
    constexpr std::string_view kStdio = "stdio-";
    if (owner.substr(0, kStdio.size()) == kStdio) {
        const std::string digits(owner.substr(kStdio.size()));
        if (digits.empty() || digits.size() > 9 ||
            digits.find_first_not_of("0123456789") != std::string::npos)
            return false;
        const pid_t pid = static_cast<pid_t>(std::stol(digits));
        return pid > 0 && ::kill(pid, 0) != 0 && errno == ESRCH;
    }
    return bus_mode && !owner.empty() && owner.front() == ':';
}

Result<void> HostsFile::set(std::string_view owner, const std::vector<HostEntry>& entries) {
    if (owner.empty()) return Error(Errc::Internal, "hosts owner key is empty");
    return rewrite(owner, &entries);
}

Result<void> HostsFile::sweep_if(const StaleOwner& stale) {
    return rewrite({}, nullptr, &stale);
}

Result<void> HostsFile::rewrite(std::string_view owner, const std::vector<HostEntry>* entries,
                                const StaleOwner* stale) {
    auto old_text = read_file(path_);
    if (!old_text) return std::move(old_text).error();
    std::string new_text = entries ? replace_hosts_block(*old_text, owner, *entries)
                                   : remove_hosts_blocks_if(*old_text, *stale);
    if (new_text == *old_text) return ok();

    // Keep the file's mode; /etc/hosts must stay world-readable for the resolver.
    mode_t mode = 0644;
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0) mode = st.st_mode & 07777;

    std::string tmp = path_ + ".sshuttle-XXXXXX";
    UniqueFd fd(::mkostemp(tmp.data(), O_CLOEXEC));
    if (!fd) {
        // A read-only /etc with the hosts file bind-mounted writable (the hardened unit) has no
        // room for a temporary file: rewrite in place.
        if (errno == EROFS || errno == EACCES || errno == EPERM) return rewrite_in_place(new_text);
        return Error::from_errno("create temporary file beside " + path_);
    }
    auto written = write_all(fd.get(), new_text, tmp);
    if (written && ::fchmod(fd.get(), mode) != 0) written = Error::from_errno("chmod " + tmp);
    if (written && ::fsync(fd.get()) != 0) written = Error::from_errno("fsync " + tmp);
    if (written && ::rename(tmp.c_str(), path_.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        // A mount point (bind-mounted file) cannot be replaced by rename.
        if (err == EBUSY || err == EXDEV || err == EROFS) return rewrite_in_place(new_text);
        return Error::from_errno("rename " + tmp + " to " + path_, err);
    }
    if (!written) ::unlink(tmp.c_str());
    return written;
}

Result<void> HostsFile::rewrite_in_place(std::string_view text) {
    UniqueFd fd(::open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return Error::from_errno("open " + path_ + " for writing");
    auto written = write_all(fd.get(), text, path_);
    if (written && ::ftruncate(fd.get(), static_cast<off_t>(text.size())) != 0)
        written = Error::from_errno("truncate " + path_);
    if (written && ::fsync(fd.get()) != 0) written = Error::from_errno("fsync " + path_);
    return written;
}

std::string default_hosts_path() {
    const char* env = std::getenv("SSHUTTLE_HELPER_HOSTS_FILE");
    if (env != nullptr && env[0] == '/') return env;
    return "/etc/hosts";
}

}  // namespace sshuttle::helper

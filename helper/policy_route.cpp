#include "helper/policy_route.hpp"

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <vector>

#include "common/unique_fd.hpp"
#include "helper/render.hpp"

namespace sshuttle::helper {
namespace {

constexpr std::size_t align4(std::size_t n) { return (n + 3) & ~std::size_t{3}; }

// One netlink request: header, family header, attributes, built with memcpy (no casts into
// an unaligned buffer).
class Request {
public:
    Request(std::uint16_t type, std::uint16_t flags, const void* family_header, std::size_t size) {
        nlmsghdr header{};
        header.nlmsg_type = type;
        header.nlmsg_flags = static_cast<std::uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
        header.nlmsg_seq = 1;
        append(&header, sizeof header);
        append(family_header, size);
    }

    void attr_u32(std::uint16_t type, std::uint32_t value) {
        rtattr attr{};
        attr.rta_type = type;
        attr.rta_len = static_cast<unsigned short>(sizeof(rtattr) + sizeof value);
        append(&attr, sizeof attr);
        append(&value, sizeof value);
    }

    std::vector<std::uint8_t> finish() {
        auto len = static_cast<std::uint32_t>(bytes_.size());
        std::memcpy(bytes_.data() + offsetof(nlmsghdr, nlmsg_len), &len, sizeof len);
        return bytes_;
    }

private:
    void append(const void* data, std::size_t size) {
        const auto* p = static_cast<const std::uint8_t*>(data);
        bytes_.insert(bytes_.end(), p, p + size);
        bytes_.resize(align4(bytes_.size()), 0);
    }
    std::vector<std::uint8_t> bytes_;
};

// Sends one request and returns the kernel's answer as an errno (0 = success).
Result<int> talk(const std::vector<std::uint8_t>& message) {
    UniqueFd fd(socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) return Error::from_errno("netlink socket");
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (sendto(fd.get(), message.data(), message.size(), 0, reinterpret_cast<sockaddr*>(&kernel),
               sizeof kernel) < 0)
        return Error::from_errno("netlink send");
    // The ack is small; a bounded number of reads skips anything unexpected.
    alignas(nlmsghdr) std::array<std::uint8_t, 8192> buf;
    for (int attempt = 0; attempt < 16; ++attempt) {
        ssize_t got = recv(fd.get(), buf.data(), buf.size(), 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return Error::from_errno("netlink recv");
        }
        std::size_t offset = 0;
        while (offset + sizeof(nlmsghdr) <= static_cast<std::size_t>(got)) {
            nlmsghdr header;
            std::memcpy(&header, buf.data() + offset, sizeof header);
            if (header.nlmsg_len < sizeof header || offset + header.nlmsg_len > static_cast<std::size_t>(got))
                return Error(Errc::Protocol, "netlink: truncated answer");
            if (header.nlmsg_type == NLMSG_ERROR) {
                nlmsgerr answer;
                if (header.nlmsg_len < sizeof header + sizeof answer)
                    return Error(Errc::Protocol, "netlink: short error message");
                std::memcpy(&answer, buf.data() + offset + sizeof header, sizeof answer);
                return -answer.error;
            }
            offset += align4(header.nlmsg_len);
        }
    }
    return Error(Errc::Protocol, "netlink: no acknowledgement");
}

std::uint8_t af(Family family) { return family == Family::V4 ? AF_INET : AF_INET6; }

std::vector<std::uint8_t> rule_message(std::uint16_t type, std::uint16_t flags, Family family) {
    fib_rule_hdr rule{};
    rule.family = af(family);
    rule.table = RT_TABLE_UNSPEC;  // the table number does not fit in 8 bits: FRA_TABLE
    rule.action = FR_ACT_TO_TBL;
    Request request(type, flags, &rule, sizeof rule);
    request.attr_u32(FRA_PRIORITY, kTproxyRulePriority);
    request.attr_u32(FRA_FWMARK, kTproxyMark);
    request.attr_u32(FRA_FWMASK, 0xffffffffU);
    request.attr_u32(FRA_TABLE, kTproxyRouteTable);
    return request.finish();
}

std::vector<std::uint8_t> route_message(std::uint16_t type, std::uint16_t flags, Family family,
                                        std::uint32_t lo_index) {
    rtmsg route{};
    route.rtm_family = af(family);
    route.rtm_table = RT_TABLE_UNSPEC;
    route.rtm_protocol = RTPROT_BOOT;
    route.rtm_scope = RT_SCOPE_HOST;
    route.rtm_type = RTN_LOCAL;
    Request request(type, flags, &route, sizeof route);
    request.attr_u32(RTA_TABLE, kTproxyRouteTable);
    request.attr_u32(RTA_OIF, lo_index);
    return request.finish();
}

Result<std::uint32_t> loopback_index() {
    unsigned index = if_nametoindex("lo");
    if (index == 0) return Error::from_errno("if_nametoindex(lo)");
    return index;
}

const char* fam(Family family) { return family == Family::V4 ? "IPv4" : "IPv6"; }

Error netlink_error(const std::string& what, int err) {
    return Error(Errc::Backend, what + ": " + std::strerror(err), err);
}

}  // namespace

Result<void> add_tproxy_routing(Family family) {
    auto lo = loopback_index();
    if (!lo) return lo.error();
    const auto create = static_cast<std::uint16_t>(NLM_F_CREATE | NLM_F_EXCL);
    auto route = talk(route_message(RTM_NEWROUTE, create, family, *lo));
    if (!route) return route.error();
    if (*route != 0 && *route != EEXIST)
        return netlink_error(std::string("adding the ") + fam(family) + " tproxy local route", *route);
    const bool added_route = *route == 0;
    auto rule = talk(rule_message(RTM_NEWRULE, create, family));
    int err = rule ? *rule : EIO;
    if (err == 0 || err == EEXIST) return ok();
    if (added_route) {
        auto undo = talk(route_message(RTM_DELROUTE, 0, family, *lo));
        (void)undo;
    }
    if (!rule) return rule.error();
    return netlink_error(std::string("adding the ") + fam(family) + " tproxy fwmark rule", err);
}

Result<void> remove_tproxy_routing(Family family) {
    auto lo = loopback_index();
    if (!lo) return lo.error();
    // Bounded: a duplicate (added by hand) is removed too, but never loop forever.
    for (int i = 0; i < 8; ++i) {
        auto rule = talk(rule_message(RTM_DELRULE, 0, family));
        if (!rule) return rule.error();
        if (*rule == ENOENT || *rule == ESRCH || *rule == EAFNOSUPPORT) break;
        if (*rule != 0)
            return netlink_error(std::string("removing the ") + fam(family) + " tproxy fwmark rule",
                                 *rule);
    }
    for (int i = 0; i < 8; ++i) {
        auto route = talk(route_message(RTM_DELROUTE, 0, family, *lo));
        if (!route) return route.error();
        if (*route == ESRCH || *route == ENOENT || *route == EAFNOSUPPORT) break;
        if (*route != 0)
            return netlink_error(std::string("removing the ") + fam(family) + " tproxy local route",
                                 *route);
    }
    return ok();
}

}  // namespace sshuttle::helper

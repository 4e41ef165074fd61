#include "helper/caps.hpp"

#include <sys/prctl.h>

#include <algorithm>
#include <memory>

namespace sshuttle::helper {

namespace {

struct CapFree {
    void operator()(void* p) const noexcept { cap_free(p); }
};
using CapPtr = std::unique_ptr<std::remove_pointer_t<cap_t>, CapFree>;

bool keeps(const CapPlan& plan, cap_value_t c) {
    return std::find(plan.keep.begin(), plan.keep.end(), c) != plan.keep.end();
}

}  // namespace

CapPlan capability_plan(bool net_raw) {
    CapPlan plan{{CAP_NET_ADMIN}};
    if (net_raw) plan.keep.push_back(CAP_NET_RAW);
    return plan;
}

Result<void> check_capabilities(const std::vector<cap_value_t>& have, const CapPlan& plan) {
    for (cap_value_t c : plan.keep) {
        if (std::find(have.begin(), have.end(), c) == have.end()) {
            char* name = cap_to_name(c);
            std::string text = name ? name : std::to_string(c);
            cap_free(name);
            return Error(Errc::PermissionDenied, "sshuttle-helper needs " + text +
                                                     " (run as root or grant it in the unit)");
        }
    }
    return ok();
}

Result<void> restrict_capabilities(const CapPlan& plan) {
    CapPtr current(cap_get_proc());
    if (!current) return Error::from_errno("cap_get_proc");
    std::vector<cap_value_t> have;
    for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c) {
        cap_flag_value_t v = CAP_CLEAR;
        if (cap_get_flag(current.get(), c, CAP_PERMITTED, &v) == 0 && v == CAP_SET)
            have.push_back(c);
    }
    auto checked = check_capabilities(have, plan);
    if (!checked) return checked;

    // The bounding set first: dropping from it needs CAP_SETPCAP, which goes last. Without
    // CAP_SETPCAP (started with only what the unit grants) the unit's bounding set already
    // holds only what it granted.
    const bool can_setpcap = std::find(have.begin(), have.end(), CAP_SETPCAP) != have.end();
    if (can_setpcap) {
        for (cap_value_t c = 0; c <= CAP_LAST_CAP; ++c) {
            if (keeps(plan, c) || !CAP_IS_SUPPORTED(c)) continue;
            if (cap_drop_bound(c) != 0)
                return Error::from_errno("drop capability from bounding set");
        }
    }
    CapPtr next(cap_init());
    if (!next) return Error::from_errno("cap_init");
    const auto& keep = plan.keep;
    for (cap_flag_t flag : {CAP_EFFECTIVE, CAP_PERMITTED}) {
        if (cap_set_flag(next.get(), flag, static_cast<int>(keep.size()), keep.data(), CAP_SET) !=
            0)
            return Error::from_errno("cap_set_flag");
    }
    if (cap_set_proc(next.get()) != 0) return Error::from_errno("cap_set_proc");
    // No ambient capabilities survive into children; a child gets ours only as uid 0, through
    // the bounding set narrowed above.
    if (CAP_AMBIENT_SUPPORTED()) cap_reset_ambient();
    return ok();
}

std::string current_capabilities() {
    CapPtr current(cap_get_proc());
    if (!current) return "?";
    char* text = cap_to_text(current.get(), nullptr);
    std::string out = text ? text : "?";
    cap_free(text);
    return out;
}

}  // namespace sshuttle::helper

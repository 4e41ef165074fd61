// The in-memory backend for tests of the D-Bus layer: same contract as the real ones.
#include <algorithm>

#include "helper/backend.hpp"

namespace sshuttle::helper {
namespace {

class FakeBackend final : public FirewallBackend {
public:
    explicit FakeBackend(std::shared_ptr<FakeBackendState> state) : state_(std::move(state)) {}

    Result<void> apply(const TunnelSpec& spec) override {
        state_->log.push_back("apply " + spec.name);
        if (state_->fail_next_apply) {
            Error error = std::move(*state_->fail_next_apply);
            state_->fail_next_apply.reset();
            return error;
        }
        if (auto valid = validate(spec); !valid) return valid.error();
        if (state_->installed.contains(spec.name) ||
            std::find(state_->leftovers.begin(), state_->leftovers.end(), spec.name) !=
                state_->leftovers.end())
            return Error(Errc::Backend, "tunnel " + spec.name + " is already installed");
        state_->installed.emplace(spec.name, spec);
        return ok();
    }

    Result<void> remove(const std::string& name) override {
        state_->log.push_back("remove " + name);
        if (state_->fail_next_remove) {
            Error error = std::move(*state_->fail_next_remove);
            state_->fail_next_remove.reset();
            return error;
        }
        state_->installed.erase(name);
        std::erase(state_->leftovers, name);
        return ok();
    }

    Result<std::vector<std::string>> installed() override {
        std::vector<std::string> names = state_->leftovers;
        for (const auto& [name, spec] : state_->installed) names.push_back(name);
        std::sort(names.begin(), names.end());
        return names;
    }

    Result<std::vector<std::string>> sweep() override {
        state_->log.push_back("sweep");
        std::vector<std::string> removed = std::move(state_->leftovers);
        state_->leftovers.clear();
        return removed;
    }

private:
    std::shared_ptr<FakeBackendState> state_;
};

}  // namespace

std::unique_ptr<FirewallBackend> make_fake_backend(std::shared_ptr<FakeBackendState> state) {
    return std::make_unique<FakeBackend>(std::move(state));
}

std::unique_ptr<FirewallBackend> make_fake_backend() {
    return make_fake_backend(std::make_shared<FakeBackendState>());
}

}  // namespace sshuttle::helper

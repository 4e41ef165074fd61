// Replaces the global operator new of the proto_test binary with a counting one (allowed by the
// standard: [replacement.functions]). In its own file so that no test code is inlined with it.
#include <atomic>
#include <cstdlib>
#include <new>

#include "proto/testing.hpp"

namespace {
std::atomic<long> g_allocations{0};
}  // namespace

long sshuttle::proto::testing::allocation_count() noexcept {
    return g_allocations.load(std::memory_order_relaxed);
}

void* operator new(std::size_t size) {
    g_allocations.fetch_add(1, std::memory_order_relaxed);
    if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
    std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
    std::free(p);
}

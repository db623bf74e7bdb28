// The allocator behind every tg::Array: a per-thread cache of freed blocks by size class.
// A training step frees and allocates the same sizes again and again; served from the cache
// they cost a few nanoseconds instead of a malloc (and, for blocks past glibc's mmap
// threshold, page faults on every step: STACK-NOTES pitfall 3). Memory stays flat.
#pragma once

#include <cstddef>

namespace tg {

namespace detail {
void* cached_alloc(std::size_t bytes);  // 64-byte aligned; throws std::bad_alloc
void cached_free(void* p, std::size_t bytes) noexcept;
}  // namespace detail

// Bytes held in this thread's cache (freed, ready for reuse), and a way to give them back.
std::size_t cached_bytes();
void release_cached_memory();
// Blocks this thread has taken from the system so far: flat from step to step in a steady loop.
std::size_t system_allocations();

template <class T>
struct CachingAllocator {
    using value_type = T;
    CachingAllocator() noexcept = default;
    template <class U>
    CachingAllocator(const CachingAllocator<U>&) noexcept {}
    T* allocate(std::size_t n) { return static_cast<T*>(detail::cached_alloc(n * sizeof(T))); }
    void deallocate(T* p, std::size_t n) noexcept { detail::cached_free(p, n * sizeof(T)); }
    template <class U>
    bool operator==(const CachingAllocator<U>&) const noexcept { return true; }
    template <class U>
    bool operator!=(const CachingAllocator<U>&) const noexcept { return false; }
};

}  // namespace tg

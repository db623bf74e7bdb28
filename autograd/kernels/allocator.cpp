#include "autograd/kernels/allocator.hpp"

#include <array>
#include <cstdlib>
#include <new>
#include <vector>

#if __has_include(<sanitizer/asan_interface.h>)
#include <sanitizer/asan_interface.h>  // its poisoning macros do nothing without AddressSanitizer
#else
#define ASAN_POISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#define ASAN_UNPOISON_MEMORY_REGION(p, n) ((void)(p), (void)(n))
#endif

namespace tg {

namespace {

// Under AddressSanitizer a cached block is poisoned, and a block handed out is addressable
// only up to the bytes asked for: the cache hides neither a use after free nor an overflow
// into a block's slack. Without it these are no-ops.
void poison(void* p, std::size_t bytes) { ASAN_POISON_MEMORY_REGION(p, bytes); }
void unpoison(void* p, std::size_t bytes) { ASAN_UNPOISON_MEMORY_REGION(p, bytes); }

constexpr std::size_t alignment = 64;
constexpr std::size_t max_cached_block = std::size_t(1) << 30;
constexpr std::size_t cache_limit = std::size_t(256) << 20;  // bytes kept per thread at most

// Classes: 64 bytes, then four per power of two (at most 25% slack per block).
std::size_t size_class(std::size_t bytes, std::size_t& rounded) {
    if (bytes <= 64) {
        rounded = 64;
        return 0;
    }
    const int e = 63 - __builtin_clzll(bytes - 1);  // 2^e < bytes <= 2^(e+1), e >= 6
    const std::size_t step = std::size_t(1) << (e - 2);
    const std::size_t q = (bytes + step - 1) / step;  // 5..8
    rounded = q * step;
    return std::size_t(e - 6) * 4 + (q - 5) + 1;
}

// The block size of a class (the inverse of size_class).
std::size_t class_bytes(std::size_t cls) {
    if (cls == 0) return 64;
    const std::size_t e = (cls - 1) / 4 + 6, q = (cls - 1) % 4 + 5;
    return q << (e - 2);
}

struct Cache {
    std::array<std::vector<void*>, 4 * 64> free_blocks;
    std::size_t bytes = 0;
    void release() {
        for (std::size_t cls = 0; cls < free_blocks.size(); ++cls) {
            for (void* p : free_blocks[cls]) {
                unpoison(p, class_bytes(cls));
                std::free(p);
            }
            free_blocks[cls].clear();
        }
        bytes = 0;
    }
    ~Cache();
};

// A plain thread_local stays readable while other thread-locals are destroyed, so blocks
// allocated or freed after the cache is gone go straight to malloc.
enum class CacheState { unused, alive, dead };
thread_local CacheState cache_state = CacheState::unused;
thread_local std::size_t system_allocation_count = 0;
Cache::~Cache() {
    release();
    cache_state = CacheState::dead;
}
Cache& cache() {
    thread_local Cache c;
    if (cache_state == CacheState::unused) cache_state = CacheState::alive;
    return c;
}

}  // namespace

namespace detail {

void* cached_alloc(std::size_t bytes) {
    std::size_t rounded;
    const std::size_t cls = size_class(bytes, rounded);
    if (rounded <= max_cached_block && cache_state != CacheState::dead) {
        Cache& c = cache();
        auto& list = c.free_blocks[cls];
        if (!list.empty()) {
            void* p = list.back();
            list.pop_back();
            c.bytes -= rounded;
            unpoison(p, bytes);
            return p;
        }
    }
    void* p = nullptr;
    if (posix_memalign(&p, alignment, rounded) != 0) throw std::bad_alloc();
    ++system_allocation_count;
    poison(static_cast<char*>(p) + bytes, rounded - bytes);
    return p;
}

void cached_free(void* p, std::size_t bytes) noexcept {
    if (!p) return;
    std::size_t rounded;
    const std::size_t cls = size_class(bytes, rounded);
    if (rounded <= max_cached_block && cache_state == CacheState::alive) {
        Cache& c = cache();
        if (c.bytes + rounded <= cache_limit) {
            try {
                c.free_blocks[cls].push_back(p);
                c.bytes += rounded;
                poison(p, rounded);
                return;
            } catch (...) {  // no room to remember it: give it back
            }
        }
    }
    unpoison(p, rounded);
    std::free(p);
}

}  // namespace detail

std::size_t cached_bytes() { return cache_state == CacheState::alive ? cache().bytes : 0; }
std::size_t system_allocations() { return system_allocation_count; }
void release_cached_memory() {
    if (cache_state == CacheState::alive) cache().release();
}

}  // namespace tg

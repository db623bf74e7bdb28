// A training step frees and allocates the same sizes again and again. glibc serves blocks of
// 128 KB and more (a 392x200 weight gradient is 314 KB) with mmap and hands freed memory at the
// top of its heap back to the OS, so the next step faults the same pages in again: a GEMM into
// a fresh array ran at 36 GFLOP/s instead of 95 (STACK-NOTES pitfall 3). With both thresholds
// raised such blocks stay in the heap and are reused: memory stays flat, without a page fault
// per step. This is process-wide: tapegrad does it once, at its first tensor, and leaves it to
// the user when the user chose glibc's malloc tunables (GLIBC_TUNABLES=glibc.malloc...,
// MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_). Arrays above the mmap threshold (32 MB, a
// whole data set) still come from mmap and go back to the OS when freed.
#include "autograd/kernels/memory.hpp"

#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace tg::kernels {

bool keep_freed_memory() {
#if defined(__GLIBC__)
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    if ((tunables && std::strstr(tunables, "glibc.malloc.")) || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
        std::getenv("MALLOC_TRIM_THRESHOLD_"))
        return false;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);  // the heap keeps up to 64 MB of freed memory at its top
    return true;
#else
    return false;
#endif
}

}  // namespace tg::kernels

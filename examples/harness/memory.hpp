// The memory figures of the examples and benchmarks: how much of the process is resident.
#pragma once

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <fstream>
#include <string>

namespace harness::memory {

// The resident set size (VmRSS of /proc/self/status) in kB; -1 where it cannot be read (not Linux).
inline long rss_kb() {
    std::ifstream status("/proc/self/status");
    std::string key;
    long value = 0;
    while (status >> key) {
        if (key == "VmRSS:") return status >> value ? value : -1;
        status.ignore(1 << 12, '\n');
    }
    return -1;
}

// Hands the heap's free pages back to the system. glibc keeps freed memory for reuse, and its
// mmap threshold rises after each large free, so large buffers that come and go once in a
// while (a checkpoint's, every epoch) land in the heap at varying places and leave free
// pages resident: RSS creeps by a few MB over the first epochs. No-op without glibc.
inline void release_free_heap() {
#if defined(__GLIBC__)
    malloc_trim(0);
#endif
}

}  // namespace harness::memory

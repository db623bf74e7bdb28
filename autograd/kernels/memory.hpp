// glibc's allocator, tuned once for a training loop (memory.cpp).
#pragma once

namespace tg::kernels {

// Raises glibc's mmap and trim thresholds (mallopt), once, at the first tensor, unless the
// user set glibc's malloc tunables. Returns whether it did.
bool keep_freed_memory();

}  // namespace tg::kernels

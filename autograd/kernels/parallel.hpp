// The parts GEMMs and the optimizers' updates split into, run by OpenMP (parallel.cpp). On the
// training step of the structured-output example (batch 100, 392-200-200-392) on 2 free cores
// this gains 1.25-1.3x; OpenBLAS's own pool 1.05-1.1x (it waits for each of its threads, and
// these GEMMs are small).
#pragma once

#include <cstddef>
#include <type_traits>

namespace tg::detail {

// Runs f(part) for part = 0 .. parts - 1 and returns when all are done. Parts go to whichever
// thread of the team is free, so a part's result must depend on `part` only. Runs them one
// after the other on the calling thread when set_num_threads is 1 or when called from inside
// a part. An exception thrown by a part is rethrown here (the first one; the other parts
// still run).
template <class F>
void parallel_for(std::size_t parts, F&& f);

std::size_t pool_threads();  // set_num_threads' count (1 before any call)
void run_parts(std::size_t parts, void (*fn)(void*, std::size_t), void* ctx);

template <class F>
void parallel_for(std::size_t parts, F&& f) {
    run_parts(parts, [](void* ctx, std::size_t part) { (*static_cast<std::remove_reference_t<F>*>(ctx))(part); },
              const_cast<void*>(static_cast<const void*>(&f)));
}

// [begin, end) of part p when n items are cut into `parts` near-equal pieces whose borders are
// multiples of `align` (SIMD widths, GEMM kernel tiles).
inline void part_range(std::size_t n, std::size_t parts, std::size_t p, std::size_t align, std::size_t& begin,
                       std::size_t& end) {
    const auto border = [&](std::size_t q) {
        const std::size_t b = q >= parts ? n : (n * q / parts + align / 2) / align * align;
        return b < n ? b : n;
    };
    begin = border(p);
    end = border(p + 1);
}

// f(begin, end) over [0, n) cut into one piece per thread, or whole when n < grain (where
// waking a worker costs more than it saves). Borders are multiples of 16 floats: one cache
// line, so that no two threads write the same line.
template <class F>
void parallel_range(std::size_t n, std::size_t grain, F&& f) {
    const std::size_t parts = n >= grain ? pool_threads() : 1;
    parallel_for(parts, [&](std::size_t p) {
        std::size_t begin, end;
        part_range(n, parts, p, 16, begin, end);
        if (begin < end) f(begin, end);
    });
}

}  // namespace tg::detail

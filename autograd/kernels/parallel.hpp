// tapegrad's own threads. set_num_threads(n) (autograd/threads.hpp) gives the pool n threads: the caller
// and n - 1 workers. Large GEMMs and the optimizers' updates split their work into parts over
// them, with OpenBLAS single-threaded inside each part. On the training step of the
// structured-output example (batch 100, 392-200-200-392) on 2 free cores this gains 1.25-1.3x,
// OpenBLAS's own pool 1.05-1.1x. When another program takes a core, OpenBLAS's threads wait
// for each other (0.4-0.6x of one thread); here parts go to whichever thread is free (0.75-1x).
// Workers spin for a moment between regions (a training step starts one every ~0.1 ms), then
// sleep. OpenMP (libgomp, `omp parallel for` over the same parts) was tried in its place: the
// same on one thread, but on a busy machine (load 15 on the 2 cores) 2 threads ran 20-50
// steps/s against 200-450 here, since every region ends in a barrier that waits for a worker
// the OS has not scheduled.
#pragma once

#include <cstddef>
#include <cstdint>
#include <type_traits>

namespace tg::kernels {

// Runs f(part) for part = 0 .. parts - 1 and returns when all are done. The caller runs parts
// too; which thread runs which part varies, so a part's result must depend on `part` only.
// Runs them one after the other on the calling thread when the pool has one thread, when
// called from inside a part, or while another thread uses the pool. An exception thrown by a
// part is rethrown here (the first one; the other parts still run).
template <class F>
void parallel_for(std::size_t parts, F&& f);

std::size_t pool_threads();            // the pool's threads, including the caller
bool inside_part();                    // whether this thread is running a part (where nothing fans out)
std::size_t pool_sleepers();           // workers asleep (not spinning); for the tests
void set_pool_threads(std::size_t n);  // n >= 1; called by set_num_threads
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

// 64 mutexes striped by address, held together while alive: the locks of mask's set bits,
// taken in order (so two holders never deadlock). bit(p) is the stripe of the object at p.
class StripedLocks {
public:
    explicit StripedLocks(std::uint64_t mask);
    ~StripedLocks();
    StripedLocks(const StripedLocks&) = delete;
    StripedLocks& operator=(const StripedLocks&) = delete;
    static std::uint64_t bit(const void* p) {
        return std::uint64_t(1) << ((reinterpret_cast<std::uintptr_t>(p) >> 6) % 64);
    }

private:
    std::uint64_t mask_;
};

}  // namespace tg::kernels

#include "autograd/kernels/parallel.hpp"
#include "autograd/threads.hpp"

#include <cblas.h>  // OpenBLAS's own functions; kept apart from xtensor-blas (blas.cpp): they clash
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>

namespace tg {

namespace {
std::atomic<std::size_t> thread_count{1};
}

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
    thread_count.store(static_cast<std::size_t>(n));
    openblas_set_num_threads(1);  // parallel_for splits the GEMMs; OpenBLAS runs inside each part
}
// Before any set_num_threads, OpenBLAS's own default (its pool, sized by OPENBLAS_NUM_THREADS or
// the cores) does the threading.
int num_threads() {
    const std::size_t n = thread_count.load();
    return n > 1 ? static_cast<int>(n) : openblas_get_num_threads();
}
const char* blas_core() { return openblas_get_corename(); }

namespace detail {

std::size_t pool_threads() { return thread_count.load(); }

// The team's size is given per region (not omp_set_num_threads, which is the calling thread's
// own setting), so every thread that calls in uses set_num_threads' count. Dynamic schedule:
// a worker the OS has not scheduled yet (on a busy machine) delays nothing, the caller takes
// its part.
void run_parts(std::size_t parts, void (*fn)(void*, std::size_t), void* ctx) {
    const int threads = static_cast<int>(std::min(parts, thread_count.load()));
    if (threads <= 1 || omp_in_parallel()) {
        for (std::size_t p = 0; p < parts; ++p) fn(ctx, p);
        return;
    }
    std::exception_ptr error;
    std::mutex error_mutex;
    const long n = static_cast<long>(parts);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (long p = 0; p < n; ++p) {
        try {
            fn(ctx, static_cast<std::size_t>(p));
        } catch (...) {  // an exception must not leave an OpenMP region
            std::lock_guard<std::mutex> lock(error_mutex);
            if (!error) error = std::current_exception();
        }
    }
    if (error) std::rethrow_exception(error);
}

}  // namespace detail

}  // namespace tg

// The GEMMs, through xtensor-blas's cxxblas layer: a direct call of cblas_sgemm (the raw
// cblas_sgemm gave the same steps/s), with the transposes as flags and beta = 1 to accumulate.
#include <xtensor-blas/xblas_config.hpp>  // before cxxblas: it selects the CBLAS back end
#include <xflens/cxxblas/cxxblas.cxx>

#include <cstdio>
#include <cstring>
#include <new>

#include <sys/mman.h>
#include <sys/resource.h>

#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/parallel.hpp"
#include "autograd/threads.hpp"

namespace tg::kernels {

namespace {

// OpenBLAS 0.3.21 falls back to its SSE3 Prescott kernels on CPUs it does not know (Intel
// Sapphire and Emerald Rapids): SGEMM at ~30 GFLOP/s instead of ~140. Which kernels run is
// fixed when OpenBLAS loads, so all the library can do is say so.
bool warn_if_slow_blas() {
    if (std::strcmp(blas_core(), "Prescott") == 0 && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vl"))
        std::fprintf(stderr,
                     "tapegrad: OpenBLAS runs its slow SSE3 'Prescott' kernels on this AVX-512 CPU (about a quarter "
                     "of the speed); set OPENBLAS_CORETYPE=SkylakeX in the environment before starting the program\n");
    return true;
}

// OpenBLAS 0.3.21 takes a buffer for each GEMM from a pool that it fills on demand, 128 MB of
// address space each, and when allocating one fails it retries forever at 100% CPU: under an
// address-space or data limit (ulimit -v, ulimit -d) a GEMM would hang instead of failing.
// Under such a limit each GEMM first maps that much for each thread it runs on (without
// touching it) and unmaps it: when that fails, std::bad_alloc says why, and nothing hangs.
constexpr std::size_t blas_buffer_bytes = (std::size_t(128) << 20) + (std::size_t(1) << 16);

struct BlasBufferUnavailable : std::bad_alloc {
    const char* what() const noexcept override {
        return "OpenBLAS needs 128 MB of address space for a GEMM's buffer, and the memory limit (ulimit -v or -d) "
               "leaves less";
    }
};

// The limits are read once, at the first GEMM: two getrlimit calls per GEMM cost 3% of a
// training step (bench_step, 1 thread). A limit the process lowers for itself after its first
// GEMM is not seen.
bool memory_limited() {
    rlimit as{}, data{};
    return getrlimit(RLIMIT_AS, &as) == 0 && getrlimit(RLIMIT_DATA, &data) == 0 &&
           (as.rlim_cur != RLIM_INFINITY || data.rlim_cur != RLIM_INFINITY);
}

void check_blas_buffer_space(std::size_t threads) {
    static const bool limited = memory_limited();
    if (!limited) return;
    const std::size_t bytes = threads * blas_buffer_bytes;
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw BlasBufferUnavailable();
    munmap(p, bytes);
}

void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
           std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
    using cxxblas::Transpose;
    cxxblas::gemm<int>(cxxblas::StorageOrder::RowMajor, trans_a ? Transpose::Trans : Transpose::NoTrans,
                       trans_b ? Transpose::Trans : Transpose::NoTrans, static_cast<int>(m), static_cast<int>(n),
                       static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
                       static_cast<int>(ldc));
}

}  // namespace

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc) {
    static const bool warned = warn_if_slow_blas();
    (void)warned;
    if (m == 0 || n == 0) return;
    if (k == 0) {  // an empty product: C = beta C. BLAS would reject the zero leading dimension.
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    // inside a part (an evaluation's chunk on each thread) a GEMM stays whole: the same result
    // as on one thread
    const std::size_t parts = inside_part() ? 1 : pool_threads();
    const bool split = parts > 1 && m * n * k >= (std::size_t(1) << 18);
    check_blas_buffer_space(split ? parts : 1);
    if (!split) return sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    // Blocks of C's rows (or columns, if it has more of them), one per thread; each block reads
    // its rows of op(A) (columns of op(B)) and all of the other operand.
    parallel_for(parts, [&](std::size_t p) {
        std::size_t lo, hi;
        if (m >= n) {
            part_range(m, parts, p, 16, lo, hi);
            if (lo < hi)
                sgemm(trans_a, trans_b, hi - lo, n, k, alpha, trans_a ? a + lo : a + lo * lda, lda, b, ldb, beta,
                      c + lo * ldc, ldc);
        } else {
            part_range(n, parts, p, 16, lo, hi);
            if (lo < hi)
                sgemm(trans_a, trans_b, m, hi - lo, k, alpha, a, lda, trans_b ? b + lo * ldb : b + lo, ldb, beta,
                      c + lo, ldc);
        }
    });
}

}  // namespace tg::kernels

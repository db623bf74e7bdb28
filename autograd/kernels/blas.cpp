#include "autograd/kernels/blas.hpp"
#include "autograd/kernels/parallel.hpp"

#include <cblas.h>
#include <unistd.h>

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>

namespace tg {

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
    detail::set_pool_threads(static_cast<std::size_t>(n));
    openblas_set_num_threads(1);  // parallel_for splits the GEMMs; OpenBLAS runs inside each part
}
// Before any set_num_threads, OpenBLAS's own default (its pool, sized by OPENBLAS_NUM_THREADS or
// the cores) does the threading.
int num_threads() {
    return detail::pool_threads() > 1 ? static_cast<int>(detail::pool_threads()) : openblas_get_num_threads();
}
const char* blas_core() { return openblas_get_corename(); }

void use_avx512_blas_kernels(char** argv) {
    if (std::getenv("OPENBLAS_CORETYPE") || std::strcmp(openblas_get_corename(), "Prescott") != 0 ||
        !__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512dq") || !__builtin_cpu_supports("avx512vl"))
        return;
    setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    execv("/proc/self/exe", argv);  // returns only on failure: then carry on with the slow kernels
}

namespace detail {

namespace {
void sgemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha, const float* a,
           std::size_t lda, const float* b, std::size_t ldb, float beta, float* c, std::size_t ldc) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
                static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}
}  // namespace

void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {  // an empty product: C = beta C. BLAS would reject the zero leading dimension.
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    const std::size_t parts = pool_threads();
    if (parts == 1 || m * n * k < (std::size_t(1) << 18)) return sgemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
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
}  // namespace detail

}  // namespace tg

#include "autograd/blas.hpp"

#include <cblas.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace tg {

void set_num_threads(int n) {
    if (n < 1) throw std::invalid_argument("set_num_threads: need at least 1 thread, got " + std::to_string(n));
    openblas_set_num_threads(n);
}
int num_threads() { return openblas_get_num_threads(); }
const char* blas_core() { return openblas_get_corename(); }

namespace detail {
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {  // an empty product: C = beta C. BLAS would reject the zero leading dimension.
        for (std::size_t i = 0; i < m; ++i)
            for (std::size_t j = 0; j < n; ++j) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans,
                static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
                static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c, static_cast<blasint>(ldc));
}
}  // namespace detail

}  // namespace tg

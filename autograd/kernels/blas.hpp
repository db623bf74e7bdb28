// The one GEMM of tapegrad (blas.cpp), split over the pool for large products.
#pragma once

#include <cstddef>

namespace tg::kernels {

// Row-major C[m,n] = alpha op(A) op(B) + beta C through OpenBLAS (blas.cpp keeps <cblas.h>
// away from xtensor-blas, whose declarations clash with it).
void gemm(bool trans_a, bool trans_b, std::size_t m, std::size_t n, std::size_t k, float alpha,
          const float* a, std::size_t lda, const float* b, std::size_t ldb, float beta, float* c,
          std::size_t ldc);

}  // namespace tg::kernels

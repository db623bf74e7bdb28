// Loops over broadcast axes: a broadcast gradient summed back down (sum_to, for the binary
// elementwise ops) and linear's bias rows and their gradient's column sums.
#pragma once

#include <cstddef>

#include "autograd/array.hpp"

namespace tg::kernels {

// out (of `shape`, which broadcasts to g_shape: checked by the caller) := g summed down to it.
// Bought: axes of g merge into runs that are all summed or all kept, and a plain loop walks g
// once: xt::sum along axes is about 12x slower.
void sum_to(const float* g, const Array::shape_type& g_shape, const Array::shape_type& shape, float* out);

// Each of the rows rows of y [rows, cols] := b (linear's bias, onto which its GEMM adds x W^T).
void broadcast_rows(const float* b, std::size_t rows, std::size_t cols, float* y);

// d := beta d + the column sums of g [rows, cols] (beta 0 or 1; the bias gradient), row after
// row along contiguous memory.
void column_sums(const float* g, std::size_t rows, std::size_t cols, float beta, float* d);

}  // namespace tg::kernels

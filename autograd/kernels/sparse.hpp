// Products with a {0,1} left operand (a discrete sample: one-hot per variable, or Bernoulli
// units) as sums of selected rows of the right one, and the right one's gradient as a
// scatter-add: work proportional to min(ones, zeros) instead of every entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tg::kernels {

// Each row of a {0,1} matrix as the list of the columns where it holds a 1, or, for a row of
// more ones than zeros, of the columns where it holds a 0 (the row is then the all-ones row
// minus those): a list is never longer than half the row.
struct BinaryRows {
    std::size_t rows = 0, cols = 0;
    std::vector<std::uint32_t> index;  // the lists, one after the other
    std::vector<std::size_t> start;    // row r's list is index[start[r] .. start[r + 1])
    std::vector<std::uint8_t> ones_minus;  // row r lists its zeros
    bool any_ones_minus = false;
};

// Past this fraction (the lists' entries over a's) linear and matmul take the GEMM. Measured
// against OpenBLAS (Haswell kernels, one core of an AVX-512 EPYC, loaded) for a [2000, 200]
// sample and a 200 -> 392 weight: the product 3.2 ms as a GEMM, 0.4 ms to scan, then
// 0.6 / 1.0 / 1.7 / 2.4 / 3.2 ms sparse at 5 / 10 / 20 / 30 / 40% listed; the weight gradient
// 3.2 ms as a GEMM, 0.7 / 1.2 / 2.4 / 3.5 / 9 ms sparse.
constexpr float sparse_max_fraction = 0.3f;

// Fills out from a [rows, cols]; false when an entry of a is neither 0 nor 1 (then out is
// unspecified and the caller takes the dense path), or when the lists hold more than
// max_fraction of the entries (the dense GEMM is then as fast; checked row by row, so a dense
// matrix is given up within its first rows).
bool binary_rows(const float* a, std::size_t rows, std::size_t cols, float max_fraction, BinaryRows& out);

// c [rows, n] := beta c + a b, for a [rows, k] given as BinaryRows and b [k, n] row-major
// (b_transposed: b is given as b^T [n, k], a linear layer's weight).
void binary_times(const BinaryRows& a, const float* b, std::size_t n, bool b_transposed, float beta, float* c);

// d [k, n] := beta d + a^T g, for a [rows, k] given as BinaryRows and g [rows, n] row-major
// (d_transposed: d is d^T [n, k], a linear layer's weight gradient).
void binary_transpose_times(const BinaryRows& a, const float* g, std::size_t n, bool d_transposed, float beta,
                            float* d);

// A one-hot sampler's output and its lists at once: for z holding `groups` consecutive groups of
// `classes` values (groups of each row of `cols` entries side by side), out (zeroed by the
// caller) gets a 1 at the argmax of each group (the first of equal maxima), rows each row's
// list, one entry per group. Branch-free: the noise makes the winner unpredictable.
void one_hot_rows(const float* z, std::size_t groups, std::size_t classes, std::size_t cols, float* out,
                  BinaryRows& rows);

// Whether linear and matmul take these kernels for inputs marked as discrete samples (default
// on; off forces the dense GEMMs, for comparisons). Process-wide.
void set_sparse_samples(bool on);
bool sparse_samples();

}  // namespace tg::kernels

// Loops that index along one axis (gather, its backward, one_hot), over [outer, n, inner] views
// as in nn_kernels.hpp. The callers check every index first. Plain loops: they keep the index
// arithmetic out of the ops (nothing measured; xtensor has no gather along an axis).
#pragma once

#include <cstddef>

#include "autograd/kernels/nn_kernels.hpp"

namespace tg::kernels {

// out[(o m + j) inner + i] := x[(o n + c) inner + i] with c = index[(o m + j) inner + i]: m picks
// from each slice of x seen as v.
void gather(const float* x, const detail::AxisView& v, std::size_t m, const std::size_t* index, float* out);

// The gather's backward: d := beta d (beta 0 or 1), then each g[s] added to the entry of d that
// position s picked.
void scatter_add(const float* g, const detail::AxisView& v, std::size_t m, const std::size_t* index, float beta,
                 float* d);

// out := count rows of `classes` zeros with a 1 at index[s] in row s.
void one_hot(const std::size_t* index, std::size_t count, std::size_t classes, float* out);

}  // namespace tg::kernels

// The copies of the shape ops (shape.cpp), between contiguous row-major buffers: each op's
// value stays contiguous, which the other ops rely on. beta 0 overwrites the destination
// (whatever it held, NaN too), beta 1 adds to it (a gradient accumulating). reference.hpp holds
// the plain loops that tests/test_kernels.cpp compares them with (bit for bit).
#pragma once

#include <cstddef>
#include <vector>

#include "autograd/array.hpp"

namespace tg::kernels {

// dst[k] := beta * dst[k] + src[k] for k < n.
void copy_or_add(const float* src, std::size_t n, float beta, float* dst);

// rows rows of len values each: dst[r * dst_stride + k] := beta * dst[..] + src[r * src_stride + k]
// for r < rows, k < len (a slice's rows out of the full rows, a part's rows into the joined ones).
// Bought: slicing [100, 200] to [100, 100] 1.47 -> 0.86 us against assigning the xt::view.
void copy_rows(const float* src, std::size_t src_stride, std::size_t rows, std::size_t len, float beta, float* dst,
               std::size_t dst_stride);

// dst := beta * dst + src with the axes permuted: dst is row-major of shape
// (src_shape[perm[0]], .., src_shape[perm[nd - 1]]), and dst[i_0, .., i_nd-1] is src at the
// index whose axis perm[k] is i_k. Walks dst in order, reading src with the strides of its axes.
// Bought: against assigning xt::transpose, [100, 200] 140 -> 9 us, [10, 20, 100] by (1, 2, 0)
// 128 -> 36 us (AVX-512, the machine loaded).
void permute(const float* src, const Shape& src_shape, const std::vector<std::size_t>& perm, float beta, float* dst);

}  // namespace tg::kernels

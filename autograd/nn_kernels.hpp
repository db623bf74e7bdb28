// Loops shared by the softmax-like ops (nn.cpp) and the fused Gumbel-Softmax ops (layers/),
// over contiguous row-major data seen as [outer, n, inner] around one axis: element (o, j, i)
// sits at (o * n + j) * inner + i.
#pragma once

#include <cstddef>

#include "autograd/tensor.hpp"

namespace tg::detail {

struct AxisView {
    std::size_t outer = 1, n = 1, inner = 1;
};
AxisView axis_view(const Array::shape_type& shape, std::size_t axis);
// out[s] := the maximum / the sum of slice s, for the outer * inner slices s = o * inner + i
// of the data d.
void slice_maxima(const float* d, const AxisView& v, float* out);
void slice_sums(const float* d, const AxisView& v, float* out);
// d := d - s[slice] and d := d * s[slice], elementwise with each slice's own s.
void subtract_per_slice(float* d, const AxisView& v, const float* s);
void multiply_per_slice(float* d, const AxisView& v, const float* s);

// out[s] := logsumexp of slice s (outer * inner values), stable for entries of any size.
void logsumexp_along(const Array& a, std::size_t axis, float* out);

// a := softmax(a) along axis, stable for entries of any size (the slice maximum is subtracted).
// The AxisView overloads take any [outer, n, inner] view of the data, such as groups of
// classes along the last axis ({size / classes, classes, 1}).
void softmax_inplace(Array& a, std::size_t axis);
void softmax_inplace(Array& a, const AxisView& v);
// a := log_softmax(a) along axis.
void log_softmax_inplace(Array& a, std::size_t axis);

// dx := beta * dx + scale * y * (g - sum_axis(g * y)): the softmax backward through its output y.
void softmax_backward(const Array& y, const Array& g, std::size_t axis, float scale, float beta, Array& dx);
void softmax_backward(const Array& y, const Array& g, const AxisView& v, float scale, float beta, Array& dx);

// Index of the largest entry of each slice (the first on ties) at o * inner + i.
void argmax_along(const Array& a, std::size_t axis, std::size_t* out);
void argmax_along(const Array& a, const AxisView& v, std::size_t* out);

}  // namespace tg::detail

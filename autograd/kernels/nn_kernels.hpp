// Loops shared by the softmax-like ops (nn.cpp) and the fused Gumbel-Softmax ops (layers/),
// over contiguous row-major data seen as [outer, n, inner] around one axis: element (o, j, i)
// sits at (o * n + j) * inner + i. Defined in softmax.cpp; reference.hpp holds the plain loops
// that tests/test_kernels.cpp compares them with.
#pragma once

#include <cstddef>
#include <cstdint>

#include "autograd/kernels/simd.hpp"
#include "autograd/array.hpp"

namespace tg::kernels {

struct AxisView {
    std::size_t outer = 1, n = 1, inner = 1;
};
AxisView axis_view(const Array::shape_type& shape, std::size_t axis);
// out[s] := the maximum / the sum of slice s, for the outer * inner slices s = o * inner + i
// of the data d.
void slice_maxima(const float* d, const AxisView& v, float* out);
void slice_sums(const float* d, const AxisView& v, float* out);
// Bought (these four): xsimd reductions of contiguous slices, loops along contiguous memory:
// softmax [100, 200] forward + backward 150 -> 35 us.
// d := d - s[slice] and d := d * s[slice], elementwise with each slice's own s.
void subtract_per_slice(float* d, const AxisView& v, const float* s);
void multiply_per_slice(float* d, const AxisView& v, const float* s);

// out[s] := logsumexp of slice s (outer * inner values), stable for entries of any size.
void logsumexp_along(const Array& a, std::size_t axis, float* out);

// a := softmax(a) along axis, stable for entries of any size (the slice maximum is subtracted).
// The AxisView overloads take any [outer, n, inner] view of the data, such as groups of
// classes along the last axis ({size / classes, classes, 1}).
// Bought: slices of 4 to 16 contiguous entries (the 10 classes of a categorical latent) in
// registers, forward and backward: the categorical step's softmax 9.1% -> 6.0% of the step
// (perf, AVX-512; 748 -> 823 steps/s).
void softmax_inplace(Array& a, std::size_t axis);
void softmax_inplace(Array& a, const AxisView& v);
// a := log_softmax(a) along axis.
void log_softmax_inplace(Array& a, std::size_t axis);

// dx := beta * dx + scale * y * (g - sum_axis(g * y)): the softmax backward through its output y.
void softmax_backward(const Array& y, const Array& g, std::size_t axis, float scale, float beta, Array& dx);
void softmax_backward(const Array& y, const Array& g, const AxisView& v, float scale, float beta, Array& dx);

// The backward through the output y = log_softmax(x), as a new array of x's shape, with the
// slice loops above: g - exp(y) sum_axis(g).
Array log_softmax_backward(const Array& y, const Array& g, std::size_t axis);

// Cross-entropy over the n rows of [n, k]: loss[r] := -log_p[r, labels[r]], and its backward
// g_r (softmax(x_r) - one_hot(labels[r])) with g_r = g[r] * scale if each, else g[0] * scale.
// Bought: the softmax above; the per-row loops only keep the index arithmetic out of the op.
void pick_negated(const float* log_p, const std::size_t* labels, std::size_t n, std::size_t k, float* loss);
Array cross_entropy_backward(const Array& x, const std::size_t* labels, const float* g, bool each, float scale);

// Index of the largest entry of each slice (the first on ties) at o * inner + i.
void argmax_along(const Array& a, std::size_t axis, std::size_t* out);
void argmax_along(const Array& a, const AxisView& v, std::size_t* out);

// log x for positive, normal, finite x: xsimd::log's own arithmetic (musl's logf), bit for bit,
// without its tests for zero, denormals (a branch), infinity and negatives, which cost a third
// of it (the Gumbel and logistic noise, log1p in the BCE).
inline simd::Batch log_positive(const simd::Batch& x) {
    using Int = xsimd::batch<std::int32_t>;
    using simd::Batch;
    const auto c = [](std::uint32_t bits) { return xsimd::bitwise_cast<Batch>(Int(static_cast<std::int32_t>(bits))); };
    Int ix = xsimd::bitwise_cast<Int>(x) + Int(0x3f800000 - 0x3f3504f3);
    const Batch k = xsimd::to_float((ix >> 23) - Int(0x7f));
    ix = (ix & Int(0x007fffff)) + Int(0x3f3504f3);
    const Batch f = xsimd::bitwise_cast<Batch>(ix) - Batch(1.0f);
    const Batch s = f / (Batch(2.0f) + f);
    const Batch z = s * s, w = z * z;
    const Batch r = z * xsimd::fma(w, c(0x3e91e9ee), c(0x3f2aaaaa)) + w * xsimd::fma(w, c(0x3e789e26), c(0x3eccce13));
    const Batch hfsq = Batch(0.5f) * f * f;
    return xsimd::fma(k, c(0x3f318000), xsimd::fma(s, hfsq + r, k * c(0xb95e8083)) - hfsq + f);
}

}  // namespace tg::kernels

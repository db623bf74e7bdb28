// The loops of the reductions (reduce.cpp) over contiguous row-major data seen as
// [outer, n, inner] around one axis (kernels::AxisView): element (o, j, i) sits at
// (o * n + j) * inner + i, and the reduced value (o, i) at o * inner + i. reference.hpp holds
// the plain loops that tests/test_kernels.cpp compares them with (bit for bit).
#pragma once

#include <cstddef>

#include "autograd/kernels/nn_kernels.hpp"

namespace tg::kernels {

using kernels::AxisView;

// The sum of a[0, n) accumulated in Acc (float or double), in 8 interleaved partial sums
// (a[j] goes to partial j % 8 for the first n - n % 8 elements, the rest to the total, then
// the partials in order): one chain of dependent adds would stall on latency (floats are not
// reassociated for us). Inline: compiled out of line, GCC 12 vectorized the double sum with two
// 32-byte chains instead of one 64-byte chain, and a full sum of 20,000 floats (forward and
// backward) took 2.9 us instead of 2.5 (AVX-512).
template <class Acc>
inline Acc sum_all(const float* a, std::size_t n) {
    constexpr std::size_t lanes = 8;
    Acc acc[lanes] = {};
    std::size_t j = 0;
    for (; j + lanes <= n; j += lanes)
        for (std::size_t k = 0; k < lanes; ++k) acc[k] += a[j + k];
    Acc s = 0;
    for (; j < n; ++j) s += a[j];
    for (std::size_t k = 0; k < lanes; ++k) s += acc[k];
    return s;
}

// out[o, i] := scale * sum_j a[o, j, i]; for inner 1 as sum_all<float>, for
// inner > 1 in order of j (scale 1 multiplies nothing).
// Bought: xt::sum along an axis is about 12x slower than these loops (STACK-NOTES 4; a loaded
// machine today, [100, 200] along axis 1: 10.3 us against 4.3).
void sum_along(const float* a, const AxisView& v, float scale, float* out);

// d[o, j, i] := beta * d[o, j, i] + scale * g[o, i], the gradient of a sum spread back (beta 0
// overwrites whatever d held, NaN too; beta 1 adds).
void spread_along(const float* g, const AxisView& v, float scale, float beta, float* d);

// out[o, i] := max_j a[o, j, i] (v.n >= 1); for inner 1 in 8 interleaved running maxima.
// Bought: [100, 200] along axis 1 3.3 us against 9.5 for xt::amax.
void max_along(const float* a, const AxisView& v, float* out);

// The gradient of max_along: g[o, i] added to d at the first j with a[o, j, i] == m[o, i] (the
// output holds a copy of the winner), nothing elsewhere; beta 0 first zeroes d.
void max_backward(const float* a, const float* m, const float* g, const AxisView& v, float beta, float* d);

}  // namespace tg::kernels

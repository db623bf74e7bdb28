// Reductions. Axis reductions are plain loops over the contiguous data seen as
// [outer, n, inner] (nn_kernels.hpp): xt::sum along an axis is about 12x slower.
#include <algorithm>
#include <stdexcept>
#include <string>

#include "autograd/detail.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/ops.hpp"

namespace tg {

using detail::AxisView;
using detail::reduced_shape;
using In = const std::vector<Tensor>&;

namespace {

// A contiguous row's sum and maximum in 8 independent lanes: one chain of dependent adds
// would stall on latency and stay scalar (float addition is not reassociated for us).
constexpr std::size_t lanes = 8;

template <class Acc>
Acc row_sum(const float* a, std::size_t n) {
    Acc acc[lanes] = {};
    std::size_t j = 0;
    for (; j + lanes <= n; j += lanes)
        for (std::size_t k = 0; k < lanes; ++k) acc[k] += a[j + k];
    Acc s = 0;
    for (; j < n; ++j) s += a[j];
    for (std::size_t k = 0; k < lanes; ++k) s += acc[k];
    return s;
}

float row_max(const float* a, std::size_t n) {  // n >= 1
    float m = a[0];
    std::size_t j = 0;
    if (n >= lanes) {
        float acc[lanes];
        std::copy(a, a + lanes, acc);
        for (j = lanes; j + lanes <= n; j += lanes)
            for (std::size_t k = 0; k < lanes; ++k) acc[k] = a[j + k] > acc[k] ? a[j + k] : acc[k];
        for (std::size_t k = 0; k < lanes; ++k) m = acc[k] > m ? acc[k] : m;
    }
    for (; j < n; ++j) m = a[j] > m ? a[j] : m;
    return m;
}

// out[o, i] = scale * sum_j a[o, j, i], walking a once in memory order.
void sum_along(const float* a, const AxisView& v, float scale, float* out) {
    const std::size_t n = v.n, inner = v.inner;
    for (std::size_t o = 0; o < v.outer; ++o, a += n * inner, out += inner) {
        if (inner == 1) {
            out[0] = scale * row_sum<float>(a, n);
            continue;
        }
        std::fill(out, out + inner, 0.0f);
        for (std::size_t j = 0; j < n; ++j)
            for (std::size_t i = 0; i < inner; ++i) out[i] += a[j * inner + i];
        if (scale != 1.0f)
            for (std::size_t i = 0; i < inner; ++i) out[i] *= scale;
    }
}

// d[o, j, i] = beta * d[o, j, i] + scale * g[o, i]: the gradient of a sum spread back.
void spread_along(const float* g, const AxisView& v, float scale, float beta, float* d) {
    const std::size_t n = v.n, inner = v.inner;
    if (inner == 1) {  // each output value fills a contiguous row
        for (std::size_t o = 0; o < v.outer; ++o, d += n) {
            const float c = scale * g[o];
            if (beta == 0.0f) std::fill(d, d + n, c);
            else
                for (std::size_t j = 0; j < n; ++j) d[j] += c;
        }
        return;
    }
    for (std::size_t o = 0; o < v.outer; ++o, g += inner)
        for (std::size_t j = 0; j < n; ++j, d += inner) {
            if (beta == 0.0f)  // the buffer may hold anything, even NaN: overwrite it
                for (std::size_t i = 0; i < inner; ++i) d[i] = scale * g[i];
            else
                for (std::size_t i = 0; i < inner; ++i) d[i] += scale * g[i];
        }
}

// sum (scale 1) or mean (scale 1/n) along one axis.
Tensor scaled_sum(const Tensor& a, int axis, bool keepdims, bool mean, const char* op) {
    detail::require_defined(op, {&a});
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), op);
    const AxisView v = detail::axis_view(a.shape(), ax);
    if (mean && v.n == 0)
        throw std::invalid_argument(std::string(op) + ": cannot average along axis " + std::to_string(axis) +
                                    " of length 0, shape " + shape_str(a.shape()));
    const float scale = mean ? 1.0f / static_cast<float>(v.n) : 1.0f;
    Array out = Array::from_shape(reduced_shape(a.shape(), ax, keepdims));
    sum_along(a.value().data(), v, scale, out.data());
    return record(op, std::move(out), {a}, [v, scale](In in, const Tensor& o) {
        float beta;
        Array& g = detail::grad_for_accumulate(in[0], beta);
        spread_along(o.grad().data(), v, scale, beta, g.data());
    });
}

// Fills t's gradient (or adds to it) with the constant c: the gradient of a full sum or mean.
void accumulate_constant(const Tensor& t, float c) {
    float beta;
    Array& g = detail::grad_for_accumulate(t, beta);
    if (beta == 0.0f) std::fill(g.begin(), g.end(), c);
    else
        for (float& x : g) x += c;
}

}  // namespace

// A one-element array of v: 0-d, or of a's rank with every length 1 (keepdims).
static Array full_reduction(float v, const Tensor& a, bool keepdims) {
    if (!keepdims) return Array(v);
    Array out = Array::from_shape(Shape(a.dim(), 1));
    out.data()[0] = v;
    return out;
}

Tensor sum(const Tensor& a, bool keepdims) {
    detail::require_defined("sum", {&a});
    // A long float sum loses digits; the accumulator is double.
    const double s = row_sum<double>(a.value().data(), a.size());
    return record("sum", full_reduction(static_cast<float>(s), a, keepdims), {a}, [](In in, const Tensor& out) {
        accumulate_constant(in[0], *out.grad().data());
    });
}

Tensor sum(const Tensor& a, int axis, bool keepdims) { return scaled_sum(a, axis, keepdims, false, "sum"); }

Tensor mean(const Tensor& a, bool keepdims) {
    detail::require_defined("mean", {&a});
    const std::size_t n = a.size();
    if (n == 0) throw std::invalid_argument("mean: cannot average an empty tensor of shape " + shape_str(a.shape()));
    const double s = row_sum<double>(a.value().data(), n);
    return record("mean", full_reduction(static_cast<float>(s / double(n)), a, keepdims), {a}, [n](In in, const Tensor& out) {
        accumulate_constant(in[0], *out.grad().data() / static_cast<float>(n));
    });
}

Tensor mean(const Tensor& a, int axis, bool keepdims) { return scaled_sum(a, axis, keepdims, true, "mean"); }

Tensor max(const Tensor& a, int axis, bool keepdims) {
    detail::require_defined("max", {&a});
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), "max");
    const AxisView v = detail::axis_view(a.shape(), ax);
    if (v.n == 0)
        throw std::invalid_argument("max: axis " + std::to_string(axis) + " has length 0, shape " +
                                    shape_str(a.shape()));
    Array out = Array::from_shape(reduced_shape(a.shape(), ax, keepdims));
    const std::size_t n = v.n, inner = v.inner;
    const float* x = a.value().data();
    float* m = out.data();
    for (std::size_t o = 0; o < v.outer; ++o, x += n * inner, m += inner) {
        if (inner == 1) {
            m[0] = row_max(x, n);
            continue;
        }
        std::copy(x, x + inner, m);
        for (std::size_t j = 1; j < n; ++j)
            for (std::size_t i = 0; i < inner; ++i) m[i] = x[j * inner + i] > m[i] ? x[j * inner + i] : m[i];
    }
    return record("max", std::move(out), {a}, [v](In in, const Tensor& result) {
        // The output holds a copy of the winning element, so the first equal one is the winner.
        float beta;
        Array& ga = detail::grad_for_accumulate(in[0], beta);
        if (beta == 0.0f) std::fill(ga.begin(), ga.end(), 0.0f);
        const std::size_t n = v.n, inner = v.inner;
        const float* x = in[0].value().data();
        const float* m = result.value().data();
        const float* g = result.grad().data();
        float* d = ga.data();
        for (std::size_t o = 0; o < v.outer; ++o)
            for (std::size_t i = 0; i < inner; ++i) {
                const std::size_t s = o * inner + i, base = o * n * inner + i;
                for (std::size_t j = 0; j < n; ++j)
                    if (x[base + j * inner] == m[s]) {
                        d[base + j * inner] += g[s];
                        break;
                    }
            }
    });
}

}  // namespace tg

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <vector>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/detail.hpp"
#include "autograd/nn_kernels.hpp"
#include "autograd/ops.hpp"

namespace tg {

namespace detail {

AxisView axis_view(const Array::shape_type& shape, std::size_t axis) {
    AxisView v;
    for (std::size_t d = 0; d < axis; ++d) v.outer *= shape[d];
    v.n = shape[axis];
    for (std::size_t d = axis + 1; d < shape.size(); ++d) v.inner *= shape[d];
    return v;
}

namespace {

// Calls f(base, s) for every slice along the axis: slice s holds the elements
// base + j * inner, j < n, of the data.
template <class F>
void for_each_slice(const AxisView& v, F f) {
    for (std::size_t o = 0; o < v.outer; ++o)
        for (std::size_t i = 0; i < v.inner; ++i) f(o * v.n * v.inner + i, o * v.inner + i);
}

// The shift that makes exp safe: the slice maximum, or 0 when that is infinite (a slice of
// -inf would otherwise give -inf - -inf = NaN).
float slice_max(const float* p, std::size_t n, std::size_t stride) {
    float m = -std::numeric_limits<float>::infinity();
    for (std::size_t j = 0; j < n; ++j) m = std::max(m, p[j * stride]);
    return std::isfinite(m) ? m : 0.0f;
}

double slice_sum(const float* p, std::size_t n, std::size_t stride) {
    double s = 0.0;
    for (std::size_t j = 0; j < n; ++j) s += p[j * stride];
    return s;
}

// a := exp(a - shift) with each slice's shift; returns the shifts.
std::vector<float> exp_shifted(Array& a, const AxisView& v) {
    std::vector<float> shift(v.outer * v.inner);
    float* d = a.data();
    for_each_slice(v, [&](std::size_t base, std::size_t s) {
        const float m = slice_max(d + base, v.n, v.inner);
        for (std::size_t j = 0; j < v.n; ++j) d[base + j * v.inner] -= m;
        shift[s] = m;
    });
    xt::noalias(a) = xt::exp(a);  // vectorized by xsimd; a loop of std::exp is ~10x slower
    return shift;
}

}  // namespace

void logsumexp_along(const Array& a, std::size_t axis, float* out) {
    const AxisView v = axis_view(a.shape(), axis);
    Array e = a;
    const std::vector<float> shift = exp_shifted(e, v);
    for_each_slice(v, [&](std::size_t base, std::size_t s) {
        out[s] = shift[s] + static_cast<float>(std::log(slice_sum(e.data() + base, v.n, v.inner)));
    });
}

void softmax_inplace(Array& a, std::size_t axis) {
    const AxisView v = axis_view(a.shape(), axis);
    exp_shifted(a, v);
    float* d = a.data();
    for_each_slice(v, [&](std::size_t base, std::size_t) {
        const float r = static_cast<float>(1.0 / slice_sum(d + base, v.n, v.inner));
        for (std::size_t j = 0; j < v.n; ++j) d[base + j * v.inner] *= r;
    });
}

void log_softmax_inplace(Array& a, std::size_t axis) {
    // (x - max) - log(sum exp(x - max)): subtracting a rounded logsumexp from x instead would
    // lose the digits of log(sum) at large x (1e4 + 0.31 rounds to a multiple of 2^-10)
    const AxisView v = axis_view(a.shape(), axis);
    float* d = a.data();
    for_each_slice(v, [&](std::size_t base, std::size_t) {
        const float m = slice_max(d + base, v.n, v.inner);
        for (std::size_t j = 0; j < v.n; ++j) d[base + j * v.inner] -= m;
    });
    const Array e = xt::exp(a);
    for_each_slice(v, [&](std::size_t base, std::size_t) {
        const float l = static_cast<float>(std::log(slice_sum(e.data() + base, v.n, v.inner)));
        for (std::size_t j = 0; j < v.n; ++j) d[base + j * v.inner] -= l;
    });
}

void softmax_backward(const Array& y, const Array& g, std::size_t axis, float scale, float beta, Array& dx) {
    const AxisView v = axis_view(y.shape(), axis);
    const float* yp = y.data();
    const float* gp = g.data();
    float* dp = dx.data();
    for_each_slice(v, [&](std::size_t base, std::size_t) {
        double dot = 0.0;
        for (std::size_t j = 0; j < v.n; ++j) dot += double(gp[base + j * v.inner]) * yp[base + j * v.inner];
        const float d = static_cast<float>(dot);
        for (std::size_t j = 0; j < v.n; ++j) {
            const std::size_t k = base + j * v.inner;
            const float val = scale * yp[k] * (gp[k] - d);
            dp[k] = beta == 0.0f ? val : dp[k] + val;
        }
    });
}

void argmax_along(const Array& a, std::size_t axis, std::size_t* out) {
    const AxisView v = axis_view(a.shape(), axis);
    const float* d = a.data();
    for_each_slice(v, [&](std::size_t base, std::size_t s) {
        std::size_t best = 0;
        for (std::size_t j = 1; j < v.n; ++j)
            if (d[base + j * v.inner] > d[base + best * v.inner]) best = j;
        out[s] = best;
    });
}

// Calls f(base, s) as for_each_slice does, for users outside this file.
void for_each_axis_slice(const AxisView& v, const std::function<void(std::size_t, std::size_t)>& f) {
    for_each_slice(v, f);
}

}  // namespace detail

namespace {

Array::shape_type reduced_shape(const Array::shape_type& shape, std::size_t axis, bool keepdims) {
    Array::shape_type out = shape;
    if (keepdims) out[axis] = 1;
    else out.erase(out.begin() + static_cast<std::ptrdiff_t>(axis));
    return out;
}

void require_nonempty_axis(const Tensor& a, std::size_t axis, const char* op) {
    detail::require(a.shape()[axis] > 0, op, "the reduced axis " + std::to_string(axis) + " is empty", a.shape());
}

}  // namespace

Tensor softmax(const Tensor& logits, int axis) {
    const std::size_t ax = detail::normalize_axis(axis, logits.shape(), "softmax");
    Array y = logits.value();
    detail::softmax_inplace(y, ax);
    return record("softmax", std::move(y), {logits}, [ax](const std::vector<Tensor>& in, const Tensor& out) {
        float beta;
        Array& dx = detail::grad_for_accumulate(in[0], beta);
        detail::softmax_backward(out.value(), out.grad(), ax, 1.0f, beta, dx);
    });
}

Tensor log_softmax(const Tensor& logits, int axis) {
    const std::size_t ax = detail::normalize_axis(axis, logits.shape(), "log_softmax");
    Array y = logits.value();
    detail::log_softmax_inplace(y, ax);
    return record("log_softmax", std::move(y), {logits}, [ax](const std::vector<Tensor>& in, const Tensor& out) {
        // dx = g - softmax * sum_axis(g), with softmax = exp(out)
        const detail::AxisView v = detail::axis_view(out.shape(), ax);
        const float* g = out.grad().data();
        Array dx = xt::exp(out.value());
        float* d = dx.data();
        detail::for_each_axis_slice(v, [&](std::size_t base, std::size_t) {
            double gs = 0.0;
            for (std::size_t j = 0; j < v.n; ++j) gs += g[base + j * v.inner];
            for (std::size_t j = 0; j < v.n; ++j) {
                const std::size_t k = base + j * v.inner;
                d[k] = g[k] - d[k] * static_cast<float>(gs);
            }
        });
        in[0].accumulate_grad(std::move(dx), "log_softmax");
    });
}

Tensor logsumexp(const Tensor& a, int axis, bool keepdims) {
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), "logsumexp");
    Array out = Array::from_shape(reduced_shape(a.shape(), ax, keepdims));
    detail::logsumexp_along(a.value(), ax, out.data());
    return record("logsumexp", std::move(out), {a}, [ax](const std::vector<Tensor>& in, const Tensor& o) {
        // dx = g * exp(x - logsumexp(x)): the softmax weights times the slice's gradient
        const detail::AxisView v = detail::axis_view(in[0].shape(), ax);
        Array dx = in[0].value();
        const float* lse = o.value().data();
        const float* g = o.grad().data();
        float* d = dx.data();
        detail::for_each_axis_slice(v, [&](std::size_t base, std::size_t s) {
            for (std::size_t j = 0; j < v.n; ++j) d[base + j * v.inner] -= lse[s];
        });
        xt::noalias(dx) = xt::exp(dx);
        detail::for_each_axis_slice(v, [&](std::size_t base, std::size_t s) {
            for (std::size_t j = 0; j < v.n; ++j) d[base + j * v.inner] *= g[s];
        });
        in[0].accumulate_grad(std::move(dx), "logsumexp");
    });
}

namespace {

float reduce_loss(const Array& per_element, Reduction reduction) {
    double s = 0.0;
    for (float l : per_element) s += l;
    if (reduction == Reduction::mean) s /= static_cast<double>(per_element.size());
    return static_cast<float>(s);
}

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction) {
    if (logits.shape() != targets.shape())
        throw std::invalid_argument("binary_cross_entropy_with_logits: logits " + shape_str(logits.shape()) +
                                    " and targets " + shape_str(targets.shape()) + " must have the same shape");
    const Array& x = logits.value();
    const Array& t = targets.value();
    // log(1 + exp(x)) - x t, written so that exp never overflows
    Array loss = xt::maximum(x, 0.0f) - x * t + xt::log1p(xt::exp(-xt::abs(x)));
    Array value = reduction == Reduction::none ? std::move(loss) : Array(reduce_loss(loss, reduction));
    const float scale = reduction == Reduction::mean ? 1.0f / static_cast<float>(x.size()) : 1.0f;
    return record("binary_cross_entropy_with_logits", std::move(value), {logits, targets},
                  [reduction, scale](const std::vector<Tensor>& in, const Tensor& out) {
                      const char* op = "binary_cross_entropy_with_logits";
                      const Array& x = in[0].value();
                      // 1 / (1 + exp(-x)) is exact at both ends in float: exp overflows to inf, giving 0
                      if (reduction == Reduction::none) {
                          const Array& g = out.grad();
                          if (in[0].requires_grad())
                              in[0].accumulate_grad(Array(g * (1.0f / (1.0f + xt::exp(-x)) - in[1].value())), op);
                          if (in[1].requires_grad()) in[1].accumulate_grad(Array(-g * x), op);
                      } else {
                          const float g = out.grad()() * scale;
                          if (in[0].requires_grad())
                              in[0].accumulate_grad(Array(g * (1.0f / (1.0f + xt::exp(-x)) - in[1].value())), op);
                          if (in[1].requires_grad()) in[1].accumulate_grad(Array(-g * x), op);
                      }
                  });
}

Tensor cross_entropy(const Tensor& logits, const std::vector<std::size_t>& labels, Reduction reduction) {
    const char* op = "cross_entropy";
    detail::require(logits.dim() == 2, op, "logits must be [n, k]", logits.shape());
    const std::size_t n = logits.shape()[0], k = logits.shape()[1];
    if (labels.size() != n)
        throw std::invalid_argument("cross_entropy: " + std::to_string(labels.size()) + " labels for logits of shape " +
                                    shape_str(logits.shape()) + " (one label per row)");
    for (std::size_t r = 0; r < n; ++r)
        if (labels[r] >= k)
            throw std::out_of_range("cross_entropy: label " + std::to_string(labels[r]) + " of row " +
                                    std::to_string(r) + " is out of range for " + std::to_string(k) + " classes");
    // -log_softmax(x)[label], which keeps its digits at large logits (unlike logsumexp - x)
    Array log_p = logits.value();
    detail::log_softmax_inplace(log_p, 1);
    Array loss = Array::from_shape({n});
    for (std::size_t r = 0; r < n; ++r) loss(r) = -log_p(r, labels[r]);
    Array value = reduction == Reduction::none ? std::move(loss) : Array(reduce_loss(loss, reduction));
    const float scale = reduction == Reduction::mean ? 1.0f / static_cast<float>(n) : 1.0f;
    return record("cross_entropy", std::move(value), {logits},
                  [labels, reduction, scale, k](const std::vector<Tensor>& in, const Tensor& out) {
                      // d/dx = g_r * (softmax(x_r) - one_hot(label_r))
                      Array dx = in[0].value();
                      detail::softmax_inplace(dx, 1);
                      const Array& g = out.grad();
                      for (std::size_t r = 0; r < labels.size(); ++r) {
                          const float gr = (reduction == Reduction::none ? g(r) : g()) * scale;
                          float* row = dx.data() + r * k;
                          row[labels[r]] -= 1.0f;
                          for (std::size_t j = 0; j < k; ++j) row[j] *= gr;
                      }
                      in[0].accumulate_grad(std::move(dx), "cross_entropy");
                  });
}

xt::xarray<std::size_t> argmax(const Tensor& a, int axis) {
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), "argmax");
    require_nonempty_axis(a, ax, "argmax");
    xt::xarray<std::size_t> out = xt::xarray<std::size_t>::from_shape(reduced_shape(a.shape(), ax, false));
    detail::argmax_along(a.value(), ax, out.data());
    return out;
}

Tensor one_hot(const xt::xarray<std::size_t>& indices, std::size_t num_classes) {
    Array::shape_type shape(indices.shape().begin(), indices.shape().end());
    shape.push_back(num_classes);
    Array out = xt::zeros<float>(shape);
    for (std::size_t s = 0; s < indices.size(); ++s) {
        const std::size_t c = indices.data()[s];
        if (c >= num_classes)
            throw std::out_of_range("one_hot: index " + std::to_string(c) + " is out of range for " +
                                    std::to_string(num_classes) + " classes");
        out.data()[s * num_classes + c] = 1.0f;
    }
    return Tensor(std::move(out));
}

}  // namespace tg

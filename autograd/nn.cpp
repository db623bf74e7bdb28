#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include <xtensor/xadapt.hpp>
#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/bce.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/ops.hpp"

namespace tg {

namespace {

// A null input, or an axis with nothing to index, is refused naming the op.
std::size_t nonempty_axis(const Tensor& a, int axis, const char* op) {
    detail::require_defined(op, {&a});
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), op);
    detail::require(a.shape()[ax] > 0, op, "the axis " + std::to_string(axis) + " is empty", a.shape());
    return ax;
}

}  // namespace

Tensor softmax(const Tensor& logits, int axis) {
    const std::size_t ax = nonempty_axis(logits, axis, "softmax");
    Array y = logits.value();
    detail::softmax_inplace(y, ax);
    return record("softmax", std::move(y), {logits}, [ax](const std::vector<Tensor>& in, const Tensor& out) {
        float beta;
        Array& dx = detail::grad_for_accumulate(in[0], beta);
        detail::softmax_backward(out.value(), out.grad(), ax, 1.0f, beta, dx);
    });
}

Tensor log_softmax(const Tensor& logits, int axis) {
    const std::size_t ax = nonempty_axis(logits, axis, "log_softmax");
    Array y = logits.value();
    detail::log_softmax_inplace(y, ax);
    return record("log_softmax", std::move(y), {logits}, [ax](const std::vector<Tensor>& in, const Tensor& out) {
        // dx = g - softmax * sum_axis(g), with softmax = exp(out)
        const detail::AxisView v = detail::axis_view(out.shape(), ax);
        const Array& g = out.grad();
        std::vector<float> sums(v.outer * v.inner);
        detail::slice_sums(g.data(), v, sums.data());
        Array dx = xt::exp(out.value());
        detail::multiply_per_slice(dx.data(), v, sums.data());
        const float* gp = g.data();
        float* d = dx.data();
        for (std::size_t k = 0; k < dx.size(); ++k) d[k] = gp[k] - d[k];
        in[0].accumulate_grad(std::move(dx), "log_softmax");
    });
}

Tensor logsumexp(const Tensor& a, int axis, bool keepdims) {
    const std::size_t ax = nonempty_axis(a, axis, "logsumexp");
    Array out = Array::from_shape(detail::reduced_shape(a.shape(), ax, keepdims));
    detail::logsumexp_along(a.value(), ax, out.data());
    return record("logsumexp", std::move(out), {a}, [ax](const std::vector<Tensor>& in, const Tensor& o) {
        // dx = g * exp(x - logsumexp(x)): the softmax weights times the slice's gradient
        const detail::AxisView v = detail::axis_view(in[0].shape(), ax);
        Array dx = in[0].value();
        detail::subtract_per_slice(dx.data(), v, o.value().data());
        xt::noalias(dx) = xt::exp(dx);
        detail::multiply_per_slice(dx.data(), v, o.grad().data());
        in[0].accumulate_grad(std::move(dx), "logsumexp");
    });
}

namespace {

float reduce_loss(const Array& per_element, Reduction reduction, const char* op, const Array::shape_type& shape) {
    // As mean() does: the mean of nothing is refused, not a silent NaN.
    if (reduction == Reduction::mean && per_element.size() == 0)
        throw std::invalid_argument(std::string(op) + ": cannot average the loss of an empty tensor of shape " +
                                    shape_str(shape) + " (use Reduction::sum or none)");
    double s = 0.0;
    for (float l : per_element) s += l;
    if (reduction == Reduction::mean) s /= static_cast<double>(per_element.size());
    return static_cast<float>(s);
}

}  // namespace

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction) {
    const char* op = "binary_cross_entropy_with_logits";
    detail::require_defined(op, {&logits, &targets});
    if (logits.shape() != targets.shape())
        throw std::invalid_argument("binary_cross_entropy_with_logits: logits " + shape_str(logits.shape()) +
                                    " and targets " + shape_str(targets.shape()) + " must have the same shape");
    const std::size_t n = logits.size();
    // As mean() does: the mean of nothing is refused, not a silent NaN.
    if (reduction == Reduction::mean && n == 0)
        throw std::invalid_argument(std::string(op) + ": cannot average the loss of an empty tensor of shape " +
                                    shape_str(logits.shape()) + " (use Reduction::sum or none)");
    // One pass: the loss log(1 + exp(x)) - x t = max(x, 0) - x t + log1p(exp(-|x|)), written so
    // that exp never overflows, and, when the logits need a gradient, sigmoid(x) - t from the
    // same exp (kept for the backward: it would cost the exp again).
    const bool each = reduction == Reduction::none;
    const bool keep_dx = grad_enabled() && logits.requires_grad();
    Array loss = Array::from_shape(each ? logits.shape() : Array::shape_type{});
    Array dx = keep_dx ? Array::from_shape(logits.shape()) : Array();
    double total = kernels::bce_with_logits(logits.value().data(), targets.value().data(), n,
                                            each ? loss.data() : nullptr, keep_dx ? dx.data() : nullptr);
    if (!each) {
        if (reduction == Reduction::mean) total /= static_cast<double>(n);
        loss() = static_cast<float>(total);
    }
    const float scale = reduction == Reduction::mean ? 1.0f / static_cast<float>(n) : 1.0f;
    return record(op, std::move(loss), {logits, targets},
                  [each, scale, op, dx = std::move(dx)](const std::vector<Tensor>& in, const Tensor& out) {
                      const float* g = out.grad().data();
                      const std::size_t n = in[0].size();
                      if (in[0].requires_grad()) {  // (sigmoid(x) - t) g
                          float beta;
                          Array& gx = detail::grad_for_accumulate(in[0], beta);
                          float* d = gx.data();
                          Array fresh;  // requires_grad was switched on after the forward
                          if (dx.size() != n) fresh = 1.0f / (1.0f + xt::exp(-in[0].value())) - in[1].value();
                          const float* s = dx.size() == n ? dx.data() : fresh.data();
                          if (each) {
                              if (beta == 0.0f) for (std::size_t k = 0; k < n; ++k) d[k] = s[k] * g[k];
                              else for (std::size_t k = 0; k < n; ++k) d[k] += s[k] * g[k];
                          } else {
                              const float gs = g[0] * scale;
                              if (beta == 0.0f) for (std::size_t k = 0; k < n; ++k) d[k] = s[k] * gs;
                              else for (std::size_t k = 0; k < n; ++k) d[k] += s[k] * gs;
                          }
                      }
                      if (in[1].requires_grad()) {  // -x g
                          const float* x = in[0].value().data();
                          Array dt = Array::from_shape(in[0].shape());
                          for (std::size_t k = 0; k < n; ++k) dt.data()[k] = -x[k] * g[each ? k : 0] * scale;
                          in[1].accumulate_grad(std::move(dt), op);
                      }
                  });
}

Tensor cross_entropy(const Tensor& logits, const Indices& label_array, Reduction reduction) {
    const char* op = "cross_entropy";
    detail::require_defined(op, {&logits});
    detail::require(logits.dim() == 2, op, "logits must be [n, k]", logits.shape());
    const std::size_t n = logits.shape()[0], k = logits.shape()[1];
    detail::require(k > 0, op, "logits need at least one class", logits.shape());
    if (label_array.dimension() != 1)
        throw std::invalid_argument("cross_entropy: labels must be 1-D (one per row), got shape " +
                                    shape_str(Shape(label_array.shape().begin(), label_array.shape().end())));
    const std::vector<std::size_t> labels(label_array.begin(), label_array.end());
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
    Array value = reduction == Reduction::none ? std::move(loss) : Array(reduce_loss(loss, reduction, op, logits.shape()));
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

Indices argmax(const Tensor& a, int axis) {
    const std::size_t ax = nonempty_axis(a, axis, "argmax");
    Indices out = Indices::from_shape(detail::reduced_shape(a.shape(), ax, false));
    detail::argmax_along(a.value(), ax, out.data());
    return out;
}

Tensor one_hot(const Indices& indices, std::size_t num_classes) {
    if (num_classes == 0) throw std::invalid_argument("one_hot: num_classes must be positive, got 0");
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

Tensor gather(const Tensor& a, int axis, const Indices& index) {
    const char* op = "gather";
    const std::size_t ax = nonempty_axis(a, axis, op);
    bool ok = index.dimension() == a.dim();
    for (std::size_t d = 0; ok && d < a.dim(); ++d) ok = d == ax || index.shape()[d] == a.shape()[d];
    if (!ok)
        throw std::invalid_argument("gather: the index of shape " +
                                    shape_str(Shape(index.shape().begin(), index.shape().end())) +
                                    " must match the tensor of shape " + shape_str(a.shape()) +
                                    " on every axis but " + std::to_string(axis));
    const detail::AxisView v = detail::axis_view(a.shape(), ax);
    const std::size_t m = index.dimension() ? index.shape()[ax] : 1;
    Array out = Array::from_shape(Shape(index.shape().begin(), index.shape().end()));
    const float* x = a.value().data();
    const std::size_t* idx = index.data();
    for (std::size_t o = 0; o < v.outer; ++o)
        for (std::size_t j = 0; j < m; ++j)
            for (std::size_t i = 0; i < v.inner; ++i) {
                const std::size_t s = (o * m + j) * v.inner + i, c = idx[s];
                if (c >= v.n)
                    throw std::out_of_range("gather: index " + std::to_string(c) + " at position " + std::to_string(s) +
                                            " is out of range for axis " + std::to_string(axis) + " of length " +
                                            std::to_string(v.n) + " (shape " + shape_str(a.shape()) + ")");
                out.data()[s] = x[(o * v.n + c) * v.inner + i];
            }
    // The index rides along as a float tensor (exact up to 2^24, far beyond any axis here).
    Tensor where_from = needs_recording(&a, &a + 1) ? Tensor(Array(xt::cast<float>(index))) : Tensor();
    return record(op, std::move(out), {a, where_from}, [v, m](const std::vector<Tensor>& in, const Tensor& result) {
        float beta;
        Array& ga = detail::grad_for_accumulate(in[0], beta);
        if (beta == 0.0f) std::fill(ga.begin(), ga.end(), 0.0f);
        const float* g = result.grad().data();
        const float* idx = in[1].value().data();
        for (std::size_t o = 0; o < v.outer; ++o)
            for (std::size_t j = 0; j < m; ++j)
                for (std::size_t i = 0; i < v.inner; ++i) {
                    const std::size_t s = (o * m + j) * v.inner + i;
                    ga.data()[(o * v.n + static_cast<std::size_t>(idx[s])) * v.inner + i] += g[s];
                }
    });
}

}  // namespace tg

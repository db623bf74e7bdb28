#include <algorithm>
#include <numeric>
#include <stdexcept>
#include <vector>

#include <xtensor/xmath.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/bce.hpp"
#include "autograd/kernels/index.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/ops.hpp"

namespace tg {

using In = const std::vector<Tensor>&;

namespace {

// A null input, or an axis with nothing to index, is refused naming the op.
std::size_t nonempty_axis(const Tensor& a, int axis, const char* op) {
    detail::require_defined(op, {&a});
    const std::size_t ax = detail::normalize_axis(axis, a.shape(), op);
    detail::require(a.shape()[ax] > 0, op, "the axis " + std::to_string(axis) + " is empty", a.shape());
    return ax;
}

// As mean() does: the mean of nothing is refused, not a silent NaN.
void require_mean_of_some(Reduction reduction, std::size_t n, const char* op, const Array::shape_type& shape) {
    if (reduction == Reduction::mean && n == 0)
        throw std::invalid_argument(std::string(op) + ": cannot average the loss of an empty tensor of shape " +
                                    shape_str(shape) + " (use Reduction::sum or none)");
}

// The position of the first of the n indices that is not below bound (n if none is).
std::size_t first_out_of_range(const std::size_t* index, std::size_t n, std::size_t bound) {
    return static_cast<std::size_t>(std::find_if(index, index + n, [=](std::size_t c) { return c >= bound; }) - index);
}

}  // namespace

Tensor softmax(const Tensor& logits, int axis) {
    const std::size_t ax = nonempty_axis(logits, axis, "softmax");
    Array y = logits.value();
    kernels::softmax_inplace(y, ax);
    return record("softmax", std::move(y), {logits}, [ax](In in, const Tensor& out) {
        if (creating_graph()) {  // y (g - sum(g y))
            const Tensor g = out.grad_tensor();
            return in[0].accumulate_grad(out * (g - sum(g * out, int(ax), true)), "softmax");
        }
        float beta;
        Array& dx = detail::grad_for_accumulate(in[0], beta, "softmax");
        kernels::softmax_backward(out.value(), out.grad(), ax, 1.0f, beta, dx);
    });
}

Tensor log_softmax(const Tensor& logits, int axis) {
    const std::size_t ax = nonempty_axis(logits, axis, "log_softmax");
    Array y = logits.value();
    kernels::log_softmax_inplace(y, ax);
    return record("log_softmax", std::move(y), {logits}, [ax](In in, const Tensor& out) {
        // dx = g - softmax * sum_axis(g), with softmax = exp(out)
        if (creating_graph()) {
            const Tensor g = out.grad_tensor();
            return in[0].accumulate_grad(g - exp(out) * sum(g, int(ax), true), "log_softmax");
        }
        in[0].accumulate_grad(kernels::log_softmax_backward(out.value(), out.grad(), ax), "log_softmax");
    });
}

Tensor logsumexp(const Tensor& a, int axis, bool keepdims) {
    const std::size_t ax = nonempty_axis(a, axis, "logsumexp");
    Array out = Array::from_shape(detail::reduced_shape(a.shape(), ax, keepdims));
    kernels::logsumexp_along(a.value(), ax, out.data());
    return record("logsumexp", std::move(out), {a}, [ax](In in, const Tensor& o) {
        // dx = g * exp(x - logsumexp(x)): the softmax weights times the slice's gradient
        const Shape kept = detail::reduced_shape(in[0].shape(), ax, true);
        in[0].accumulate_grad(reshape(o.grad_tensor(), kept) * exp(in[0] - reshape(o, kept)), "logsumexp");
    });
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets, Reduction reduction) {
    const char* op = "binary_cross_entropy_with_logits";
    detail::require_defined(op, {&logits, &targets});
    if (logits.shape() != targets.shape())
        throw std::invalid_argument(std::string(op) + ": logits " + shape_str(logits.shape()) + " and targets " +
                                    shape_str(targets.shape()) + " must have the same shape");
    const std::size_t n = logits.size();
    require_mean_of_some(reduction, n, op, logits.shape());
    // One pass: the loss log(1 + exp(x)) - x t = max(x, 0) - x t + log1p(exp(-|x|)), written so
    // that exp never overflows, and, when the logits need a gradient, sigmoid(x) - t from the
    // same exp (kept for the backward: it would cost the exp again).
    const bool each = reduction == Reduction::none;
    const bool keep_dx = grad_enabled() && logits.requires_grad();
    Array loss = Array::from_shape(each ? logits.shape() : Array::shape_type{});
    Array dx = keep_dx ? Array::from_shape(logits.shape()) : Array();
    const double total = kernels::bce_with_logits(logits.value().data(), targets.value().data(), n,
                                                  each ? loss.data() : nullptr, keep_dx ? dx.data() : nullptr);
    if (!each) loss() = static_cast<float>(reduction == Reduction::mean ? total / static_cast<double>(n) : total);
    const float scale = reduction == Reduction::mean ? 1.0f / static_cast<float>(n) : 1.0f;
    return record(op, std::move(loss), {logits, targets}, [op, each, scale, dx = std::move(dx)](In in, const Tensor& out) {
        if (creating_graph()) {  // (sigmoid(x) - t) g and -x g, g broadcast from the reduced loss
            const Tensor g = out.grad_tensor() * scale;
            if (in[0].requires_grad()) in[0].accumulate_grad((sigmoid(in[0]) - in[1]) * g, op);
            if (in[1].requires_grad()) in[1].accumulate_grad(-in[0] * g, op);
            return;
        }
        const float* g = out.grad().data();
        const std::size_t n = in[0].size();
        float beta;
        if (in[0].requires_grad()) {  // (sigmoid(x) - t) g
            Array fresh;  // requires_grad was switched on after the forward
            if (dx.size() != n) fresh = 1.0f / (1.0f + xt::exp(-in[0].value())) - in[1].value();
            float* d = detail::grad_for_accumulate(in[0], beta, op).data();
            kernels::bce_backward_logits(dx.size() == n ? dx.data() : fresh.data(), g, each, scale, n, beta, d);
        }
        if (in[1].requires_grad()) {  // -x g
            float* d = detail::grad_for_accumulate(in[1], beta, op).data();
            kernels::bce_backward_targets(in[0].value().data(), g, each, scale, n, beta, d);
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
    const Indices labels = label_array;  // contiguous, kept for the backward
    if (labels.size() != n)
        throw std::invalid_argument("cross_entropy: " + std::to_string(labels.size()) + " labels for logits of shape " +
                                    shape_str(logits.shape()) + " (one label per row)");
    if (const std::size_t r = first_out_of_range(labels.data(), n, k); r < n)
        throw std::out_of_range("cross_entropy: label " + std::to_string(labels(r)) + " of row " + std::to_string(r) +
                                " is out of range for " + std::to_string(k) + " classes");
    require_mean_of_some(reduction, n, op, logits.shape());
    // -log_softmax(x)[label], which keeps its digits at large logits (unlike logsumexp - x)
    Array log_p = logits.value(), loss = Array::from_shape({n});
    kernels::log_softmax_inplace(log_p, 1);
    kernels::pick_negated(log_p.data(), labels.data(), n, k, loss.data());
    const bool each = reduction == Reduction::none;
    double total = std::accumulate(loss.begin(), loss.end(), 0.0);
    if (reduction == Reduction::mean) total /= static_cast<double>(n);
    const float scale = reduction == Reduction::mean ? 1.0f / static_cast<float>(n) : 1.0f;
    return record(op, each ? std::move(loss) : Array(static_cast<float>(total)), {logits},
                  [labels, each, scale](In in, const Tensor& out) {
                      // d/dx = g_r * (softmax(x_r) - one_hot(label_r))
                      if (creating_graph()) {
                          const Tensor g = out.grad_tensor() * scale;
                          const Tensor rows = each ? reshape(g, Shape{labels.size(), 1}) : g;
                          return in[0].accumulate_grad((softmax(in[0], 1) - one_hot(labels, in[0].shape()[1])) * rows,
                                                       "cross_entropy");
                      }
                      in[0].accumulate_grad(kernels::cross_entropy_backward(in[0].value(), labels.data(),
                                                                           out.grad().data(), each, scale),
                                            "cross_entropy");
                  });
}

Indices argmax(const Tensor& a, int axis) {
    const std::size_t ax = nonempty_axis(a, axis, "argmax");
    Indices out = Indices::from_shape(detail::reduced_shape(a.shape(), ax, false));
    kernels::argmax_along(a.value(), ax, out.data());
    return out;
}

Tensor one_hot(const Indices& indices, std::size_t num_classes) {
    if (num_classes == 0) throw std::invalid_argument("one_hot: num_classes must be positive, got 0");
    if (const std::size_t s = first_out_of_range(indices.data(), indices.size(), num_classes); s < indices.size())
        throw std::out_of_range("one_hot: index " + std::to_string(indices.data()[s]) + " is out of range for " +
                                std::to_string(num_classes) + " classes");
    Array::shape_type shape(indices.shape().begin(), indices.shape().end());
    shape.push_back(num_classes);
    element_count(shape, "one_hot");
    Array out = Array::from_shape(shape);
    kernels::one_hot(indices.data(), indices.size(), num_classes, out.data());
    return Tensor(std::move(out));
}

namespace {
// The [outer, n, inner] view of a around axis after checking an index for it (gather's, or
// scatter_add's into a): of a's rank, a's sizes on every other axis, each entry below n.
kernels::AxisView index_view(const Tensor& a, int axis, const Indices& index, const char* op) {
    const std::size_t ax = nonempty_axis(a, axis, op);
    const Shape index_shape(index.shape().begin(), index.shape().end());
    bool ok = index.dimension() == a.dim();
    for (std::size_t d = 0; ok && d < a.dim(); ++d) ok = d == ax || index_shape[d] == a.shape()[d];
    if (!ok)
        throw std::invalid_argument(std::string(op) + ": the index of shape " + shape_str(index_shape) +
                                    " must match the tensor of shape " + shape_str(a.shape()) + " on every axis but " +
                                    std::to_string(axis));
    const kernels::AxisView v = kernels::axis_view(a.shape(), ax);
    if (const std::size_t s = first_out_of_range(index.data(), index.size(), v.n); s < index.size())
        throw std::out_of_range(std::string(op) + ": index " + std::to_string(index.data()[s]) + " at position " +
                                std::to_string(s) + " is out of range for axis " + std::to_string(axis) + " of length " +
                                std::to_string(v.n) + " (shape " + shape_str(a.shape()) + ")");
    return v;
}
}  // namespace

Tensor gather(const Tensor& a, int axis, const Indices& index) {
    const kernels::AxisView v = index_view(a, axis, index, "gather");
    const std::size_t m = index.shape()[detail::normalize_axis(axis, a.shape(), "gather")];
    Array out = Array::from_shape(Shape(index.shape().begin(), index.shape().end()));
    kernels::gather(a.value().data(), v, m, index.data(), out.data());
    return record("gather", std::move(out), {a}, [axis, index](In in, const Tensor& result) {
        in[0].accumulate_grad(scatter_add(Tensor::zeros(in[0].shape()), axis, index, result.grad_tensor()), "gather");
    });
}

Tensor scatter_add(const Tensor& base, int axis, const Indices& index, const Tensor& src) {
    detail::require_defined("scatter_add", {&base, &src});
    const kernels::AxisView v = index_view(base, axis, index, "scatter_add");
    if (!std::equal(index.shape().begin(), index.shape().end(), src.shape().begin(), src.shape().end()))
        throw std::invalid_argument("scatter_add: src of shape " + shape_str(src.shape()) + " and the index of shape " +
                                    shape_str(Shape(index.shape().begin(), index.shape().end())) + " must be equal");
    const std::size_t m = src.shape()[detail::normalize_axis(axis, base.shape(), "scatter_add")];
    Array out = base.value();
    kernels::scatter_add(src.value().data(), v, m, index.data(), 1.0f, out.data());
    return record("scatter_add", std::move(out), {base, src}, [axis, index](In in, const Tensor& result) {
        const Tensor g = result.grad_tensor();
        if (in[0].requires_grad()) in[0].accumulate_grad(g, "scatter_add");
        if (in[1].requires_grad()) in[1].accumulate_grad(gather(g, axis, index), "scatter_add");
    });
}

}  // namespace tg

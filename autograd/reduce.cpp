// Reductions: sum, mean and max over all elements or along one axis. Their loops are in
// kernels/reduce.hpp, over the contiguous data seen as [outer, n, inner] around the axis.
#include <stdexcept>
#include <string>

#include <xtensor/xbuilder.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/reduce.hpp"
#include "autograd/ops.hpp"

namespace tg {

using kernels::AxisView;
using In = const std::vector<Tensor>&;

namespace {

// g (of the reduced shape) copied along the reduced axis of the [outer, n, inner] view v: the
// recorded form of kernels::spread_along.
Tensor spread(const Tensor& g, const AxisView& v, const Shape& shape) {
    return reshape(broadcast_to(reshape(g, Shape{v.outer, 1, v.inner}), Shape{v.outer, v.n, v.inner}), shape);
}

// Checks a and the axis (that it has an element, if the op needs one) and returns an array for
// the reduced value, with v the [outer, n, inner] view around the axis; without an axis, all
// elements as one [1, size, 1] slice (a 0-d result, or with keepdims one element of a's rank).
Array reduced_output(const Tensor& a, const int* axis, bool keepdims, const char* op, bool need_element, AxisView& v) {
    detail::require_defined(op, {&a});
    const std::size_t ax = axis ? detail::normalize_axis(*axis, a.shape(), op) : 0;
    v = axis ? kernels::axis_view(a.shape(), ax) : AxisView{1, a.size(), 1};
    if (v.n == 0 && need_element)
        throw std::invalid_argument(std::string(op) + (axis ? ": axis " + std::to_string(*axis) + " has length 0, shape "
                                                            : std::string(": cannot average an empty tensor of shape ")) +
                                    shape_str(a.shape()));
    if (!axis) return keepdims ? Array::from_shape(Shape(a.dim(), 1)) : Array(0.0f);
    return Array::from_shape(detail::reduced_shape(a.shape(), ax, keepdims));
}

// sum (scale 1) or mean (scale 1/n) along one axis or of all elements. A long float sum loses
// digits: the sum of all accumulates in double.
Tensor scaled_sum(const Tensor& a, const int* axis, bool keepdims, bool mean, const char* op) {
    AxisView v;
    Array out = reduced_output(a, axis, keepdims, op, mean, v);
    const float scale = mean ? 1.0f / static_cast<float>(v.n) : 1.0f;
    if (axis) kernels::sum_along(a.value().data(), v, scale, out.data());
    else out.data()[0] = static_cast<float>(kernels::sum_all<double>(a.value().data(), v.n) / double(mean ? v.n : 1));
    return record(op, std::move(out), {a}, [v, scale, op](In in, const Tensor& result) {
        if (creating_graph()) return in[0].accumulate_grad(spread(result.grad_tensor() * scale, v, in[0].shape()), op);
        float beta;
        Array& g = detail::grad_for_accumulate(in[0], beta, op);
        kernels::spread_along(result.grad().data(), v, scale, beta, g.data());
    });
}

}  // namespace

Tensor sum(const Tensor& a, bool keepdims) { return scaled_sum(a, nullptr, keepdims, false, "sum"); }
Tensor sum(const Tensor& a, int axis, bool keepdims) { return scaled_sum(a, &axis, keepdims, false, "sum"); }
Tensor mean(const Tensor& a, bool keepdims) { return scaled_sum(a, nullptr, keepdims, true, "mean"); }
Tensor mean(const Tensor& a, int axis, bool keepdims) { return scaled_sum(a, &axis, keepdims, true, "mean"); }

Tensor max(const Tensor& a, int axis, bool keepdims) {
    AxisView v;
    Array out = reduced_output(a, &axis, keepdims, "max", true, v);
    kernels::max_along(a.value().data(), v, out.data());
    return record("max", std::move(out), {a}, [v](In in, const Tensor& result) {
        // the gradient spread, times the constant mask of the first maxima
        Array mask = Array::from_shape(in[0].shape());
        const Array ones = xt::ones<float>(result.shape());
        kernels::max_backward(in[0].value().data(), result.value().data(), ones.data(), v, 0.0f, mask.data());
        in[0].accumulate_grad(spread(result.grad_tensor(), v, in[0].shape()) * Tensor(mask), "max");
    });
}

}  // namespace tg

#include <cmath>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/detail.hpp"
#include "autograd/ops.hpp"

namespace tg {

using detail::sum_to;

namespace {
// Shapes must broadcast; the error names the op before xtensor would throw its own.
void check_broadcast(const Tensor& a, const Tensor& b, const char* op) {
    if (a.shape() != b.shape()) detail::broadcast_shapes(a.shape(), b.shape(), op);
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
    check_broadcast(a, b, "add");
    return record("add", a.value() + b.value(), {a, b}, [](const std::vector<Tensor>& in, const Tensor& out) {
        const Array& g = out.grad();
        if (in[0].requires_grad()) in[0].accumulate_grad(sum_to(g, in[0].shape()), "add");
        if (in[1].requires_grad()) in[1].accumulate_grad(sum_to(g, in[1].shape()), "add");
    });
}

Tensor sub(const Tensor& a, const Tensor& b) {
    check_broadcast(a, b, "sub");
    return record("sub", a.value() - b.value(), {a, b}, [](const std::vector<Tensor>& in, const Tensor& out) {
        const Array& g = out.grad();
        if (in[0].requires_grad()) in[0].accumulate_grad(sum_to(g, in[0].shape()), "sub");
        if (in[1].requires_grad()) in[1].accumulate_grad(sum_to(-g, in[1].shape()), "sub");
    });
}

Tensor mul(const Tensor& a, const Tensor& b) {
    check_broadcast(a, b, "mul");
    return record("mul", a.value() * b.value(), {a, b}, [](const std::vector<Tensor>& in, const Tensor& out) {
        const Array& g = out.grad();
        if (in[0].requires_grad()) in[0].accumulate_grad(sum_to(g * in[1].value(), in[0].shape()), "mul");
        if (in[1].requires_grad()) in[1].accumulate_grad(sum_to(g * in[0].value(), in[1].shape()), "mul");
    });
}

Tensor div(const Tensor& a, const Tensor& b) {
    check_broadcast(a, b, "div");
    return record("div", a.value() / b.value(), {a, b}, [](const std::vector<Tensor>& in, const Tensor& out) {
        const Array& g = out.grad();
        const Array& bv = in[1].value();
        if (in[0].requires_grad()) in[0].accumulate_grad(sum_to(g / bv, in[0].shape()), "div");
        if (in[1].requires_grad())
            in[1].accumulate_grad(sum_to(-g * out.value() / bv, in[1].shape()), "div");
    });
}

Tensor add(const Tensor& a, float s) {
    return record("add_scalar", a.value() + s, {a}, [](const std::vector<Tensor>& in, const Tensor& out) {
        in[0].accumulate_grad(out.grad(), "add_scalar");
    });
}

Tensor mul(const Tensor& a, float s) {
    return record("mul_scalar", a.value() * s, {a}, [s](const std::vector<Tensor>& in, const Tensor& out) {
        in[0].accumulate_grad(out.grad() * s, "mul_scalar");
    });
}

}  // namespace tg

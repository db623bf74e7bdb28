#include <cmath>
#include <string>
#include <type_traits>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xoperation.hpp>

#include "autograd/detail.hpp"
#include "autograd/ops.hpp"

namespace tg {

using detail::accumulate_expr;
using In = const std::vector<Tensor>&;

namespace {
// Shapes must broadcast; the error names the op before xtensor would throw its own.
void check_binary(const Tensor& a, const Tensor& b, const char* op) {
    detail::require_defined(op, {&a, &b});
    if (a.shape() != b.shape()) detail::broadcast_shapes(a.shape(), b.shape(), op);
}

// Accumulates e (of the broadcast output's shape) into t, summed down to t's shape if t
// was broadcast. The common unbroadcast case writes straight into the gradient buffer.
template <class E>
void accumulate_broadcast(const Tensor& t, const E& e, const char* op) {
    const auto& es = e.shape();
    if (std::equal(es.begin(), es.end(), t.shape().begin(), t.shape().end())) accumulate_expr(t, e, op);
    else if constexpr (std::is_same_v<E, Array>) t.accumulate_grad(detail::sum_to(e, t.shape()), op);
    else t.accumulate_grad(detail::sum_to(Array(e), t.shape()), op);
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
    check_binary(a, b, "add");
    return record("add", a.value() + b.value(), {a, b}, [](In in, const Tensor& out) {
        const Array& g = out.grad();
        if (in[0].requires_grad()) accumulate_broadcast(in[0], g, "add");
        if (in[1].requires_grad()) accumulate_broadcast(in[1], g, "add");
    });
}

Tensor sub(const Tensor& a, const Tensor& b) {
    check_binary(a, b, "sub");
    return record("sub", a.value() - b.value(), {a, b}, [](In in, const Tensor& out) {
        const Array& g = out.grad();
        if (in[0].requires_grad()) accumulate_broadcast(in[0], g, "sub");
        if (in[1].requires_grad()) accumulate_broadcast(in[1], -g, "sub");
    });
}

Tensor mul(const Tensor& a, const Tensor& b) {
    check_binary(a, b, "mul");
    return record("mul", a.value() * b.value(), {a, b}, [](In in, const Tensor& out) {
        const Array& g = out.grad();
        if (in[0].requires_grad()) accumulate_broadcast(in[0], g * in[1].value(), "mul");
        if (in[1].requires_grad()) accumulate_broadcast(in[1], g * in[0].value(), "mul");
    });
}

Tensor div(const Tensor& a, const Tensor& b) {
    check_binary(a, b, "div");
    return record("div", a.value() / b.value(), {a, b}, [](In in, const Tensor& out) {
        const Array& g = out.grad();
        const Array& bv = in[1].value();
        if (in[0].requires_grad()) accumulate_broadcast(in[0], g / bv, "div");
        if (in[1].requires_grad()) accumulate_broadcast(in[1], -g * out.value() / bv, "div");
    });
}

Tensor add(const Tensor& a, float s) {
    detail::require_defined("add_scalar", {&a});
    return record("add_scalar", a.value() + s, {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], out.grad(), "add_scalar");
    });
}

Tensor mul(const Tensor& a, float s) {
    detail::require_defined("mul_scalar", {&a});
    return record("mul_scalar", a.value() * s, {a}, [s](In in, const Tensor& out) {
        accumulate_expr(in[0], out.grad() * s, "mul_scalar");
    });
}

Tensor div(const Tensor& a, float s) {
    detail::require_defined("div_scalar", {&a});
    return record("div_scalar", a.value() / s, {a}, [s](In in, const Tensor& out) {
        accumulate_expr(in[0], out.grad() / s, "div_scalar");
    });
}

Tensor rsub(float s, const Tensor& a) {
    detail::require_defined("rsub", {&a});
    return record("rsub", s - a.value(), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], -out.grad(), "rsub");
    });
}

Tensor rdiv(float s, const Tensor& a) {
    detail::require_defined("rdiv", {&a});
    return record("rdiv", s / a.value(), {a}, [](In in, const Tensor& out) {  // d(s/a) = -(s/a)/a
        accumulate_expr(in[0], -out.grad() * out.value() / in[0].value(), "rdiv");
    });
}

Tensor neg(const Tensor& a) {
    detail::require_defined("neg", {&a});
    return record("neg", -a.value(), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], -out.grad(), "neg");
    });
}

Tensor exp(const Tensor& a) {
    detail::require_defined("exp", {&a});
    return record("exp", xt::exp(a.value()), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], out.grad() * out.value(), "exp");
    });
}

Tensor log(const Tensor& a) {
    detail::require_defined("log", {&a});
    return record("log", xt::log(a.value()), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], out.grad() / in[0].value(), "log");
    });
}

Tensor log1p(const Tensor& a) {
    detail::require_defined("log1p", {&a});
    return record("log1p", xt::log1p(a.value()), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], out.grad() / (1.0f + in[0].value()), "log1p");
    });
}

Tensor sqrt(const Tensor& a) {
    detail::require_defined("sqrt", {&a});
    return record("sqrt", xt::sqrt(a.value()), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], 0.5f * out.grad() / out.value(), "sqrt");
    });
}

Tensor square(const Tensor& a) {
    detail::require_defined("square", {&a});
    return record("square", a.value() * a.value(), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], 2.0f * out.grad() * in[0].value(), "square");
    });
}

Tensor pow(const Tensor& a, float p) {
    detail::require_defined("pow", {&a});
    return record("pow", xt::pow(a.value(), p), {a}, [p](In in, const Tensor& out) {
        // p a^(p-1) rather than p out / a, which is 0/0 at a = 0
        accumulate_expr(in[0], p * out.grad() * xt::pow(in[0].value(), p - 1.0f), "pow");
    });
}

Tensor abs(const Tensor& a) {
    detail::require_defined("abs", {&a});
    return record("abs", xt::abs(a.value()), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], out.grad() * xt::sign(in[0].value()), "abs");
    });
}

Tensor sigmoid(const Tensor& a) {
    detail::require_defined("sigmoid", {&a});
    // 1/(1+exp(-x)) stays finite for any x: exp overflows to inf and the quotient to 0.
    return record("sigmoid", 1.0f / (1.0f + xt::exp(-a.value())), {a}, [](In in, const Tensor& out) {
        const Array& s = out.value();
        accumulate_expr(in[0], out.grad() * s * (1.0f - s), "sigmoid");
    });
}

Tensor log_sigmoid(const Tensor& a) {
    detail::require_defined("log_sigmoid", {&a});
    // -softplus(-x) = min(x, 0) - log1p(exp(-|x|)). xt::fmin, not xt::minimum: beside a
    // transcendental, xt::minimum drops the whole expression off xsimd (20x slower).
    const Array& x = a.value();
    return record("log_sigmoid", xt::fmin(x, 0.0f) - xt::log1p(xt::exp(-xt::abs(x))), {a},
                  [](In in, const Tensor& out) {
                      // d/dx = 1 - sigmoid(x) = 1 - exp(out) = -expm1(out), exact for tiny out
                      accumulate_expr(in[0], -out.grad() * xt::expm1(out.value()), "log_sigmoid");
                  });
}

Tensor tanh(const Tensor& a) {
    detail::require_defined("tanh", {&a});
    return record("tanh", xt::tanh(a.value()), {a}, [](In in, const Tensor& out) {
        const Array& t = out.value();
        accumulate_expr(in[0], out.grad() * (1.0f - t * t), "tanh");
    });
}

Tensor relu(const Tensor& a) {
    detail::require_defined("relu", {&a});
    return record("relu", xt::maximum(a.value(), 0.0f), {a}, [](In in, const Tensor& out) {
        accumulate_expr(in[0], xt::where(out.value() > 0.0f, out.grad(), 0.0f), "relu");
    });
}

Tensor softplus(const Tensor& a) {
    detail::require_defined("softplus", {&a});
    const Array& x = a.value();  // xt::fmax for the reason given in log_sigmoid
    return record("softplus", xt::fmax(x, 0.0f) + xt::log1p(xt::exp(-xt::abs(x))), {a},
                  [](In in, const Tensor& out) {
                      // d/dx = sigmoid(x) = 1 - exp(-out) = -expm1(-out), exact for tiny out
                      accumulate_expr(in[0], -out.grad() * xt::expm1(-out.value()), "softplus");
                  });
}

Tensor clamp(const Tensor& a, float lo, float hi) {
    detail::require_defined("clamp", {&a});
    if (!(lo <= hi))
        throw std::invalid_argument("clamp: lo (" + std::to_string(lo) + ") must not exceed hi (" +
                                    std::to_string(hi) + ")");
    return record("clamp", xt::clip(a.value(), lo, hi), {a}, [lo, hi](In in, const Tensor& out) {
        const Array& x = in[0].value();
        accumulate_expr(in[0], xt::where(x >= lo && x <= hi, out.grad(), 0.0f), "clamp");
    });
}

Tensor where(const Tensor& condition_tensor, const Tensor& a, const Tensor& b) {
    detail::require_defined("where", {&condition_tensor, &a, &b});
    const Array& condition = condition_tensor.value();
    try {
        detail::broadcast_shapes(detail::broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
    } catch (const std::invalid_argument&) {
        throw std::invalid_argument("where: shapes " + shape_str(condition.shape()) + " (condition), " +
                                    shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                                    " cannot be broadcast together");
    }
    // The condition rides along as an input that gets no gradient, so the backward captures
    // nothing; detached, so what made it is not walked.
    Tensor cond = grad_enabled() && any_requires_grad({&a, &b})
                       ? (condition_tensor.requires_grad() ? detach(condition_tensor) : condition_tensor)
                       : Tensor();
    return record("where", xt::where(xt::not_equal(condition, 0.0f), a.value(), b.value()), {a, b, cond},
                  [](In in, const Tensor& out) {
                      const Array& g = out.grad();
                      const Array& c = in[2].value();
                      if (in[0].requires_grad())
                          accumulate_broadcast(in[0], xt::where(xt::not_equal(c, 0.0f), g, 0.0f), "where");
                      if (in[1].requires_grad())
                          accumulate_broadcast(in[1], xt::where(xt::not_equal(c, 0.0f), 0.0f, g), "where");
                  });
}

Tensor detach(const Tensor& a) {
    detail::require_defined("detach", {&a});
    return Tensor(a.value());
}

}  // namespace tg

#include <cmath>
#include <string>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>
#include <xtensor/xoperation.hpp>

#include "autograd/detail.hpp"
#include "autograd/ops.hpp"

namespace tg {

using In = const std::vector<Tensor>&;

namespace {
// What a backward sees: the output's gradient g, the inputs x (and y), the output out. Arrays
// for first-order gradients; tensors while creating_graph(), so that one generic formula
// (`d.g * d.out`) gives both the fast path and a recorded, differentiable one.
template <class T> struct Unary { const T &g, &x, &out; };
template <class T> struct Binary { const T &g, &x, &y, &out; };

// A one-input op: its value(x) and its input's gradient grad(Unary), an expression written
// straight into the gradient buffer (accumulate_grad).
template <class Value, class Grad>
Tensor unary(const char* op, const Tensor& a, Value value, Grad grad) {
    detail::require_defined(op, {&a});
    return record(op, value(a.value()), {a}, [op, grad](In in, const Tensor& out) {
        auto run = [&](const auto& d) { in[0].accumulate_grad(grad(d), op); };
        if (!creating_graph()) return run(Unary<Array>{out.grad(), in[0].value(), out.value()});
        const Tensor g = out.grad_tensor();
        run(Unary<Tensor>{g, in[0], out});
    });
}

// A two-input op that broadcasts: value(x, y) and each input's gradient grad_x(Binary),
// grad_y(Binary), of the output's shape (accumulate_grad sums them down to a broadcast input's).
template <class Value, class GradX, class GradY>
Tensor binary(const char* op, const Tensor& a, const Tensor& b, Value value, GradX grad_x, GradY grad_y) {
    detail::require_defined(op, {&a, &b});
    // Shapes must broadcast; the error names the op before xtensor would throw its own.
    if (a.shape() != b.shape()) broadcast_shapes(a.shape(), b.shape(), op);
    return record(op, value(a.value(), b.value()), {a, b}, [op, grad_x, grad_y](In in, const Tensor& out) {
        auto both = [&](const auto& d) {
            if (in[0].requires_grad()) in[0].accumulate_grad(grad_x(d), op);
            if (in[1].requires_grad()) in[1].accumulate_grad(grad_y(d), op);
        };
        if (!creating_graph()) return both(Binary<Array>{out.grad(), in[0].value(), in[1].value(), out.value()});
        const Tensor g = out.grad_tensor();
        both(Binary<Tensor>{g, in[0], in[1], out});
    });
}
}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
    return binary("add", a, b, [](auto& x, auto& y) { return x + y; }, [](auto& d) -> auto& { return d.g; },
                  [](auto& d) -> auto& { return d.g; });
}

Tensor sub(const Tensor& a, const Tensor& b) {
    return binary("sub", a, b, [](auto& x, auto& y) { return x - y; }, [](auto& d) -> auto& { return d.g; },
                  [](auto& d) { return -d.g; });
}

Tensor mul(const Tensor& a, const Tensor& b) {
    return binary("mul", a, b, [](auto& x, auto& y) { return x * y; }, [](auto& d) { return d.g * d.y; },
                  [](auto& d) { return d.g * d.x; });
}

Tensor div(const Tensor& a, const Tensor& b) {
    return binary("div", a, b, [](auto& x, auto& y) { return x / y; }, [](auto& d) { return d.g / d.y; },
                  [](auto& d) { return -d.g * d.out / d.y; });
}

Tensor add(const Tensor& a, float s) {
    return unary("add_scalar", a, [s](auto& x) { return x + s; }, [](auto& d) -> auto& { return d.g; });
}

Tensor mul(const Tensor& a, float s) {
    return unary("mul_scalar", a, [s](auto& x) { return x * s; }, [s](auto& d) { return d.g * s; });
}

Tensor div(const Tensor& a, float s) {
    return unary("div_scalar", a, [s](auto& x) { return x / s; }, [s](auto& d) { return d.g / s; });
}

Tensor rsub(float s, const Tensor& a) {
    return unary("rsub", a, [s](auto& x) { return s - x; }, [](auto& d) { return -d.g; });
}

Tensor rdiv(float s, const Tensor& a) {  // d(s/a) = -(s/a)/a
    return unary("rdiv", a, [s](auto& x) { return s / x; }, [](auto& d) { return -d.g * d.out / d.x; });
}

Tensor neg(const Tensor& a) {
    return unary("neg", a, [](auto& x) { return -x; }, [](auto& d) { return -d.g; });
}

Tensor exp(const Tensor& a) {
    return unary("exp", a, [](auto& x) { return xt::exp(x); }, [](auto& d) { return d.g * d.out; });
}

Tensor log(const Tensor& a) {
    return unary("log", a, [](auto& x) { return xt::log(x); }, [](auto& d) { return d.g / d.x; });
}

Tensor log1p(const Tensor& a) {
    return unary("log1p", a, [](auto& x) { return xt::log1p(x); }, [](auto& d) { return d.g / (1.0f + d.x); });
}

Tensor sqrt(const Tensor& a) {
    return unary("sqrt", a, [](auto& x) { return xt::sqrt(x); }, [](auto& d) { return 0.5f * d.g / d.out; });
}

Tensor square(const Tensor& a) {
    return unary("square", a, [](auto& x) { return x * x; }, [](auto& d) { return 2.0f * d.g * d.x; });
}

Tensor pow(const Tensor& a, float p) {  // the gradient p a^(p-1) rather than p out / a, which is 0/0 at a = 0
    return unary("pow", a, [p](auto& x) { return xt::pow(x, p); },
                 [p](auto& d) { return p * d.g * pow(d.x, p - 1.0f); });
}

Tensor abs(const Tensor& a) {
    return unary("abs", a, [](auto& x) { return xt::abs(x); }, [](auto& d) { return d.g * sign(d.x); });
}

Tensor sigmoid(const Tensor& a) {  // 1/(1+exp(-x)) stays finite for any x: exp overflows to inf and the quotient to 0
    return unary("sigmoid", a, [](auto& x) { return 1.0f / (1.0f + xt::exp(-x)); },
                 [](auto& d) { return d.g * d.out * (1.0f - d.out); });
}

Tensor log_sigmoid(const Tensor& a) {
    // -softplus(-x) = min(x, 0) - log1p(exp(-|x|)). xt::fmin, not xt::minimum: beside a
    // transcendental, xt::minimum drops the whole expression off xsimd (20x slower).
    // d/dx = 1 - sigmoid(x) = 1 - exp(out) = -expm1(out), exact for tiny out
    return unary("log_sigmoid", a, [](auto& x) { return xt::fmin(x, 0.0f) - xt::log1p(xt::exp(-xt::abs(x))); },
                 [](auto& d) { return -d.g * expm1(d.out); });
}

Tensor tanh(const Tensor& a) {
    return unary("tanh", a, [](auto& x) { return xt::tanh(x); },
                 [](auto& d) { return d.g * (1.0f - d.out * d.out); });
}

Tensor relu(const Tensor& a) {
    return unary("relu", a, [](auto& x) { return xt::maximum(x, 0.0f); },
                 [](auto& d) { return where(d.out > 0.0f, d.g, 0.0f); });
}

Tensor softplus(const Tensor& a) {
    // xt::fmax for the reason given in log_sigmoid.
    // d/dx = sigmoid(x) = 1 - exp(-out) = -expm1(-out), exact for tiny out
    return unary("softplus", a, [](auto& x) { return xt::fmax(x, 0.0f) + xt::log1p(xt::exp(-xt::abs(x))); },
                 [](auto& d) { return -d.g * expm1(-d.out); });
}

Tensor clamp(const Tensor& a, float lo, float hi) {
    if (!(lo <= hi))
        throw std::invalid_argument("clamp: lo (" + std::to_string(lo) + ") must not exceed hi (" +
                                    std::to_string(hi) + ")");
    return unary("clamp", a, [lo, hi](auto& x) { return xt::clip(x, lo, hi); },
                 [lo, hi](auto& d) { return where(d.x >= lo, where(d.x <= hi, d.g, 0.0f), 0.0f); });
}

Tensor where(const Tensor& condition_tensor, const Tensor& a, const Tensor& b) {
    detail::require_defined("where", {&condition_tensor, &a, &b});
    const Array& condition = condition_tensor.value();
    try {
        broadcast_shapes(broadcast_shapes(condition.shape(), a.shape(), "where"), b.shape(), "where");
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
                      const Tensor g = out.grad_tensor();
                      if (in[0].requires_grad()) in[0].accumulate_grad(where(in[2], g, 0.0f), "where");
                      if (in[1].requires_grad()) in[1].accumulate_grad(where(in[2], 0.0f, g), "where");
                  });
}

Tensor where(const Tensor& condition, const Tensor& a, float b) { return where(condition, a, Tensor::scalar(b)); }
Tensor where(const Tensor& condition, float a, const Tensor& b) { return where(condition, Tensor::scalar(a), b); }

Tensor expm1(const Tensor& a) {  // exp(x) - 1, exact for tiny x
    return unary("expm1", a, [](auto& x) { return xt::expm1(x); }, [](auto& d) { return d.g * (d.out + 1.0f); });
}

namespace {
// A constant of a's shape, computed from a's value: no gradient flows through it.
template <class F>
Tensor constant_of(const char* op, const Tensor& a, F f) {
    detail::require_defined(op, {&a});
    return Tensor(Array(f(a.value())));
}
}  // namespace

Tensor sign(const Tensor& a) { return constant_of("sign", a, [](auto& x) { return xt::sign(x); }); }
Tensor operator>(const Tensor& a, float s) { return constant_of(">", a, [s](auto& x) { return xt::cast<float>(x > s); }); }
Tensor operator<(const Tensor& a, float s) { return constant_of("<", a, [s](auto& x) { return xt::cast<float>(x < s); }); }
Tensor operator>=(const Tensor& a, float s) { return constant_of(">=", a, [s](auto& x) { return xt::cast<float>(x >= s); }); }
Tensor operator<=(const Tensor& a, float s) { return constant_of("<=", a, [s](auto& x) { return xt::cast<float>(x <= s); }); }

Tensor detach(const Tensor& a) {
    detail::require_defined("detach", {&a});
    return Tensor(a.value());
}

}  // namespace tg

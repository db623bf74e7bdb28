#include "autograd/stochastic.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>

#include <xtensor/xmath.hpp>

#include "autograd/debug/anomaly.hpp"
#include "autograd/detail.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/kernels/noise.hpp"
#include "autograd/kernels/sparse.hpp"
#include "autograd/ops.hpp"

namespace tg {

using In = const std::vector<Tensor>&;

namespace {

std::string printed(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", double(v));
    return buf;
}

// A discrete sample of NaN or infinite logits would look normal (argmax and comparisons
// ignore NaN): refuse it, under AnomalyGuard as an AnomalyError.
void require_finite_logits(const Tensor& logits, const char* op) {
    detail::require_defined(op, {&logits});
    const Array& a = logits.value();
    if (all_finite(a)) return;
    const std::size_t i = static_cast<std::size_t>(
        std::find_if(a.begin(), a.end(), [](float v) { return !std::isfinite(v); }) - a.begin());
    const std::string msg = std::string(op) + ": the logits hold " + printed(a.data()[i]) + " at flat index " +
                            std::to_string(i) + "; a discrete sample of them is undefined (find the op that made it "
                                                "with tg::AnomalyGuard)";
    if (anomaly_detection()) throw AnomalyError(msg);
    throw std::invalid_argument(msg);
}

// u in the logits' shape, every entry a normal float in (0,1): log_positive, which the
// transforms use, is exact only for normal positive floats.
void check_uniforms(const Array::shape_type& shape, const Array& u, const char* op) {
    if (u.shape() != shape)
        throw std::invalid_argument(std::string(op) + ": uniforms u of shape " + shape_str(u.shape()) +
                                    " do not match logits of shape " + shape_str(shape));
    for (std::size_t i = 0; i < u.size(); ++i) {
        const float v = u.data()[i];
        if (!(v >= FLT_MIN && v < 1.0f))
            throw std::invalid_argument(std::string(op) + ": u must lie in the open interval (0, 1) (normal floats), got " +
                                        printed(v) + " at flat index " + std::to_string(i));
    }
}

// The two noises, each as its pass over uniforms (gumbel_noise) and its pass adding logits
// (noisy_logits): -log(-log u) and log(u / (1 - u)) (kernels/noise.hpp).
struct NoiseKind {
    void (*add_to_logits)(const float* logits, std::size_t n, float scale, float* z);
    void (*of_uniforms)(const float* u, std::size_t n, float* out);
};
constexpr NoiseKind gumbel_of{kernels::add_gumbel_noise, kernels::gumbel_noise};
constexpr NoiseKind logistic_of{kernels::add_logistic_noise, kernels::logistic_noise};

// The one-hot of argmax of each slice of z (the first maximum on ties); v.n > 0 (class_view).
// The one-hot of the argmax of each slice of view v of z and, when the classes lie along
// contiguous memory, its list of ones for linear and matmul (kernels::one_hot_rows).
struct OneHot {
    Array value;
    std::shared_ptr<const kernels::BinaryRows> rows;
};
OneHot one_hot_of_argmax(const Array& z, const kernels::AxisView& v) {
    Array h = xt::zeros<float>(z.shape());
    if (v.inner == 1 && v.n >= 2 && z.dimension() > 0 && z.shape().back() % v.n == 0) {
        auto rows = std::make_shared<kernels::BinaryRows>();
        kernels::one_hot_rows(z.data(), v.outer, v.n, z.shape().back(), h.data(), *rows);
        return {std::move(h), std::move(rows)};
    }
    std::vector<std::size_t> index(v.outer * v.inner);
    kernels::argmax_along(z, v, index.data());
    for (std::size_t s = 0; s < index.size(); ++s)
        h.data()[(s / v.inner) * v.n * v.inner + index[s] * v.inner + s % v.inner] = 1.0f;
    return {std::move(h), nullptr};
}

// t, marked as holding a discrete sample (linear and matmul then take their sparse kernels).
Tensor discrete(Tensor t, std::shared_ptr<const kernels::BinaryRows> rows = nullptr) {
    t.mark_discrete_sample();
    t.impl()->sample_rows = std::move(rows);
    return t;
}

// Where the uniforms of a fused sample come from: given (u, checked) or drawn (gen).
struct Noise {
    const Array* u = nullptr;
    Generator* gen = nullptr;
};

Noise given_uniforms(const Tensor& logits, const Array& u, const char* op) {
    detail::require_defined(op, {&logits});
    check_uniforms(logits.shape(), u, op);
    return Noise{&u, nullptr};
}

// z := (logits + noise(u)) * scale, the uniforms drawn (or copied) straight into z and
// transformed in place.
Array noisy_logits(const Tensor& logits, const Noise& from, const NoiseKind& noise, float scale = 1.0f) {
    const std::size_t n = logits.size();
    Array z = Array::from_shape(logits.shape());
    float* zp = z.data();
    if (from.u) std::copy(from.u->data(), from.u->data() + n, zp);
    else (from.gen ? *from.gen : default_generator()).fill_uniform_open(zp, n);
    noise.add_to_logits(logits.value().data(), n, scale, zp);
    return z;
}

// softmax over the classes of view v of x (x's shape kept): the differentiable group softmax.
Tensor class_softmax(const Tensor& x, const kernels::AxisView& v) {
    return reshape(softmax(reshape(x, Shape{v.outer, v.n, v.inner}), 1), x.shape());
}

// dx = y (g - sum_class(g y)) * scale over the classes of view v, with ops.
Tensor class_softmax_grad(const Tensor& y, const Tensor& g, const kernels::AxisView& v, float scale) {
    const Shape view{v.outer, v.n, v.inner};
    const Tensor y3 = reshape(y, view), g3 = reshape(g, view);
    return reshape(y3 * (g3 - sum(g3 * y3, 1, true)) * scale, y.shape());
}

// The fused relaxed one-hot sample over the slices of view v of the logits.
Tensor relaxed_one_hot(const Tensor& logits, const Noise& from, const GumbelSoftmaxOptions& o, const char* op) {
    const kernels::AxisView v = detail::class_view(logits.shape(), o, op);
    const bool hard = o.hard();
    if (hard) require_finite_logits(logits, op);
    const float inv_tau = 1.0f / o.tau();
    Array z = noisy_logits(logits, from, gumbel_of, hard ? 1.0f : inv_tau);
    // the hard value from logits + g itself (exact Gumbel-Max): after the division by a small
    // tau and the softmax, two close entries could round to the same value
    OneHot hard_value = hard ? one_hot_of_argmax(z, v) : OneHot();
    if (hard)
        for (float& x : z) x *= inv_tau;
    kernels::softmax_inplace(z, v);
    if (!hard)
        return record(op, std::move(z), {logits}, [v, inv_tau, op](In in, const Tensor& out) {
            if (creating_graph()) return in[0].accumulate_grad(class_softmax_grad(out, out.grad_tensor(), v, inv_tau), op);
            float beta;
            Array& dx = detail::grad_for_accumulate(in[0], beta, op);
            kernels::softmax_backward(out.value(), out.grad(), v, inv_tau, beta, dx);
        });
    // straight-through: the output is the one-hot, the backward goes through the relaxed y
    return discrete(record(op, std::move(hard_value.value), {logits}, [v, inv_tau, op, y = std::move(z)](In in, const Tensor& out) {
        if (creating_graph()) {
            // y as a function of the logits: softmax is shift-invariant per group, so the
            // constant log(y) - logits / tau (the noise / tau, up to a shift) recovers it
            const Tensor c(Array(xt::log(y) - in[0].value() * inv_tau));
            const Tensor y_t = class_softmax(in[0] * inv_tau + c, v);
            return in[0].accumulate_grad(class_softmax_grad(y_t, out.grad_tensor(), v, inv_tau), op);
        }
        float beta;
        Array& dx = detail::grad_for_accumulate(in[0], beta, op);
        kernels::softmax_backward(y, out.grad(), v, inv_tau, beta, dx);
    }), std::move(hard_value.rows));
}

// The fused relaxed Bernoulli sample: noise, logits, the hard value and the sigmoid in one pass;
// the gradient g y (1 - y) / tau.
Tensor relaxed_bernoulli(const Tensor& logits, const Noise& from, const BinaryConcreteOptions& o, const char* op) {
    const bool hard = o.hard();
    if (hard) require_finite_logits(logits, op);
    Array z = noisy_logits(logits, from, logistic_of);
    Array hard_value = hard ? Array::from_shape(logits.shape()) : Array();
    kernels::tempered_sigmoid(z.data(), z.size(), o.tau(), hard ? hard_value.data() : nullptr);
    const float inv_tau = 1.0f / o.tau();
    auto backward = [inv_tau, op, hard](In in, const Tensor& out, const Array& y) {
        if (creating_graph()) {
            // the hard form's y as a function of the logits, as in relaxed_one_hot
            const Tensor y_t = hard ? sigmoid(in[0] * inv_tau +
                                              Tensor(Array(xt::log(y) - xt::log1p(-y) - in[0].value() * inv_tau)))
                                    : out;
            return in[0].accumulate_grad(out.grad_tensor() * y_t * (1.0f - y_t) * inv_tau, op);
        }
        in[0].accumulate_grad(out.grad() * y * (1.0f - y) * inv_tau, op);
    };
    if (!hard)
        return record(op, std::move(z), {logits}, [backward](In in, const Tensor& out) { backward(in, out, out.value()); });
    return discrete(record(op, std::move(hard_value), {logits},
                           [backward, y = std::move(z)](In in, const Tensor& out) { backward(in, out, y); }));
}

// noise(u) elementwise, with the samplers' own arithmetic.
Array noise_of(const Array& u, const NoiseKind& noise, const char* op) {
    check_uniforms(u.shape(), u, op);
    Array out = Array::from_shape(u.shape());
    noise.of_uniforms(u.data(), u.size(), out.data());
    return out;
}

}  // namespace

// A denormal tau passes "positive", yet 1/tau overflows or the division loses its digits: the
// samples and gradients would be NaN.
float detail::checked_tau(float tau, const char* op) {
    if (!(tau > 0.0f) || !std::isfinite(tau))
        throw std::invalid_argument(std::string(op) + ": the temperature tau must be positive and finite, got " +
                                    printed(tau));
    if (tau < FLT_MIN || !std::isfinite(1.0f / tau))
        throw std::invalid_argument(std::string(op) + ": the temperature tau " + printed(tau) +
                                    " is below the smallest normal float 1.17549435e-38 (1/tau overflows); use a "
                                    "larger tau");
    return tau;
}

kernels::AxisView detail::class_view(const Array::shape_type& shape, const GumbelSoftmaxOptions& options,
                                     const char* op) {
    const std::size_t ax = normalize_axis(options.axis(), shape, op);
    kernels::AxisView v = kernels::axis_view(shape, ax);
    require(v.n > 0, op, "the class axis " + std::to_string(ax) + " is empty", shape);
    const std::size_t k = options.classes();
    if (k == 0) return v;
    require(v.n % k == 0, op,
            "axis " + std::to_string(ax) + " of length " + std::to_string(v.n) + " does not hold whole groups of " +
                std::to_string(k) + " classes",
            shape);
    return kernels::AxisView{v.outer * (v.n / k), k, v.inner};
}

Tensor gumbel_softmax(const Tensor& logits, const GumbelSoftmaxOptions& options) {
    detail::require_defined("gumbel_softmax", {&logits});
    return relaxed_one_hot(logits, Noise{nullptr, options.generator()}, options, "gumbel_softmax");
}

Tensor gumbel_softmax_from_uniforms(const Tensor& logits, const Array& u, const GumbelSoftmaxOptions& options) {
    const char* op = "gumbel_softmax_from_uniforms";
    return relaxed_one_hot(logits, given_uniforms(logits, u, op), options, op);
}

Tensor binary_concrete(const Tensor& logits, const BinaryConcreteOptions& options) {
    detail::require_defined("binary_concrete", {&logits});
    return relaxed_bernoulli(logits, Noise{nullptr, options.generator()}, options, "binary_concrete");
}

Tensor binary_concrete_from_uniforms(const Tensor& logits, const Array& u, const BinaryConcreteOptions& options) {
    const char* op = "binary_concrete_from_uniforms";
    return relaxed_bernoulli(logits, given_uniforms(logits, u, op), options, op);
}

Array gumbel_noise(const Array& u) { return noise_of(u, gumbel_of, "gumbel_noise"); }
Array logistic_noise(const Array& u) { return noise_of(u, logistic_of, "logistic_noise"); }

Tensor gumbel_max(const Tensor& logits, const GumbelSoftmaxOptions& options) {
    require_finite_logits(logits, "gumbel_max");
    const kernels::AxisView v = detail::class_view(logits.shape(), options, "gumbel_max");
    OneHot h = one_hot_of_argmax(noisy_logits(logits, Noise{nullptr, options.generator()}, gumbel_of), v);
    return discrete(Tensor(std::move(h.value)), std::move(h.rows));
}

Tensor bernoulli_sample(const Tensor& logits, Generator* gen) {
    require_finite_logits(logits, "bernoulli_sample");
    // P(logits + L > 0) = P(L > -logits) = sigmoid(logits) for L ~ Logistic(0,1)
    Array z = noisy_logits(logits, Noise{nullptr, gen}, logistic_of);
    for (float& v : z) v = v > 0.0f ? 1.0f : 0.0f;
    return discrete(Tensor(std::move(z)));
}

Tensor score_function_surrogate(const Tensor& f, const Tensor& log_q, float baseline) {
    const char* op = "score_function_surrogate";
    detail::require_defined(op, {&f, &log_q});
    if (f.shape() != log_q.shape())
        throw std::invalid_argument("score_function_surrogate: f " + shape_str(f.shape()) + " and log_q " +
                                    shape_str(log_q.shape()) + " must have the same shape (one entry per sample)");
    Array value = f.value() + (f.value() - baseline) * log_q.value();
    return record(op, std::move(value), {f, log_q}, [baseline, op](In in, const Tensor& out) {
        const Tensor g = out.grad_tensor();
        if (in[0].requires_grad()) in[0].accumulate_grad(g, op);  // stop_gradient(f - b)
        if (in[1].requires_grad()) in[1].accumulate_grad(g * Tensor(Array(in[0].value() - baseline)), op);
    });
}

Tensor straight_through_bernoulli(const Tensor& logits, Generator* gen) {
    const char* op = "straight_through_bernoulli";
    require_finite_logits(logits, op);
    return discrete(record(op, bernoulli_sample(logits, gen).value(), {logits}, [op](In in, const Tensor& out) {
        const Tensor s = sigmoid(in[0]);
        in[0].accumulate_grad(out.grad_tensor() * s * (1.0f - s), op);
    }));
}

Tensor straight_through_categorical(const Tensor& logits, const GumbelSoftmaxOptions& options) {
    const char* op = "straight_through_categorical";
    require_finite_logits(logits, op);
    const kernels::AxisView v = detail::class_view(logits.shape(), options, op);
    OneHot h = one_hot_of_argmax(noisy_logits(logits, Noise{nullptr, options.generator()}, gumbel_of), v);
    return discrete(record(op, std::move(h.value), {logits}, [v, op](In in, const Tensor& out) {
        in[0].accumulate_grad(class_softmax_grad(class_softmax(in[0], v), out.grad_tensor(), v, 1.0f), op);
    }), std::move(h.rows));
}

Tensor log_mean_exp(const Tensor& log_w, int axis, bool keepdims) {
    const char* op = "log_mean_exp";
    detail::require_defined(op, {&log_w});
    const std::size_t ax = detail::normalize_axis(axis, log_w.shape(), op);
    // log of a mean of no samples would be -inf + inf = NaN
    detail::require(log_w.shape()[ax] > 0, op, "the axis " + std::to_string(ax) + " of samples is empty", log_w.shape());
    return add(logsumexp(log_w, axis, keepdims), -std::log(static_cast<float>(log_w.shape()[ax])));
}

}  // namespace tg

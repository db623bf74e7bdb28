#include "layers/gumbel.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <stdexcept>
#include <string>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/kernels/noise.hpp"
#include "layers/detail_checks.hpp"

namespace tg {

namespace {

void check_tau(float tau, const char* op) {
    detail::require_positive_finite(tau, std::string(op) + ": the temperature tau");
}

std::string printed(float v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", double(v));
    return buf;
}

// u in the logits' shape, every entry a normal float in (0,1): log_positive, which the
// transforms use, is exact only for normal positive floats.
void check_uniforms(const Array::shape_type& shape, const Array& u, const char* op) {
    if (u.shape() != shape)
        throw std::invalid_argument(std::string(op) + ": uniforms u of shape " + shape_str(u.shape()) +
                                    " do not match logits of shape " + shape_str(shape));
    for (std::size_t i = 0; i < u.size(); ++i) {
        const float v = u.data()[i];
        if (!(v >= std::numeric_limits<float>::min() && v < 1.0f))
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
Array one_hot_of_argmax(const Array& z, const detail::AxisView& v) {
    std::vector<std::size_t> index(v.outer * v.inner);
    detail::argmax_along(z, v, index.data());
    Array h = xt::zeros<float>(z.shape());
    for (std::size_t s = 0; s < index.size(); ++s)
        h.data()[(s / v.inner) * v.n * v.inner + index[s] * v.inner + s % v.inner] = 1.0f;
    return h;
}

// Where the uniforms of a fused sample come from: given (u, checked) or drawn (gen).
struct Noise {
    const Array* u = nullptr;
    Generator* gen = nullptr;
};

// The uniforms u given for logits, checked.
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

// The fused relaxed one-hot sample over the slices of view v of the logits.
Tensor relaxed_one_hot(const Tensor& logits, const Noise& from, const GumbelSoftmaxOptions& o, const char* op) {
    const detail::AxisView v = detail::class_view(logits.shape(), o, op);
    const bool hard = o.hard();
    const float inv_tau = 1.0f / o.tau();
    Array z = noisy_logits(logits, from, gumbel_of, hard ? 1.0f : inv_tau);
    // the hard value from logits + g itself (exact Gumbel-Max): after the division by a small
    // tau and the softmax, two close entries could round to the same value
    Array hard_value = hard ? one_hot_of_argmax(z, v) : Array();
    if (hard)
        for (float& x : z) x *= inv_tau;
    detail::softmax_inplace(z, v);
    if (!hard)
        return record(op, std::move(z), {logits}, [v, inv_tau](const std::vector<Tensor>& in, const Tensor& out) {
            float beta;
            Array& dx = detail::grad_for_accumulate(in[0], beta);
            detail::softmax_backward(out.value(), out.grad(), v, inv_tau, beta, dx);
        });
    // straight-through: the output is the one-hot, the backward goes through the relaxed y
    return record(op, std::move(hard_value), {logits},
                  [v, inv_tau, y = std::move(z)](const std::vector<Tensor>& in, const Tensor& out) {
                      float beta;
                      Array& dx = detail::grad_for_accumulate(in[0], beta);
                      detail::softmax_backward(y, out.grad(), v, inv_tau, beta, dx);
                  });
}

// dx += g * y (1 - y) / tau, the sigmoid's gradient through its output.
void relaxed_bernoulli_backward(const Tensor& x, const Array& y, const Array& g, float inv_tau) {
    float beta;
    Array& dx = detail::grad_for_accumulate(x, beta);
    float* d = dx.data();
    const float* yp = y.data();
    const float* gp = g.data();
    if (beta == 0.0f)
        for (std::size_t i = 0; i < dx.size(); ++i) d[i] = gp[i] * yp[i] * (1.0f - yp[i]) * inv_tau;
    else
        for (std::size_t i = 0; i < dx.size(); ++i) d[i] += gp[i] * yp[i] * (1.0f - yp[i]) * inv_tau;
}

// The fused relaxed Bernoulli sample: noise, logits, the hard value and the sigmoid in one pass.
Tensor relaxed_bernoulli(const Tensor& logits, const Noise& from, const BinaryConcreteOptions& o, const char* op) {
    const bool hard = o.hard();
    Array z = noisy_logits(logits, from, logistic_of);
    Array hard_value = hard ? Array::from_shape(logits.shape()) : Array();
    kernels::tempered_sigmoid(z.data(), z.size(), o.tau(), hard ? hard_value.data() : nullptr);
    const float inv_tau = 1.0f / o.tau();
    if (!hard)
        return record(op, std::move(z), {logits}, [inv_tau](const std::vector<Tensor>& in, const Tensor& out) {
            relaxed_bernoulli_backward(in[0], out.value(), out.grad(), inv_tau);
        });
    return record(op, std::move(hard_value), {logits},
                  [inv_tau, y = std::move(z)](const std::vector<Tensor>& in, const Tensor& out) {
                      relaxed_bernoulli_backward(in[0], y, out.grad(), inv_tau);
                  });
}

// noise(u) elementwise, with the samplers' own arithmetic.
Array noise_of(const Array& u, const NoiseKind& noise, const char* op) {
    check_uniforms(u.shape(), u, op);
    Array out = Array::from_shape(u.shape());
    noise.of_uniforms(u.data(), u.size(), out.data());
    return out;
}

}  // namespace

GumbelSoftmaxOptions& GumbelSoftmaxOptions::tau(float tau) {
    check_tau(tau, "GumbelSoftmaxOptions::tau");
    tau_ = tau;
    return *this;
}

BinaryConcreteOptions& BinaryConcreteOptions::tau(float tau) {
    check_tau(tau, "BinaryConcreteOptions::tau");
    tau_ = tau;
    return *this;
}

detail::AxisView detail::class_view(const Array::shape_type& shape, const GumbelSoftmaxOptions& options,
                                    const char* op) {
    const std::size_t ax = normalize_axis(options.axis(), shape, op);
    AxisView v = axis_view(shape, ax);
    require(v.n > 0, op, "the class axis " + std::to_string(ax) + " is empty", shape);
    const std::size_t k = options.classes();
    if (k == 0) return v;
    require(v.n % k == 0, op,
            "axis " + std::to_string(ax) + " of length " + std::to_string(v.n) + " does not hold whole groups of " +
                std::to_string(k) + " classes",
            shape);
    return AxisView{v.outer * (v.n / k), k, v.inner};
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
    detail::require_defined("gumbel_max", {&logits});
    const detail::AxisView v = detail::class_view(logits.shape(), options, "gumbel_max");
    const Array z = noisy_logits(logits, Noise{nullptr, options.generator()}, gumbel_of);
    return Tensor(one_hot_of_argmax(z, v));
}

Tensor bernoulli_sample(const Tensor& logits, Generator* gen) {
    detail::require_defined("bernoulli_sample", {&logits});
    // P(logits + L > 0) = P(L > -logits) = sigmoid(logits) for L ~ Logistic(0,1)
    Array z = noisy_logits(logits, Noise{nullptr, gen}, logistic_of);
    for (float& v : z) v = v > 0.0f ? 1.0f : 0.0f;
    return Tensor(std::move(z));
}

}  // namespace tg

namespace tg::nn {

GumbelSoftmax::GumbelSoftmax(GumbelSoftmaxOptions options) : options_(options) {}

void GumbelSoftmax::set_tau(float tau) {
    check_tau(tau, "GumbelSoftmax::set_tau");
    options_.tau(tau);
}

void GumbelSoftmax::set_generator(Generator* generator) { options_.generator(generator); }

Tensor GumbelSoftmax::forward(const Tensor& logits) {
    if (!is_training()) return gumbel_max(logits, options_);
    return gumbel_softmax(logits, options_);
}

BinaryConcrete::BinaryConcrete(BinaryConcreteOptions options) : options_(options) {}

void BinaryConcrete::set_tau(float tau) {
    check_tau(tau, "BinaryConcrete::set_tau");
    options_.tau(tau);
}

void BinaryConcrete::set_generator(Generator* generator) { options_.generator(generator); }

Tensor BinaryConcrete::forward(const Tensor& logits) {
    if (!is_training()) return bernoulli_sample(logits, options_.generator());
    return binary_concrete(logits, options_);
}

}  // namespace tg::nn

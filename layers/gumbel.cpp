#include "layers/gumbel.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/kernels/simd.hpp"

namespace tg {

namespace {

void check_tau(float tau, const char* op) {
    if (!(tau > 0.0f) || !std::isfinite(tau))
        throw std::invalid_argument(std::string(op) + ": the temperature tau must be positive and finite, got " +
                                    std::to_string(tau));
}

void check_noise(const Tensor& logits, const Array& noise, const char* op) {
    if (noise.shape() != logits.shape())
        throw std::invalid_argument(std::string(op) + ": noise of shape " + shape_str(noise.shape()) +
                                    " does not match logits of shape " + shape_str(logits.shape()));
}

// The noise transforms, a batch at a time. 1 - u is exact for the generator's u (odd multiples
// of 2^-24), so log(u / (1 - u)) rounds once where log(u) - log1p(-u) rounds three times, and
// costs one log instead of two.
// Function objects, not functions: noisy_logits inlines them (through a function pointer each
// batch was a call).
struct LogisticOf {
    simd::Batch operator()(const simd::Batch& u) const { return detail::log_positive(u / (simd::Batch(1.0f) - u)); }
};
struct GumbelOf {
    simd::Batch operator()(const simd::Batch& u) const { return -detail::log_positive(-detail::log_positive(u)); }
};
constexpr LogisticOf logistic_of;
constexpr GumbelOf gumbel_of;

// The one-hot of argmax of each slice of z (the first maximum on ties).
Array one_hot_of_argmax(const Array& z, const detail::AxisView& v) {
    std::vector<std::size_t> index(v.outer * v.inner);
    detail::argmax_along(z, v, index.data());
    Array h = xt::zeros<float>(z.shape());
    for (std::size_t s = 0; s < index.size(); ++s)
        h.data()[(s / v.inner) * v.n * v.inner + index[s] * v.inner + s % v.inner] = 1.0f;
    return h;
}

// Where the noise of a fused sample comes from: given (noise) or drawn (gen).
struct Noise {
    const Array* noise = nullptr;
    Generator* gen = nullptr;
};

// z := (logits + noise) * scale, the noise drawn as uniforms straight into z and transformed in
// place.
template <class Transform>
Array noisy_logits(const Tensor& logits, const Noise& from, Transform transform, float scale = 1.0f) {
    const std::size_t n = logits.size();
    Array z = Array::from_shape(logits.shape());
    const float* l = logits.value().data();
    float* zp = z.data();
    if (from.noise) {
        const float* g = from.noise->data();
        for (std::size_t i = 0; i < n; ++i) zp[i] = (g[i] + l[i]) * scale;
        return z;
    }
    (from.gen ? *from.gen : default_generator()).fill_uniform_open(zp, n);
    const simd::Batch k(scale);
    for (std::size_t i = 0; i < n; i += simd::lanes) {
        const std::size_t c = std::min(simd::lanes, n - i);
        simd::store(zp + i, c, (transform(simd::load(zp + i, c, 0.5f)) + simd::load(l + i, c)) * k);
    }
    return z;
}

// The fused relaxed one-hot sample over the slices of view v of the logits.
Tensor relaxed_one_hot(const Tensor& logits, const Noise& from, float tau, bool hard, const detail::AxisView& v,
                       const char* op) {
    check_tau(tau, op);
    const float inv_tau = 1.0f / tau;
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

Tensor relaxed_one_hot(const Tensor& logits, const Noise& from, float tau, bool hard, int axis, const char* op) {
    const std::size_t ax = detail::normalize_axis(axis, logits.shape(), op);
    return relaxed_one_hot(logits, from, tau, hard, detail::axis_view(logits.shape(), ax), op);
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
Tensor relaxed_bernoulli(const Tensor& logits, const Noise& from, float tau, bool hard, const char* op) {
    check_tau(tau, op);
    Array z = noisy_logits(logits, from, logistic_of);
    Array hard_value = hard ? Array::from_shape(logits.shape()) : Array();
    // 1 / (1 + exp(-z / tau)) is exact at both ends in float: exp overflows to inf and gives 0
    const simd::Batch zero(0.0f), one(1.0f), scale(-1.0f / tau);
    float* zp = z.data();
    for (std::size_t i = 0; i < z.size(); i += simd::lanes) {
        const std::size_t c = std::min(simd::lanes, z.size() - i);
        const simd::Batch s = simd::load(zp + i, c);
        if (hard) simd::store(hard_value.data() + i, c, xsimd::select(s > zero, one, zero));
        simd::store(zp + i, c, one / (one + xsimd::exp(s * scale)));
    }
    const float inv_tau = 1.0f / tau;
    if (!hard)
        return record(op, std::move(z), {logits}, [inv_tau](const std::vector<Tensor>& in, const Tensor& out) {
            relaxed_bernoulli_backward(in[0], out.value(), out.grad(), inv_tau);
        });
    return record(op, std::move(hard_value), {logits},
                  [inv_tau, y = std::move(z)](const std::vector<Tensor>& in, const Tensor& out) {
                      relaxed_bernoulli_backward(in[0], y, out.grad(), inv_tau);
                  });
}

}  // namespace

Tensor gumbel_softmax(const Tensor& logits, float tau, bool hard, Generator* gen, int axis) {
    return relaxed_one_hot(logits, Noise{nullptr, gen}, tau, hard, axis, "gumbel_softmax");
}

Tensor gumbel_softmax_with_noise(const Tensor& logits, const Array& gumbel_noise, float tau, bool hard, int axis) {
    check_noise(logits, gumbel_noise, "gumbel_softmax");
    return relaxed_one_hot(logits, Noise{&gumbel_noise, nullptr}, tau, hard, axis, "gumbel_softmax");
}

Tensor grouped_gumbel_softmax(const Tensor& logits, std::size_t classes, float tau, bool hard, Generator* gen) {
    const char* op = "grouped_gumbel_softmax";
    detail::require(logits.dim() >= 1 && classes > 0 && logits.shape().back() % classes == 0, op,
                    "the last axis must hold whole groups of " + std::to_string(classes) + " classes", logits.shape());
    const std::size_t groups = logits.size() / classes;
    return relaxed_one_hot(logits, Noise{nullptr, gen}, tau, hard, detail::AxisView{groups, classes, 1}, op);
}

Tensor binary_concrete(const Tensor& logits, float tau, bool hard, Generator* gen) {
    return relaxed_bernoulli(logits, Noise{nullptr, gen}, tau, hard, "binary_concrete");
}

Tensor binary_concrete_with_noise(const Tensor& logits, const Array& logistic_noise, float tau, bool hard) {
    check_noise(logits, logistic_noise, "binary_concrete");
    return relaxed_bernoulli(logits, Noise{&logistic_noise, nullptr}, tau, hard, "binary_concrete");
}

Tensor gumbel_max(const Tensor& logits, Generator* gen, int axis) {
    const std::size_t ax = detail::normalize_axis(axis, logits.shape(), "gumbel_max");
    const Array z = noisy_logits(logits, Noise{nullptr, gen}, gumbel_of);
    return Tensor(one_hot_of_argmax(z, detail::axis_view(z.shape(), ax)));
}

Tensor bernoulli_sample(const Tensor& logits, Generator* gen) {
    // P(logits + L > 0) = P(L > -logits) = sigmoid(logits) for L ~ Logistic(0,1)
    Array z = noisy_logits(logits, Noise{nullptr, gen}, logistic_of);
    for (float& v : z) v = v > 0.0f ? 1.0f : 0.0f;
    return Tensor(std::move(z));
}

}  // namespace tg

namespace tg::nn {

GumbelSoftmax::GumbelSoftmax(GumbelSoftmaxOptions options) : options_(options) {
    check_tau(options.tau, "GumbelSoftmax");
}

void GumbelSoftmax::set_tau(float tau) {
    check_tau(tau, "GumbelSoftmax::set_tau");
    options_.tau = tau;
}

Tensor GumbelSoftmax::forward(const Tensor& logits) {
    if (!is_training()) return gumbel_max(logits, options_.generator, options_.axis);
    return gumbel_softmax(logits, options_.tau, options_.hard, options_.generator, options_.axis);
}

BinaryConcrete::BinaryConcrete(BinaryConcreteOptions options) : options_(options) {
    check_tau(options.tau, "BinaryConcrete");
}

void BinaryConcrete::set_tau(float tau) {
    check_tau(tau, "BinaryConcrete::set_tau");
    options_.tau = tau;
}

Tensor BinaryConcrete::forward(const Tensor& logits) {
    if (!is_training()) return bernoulli_sample(logits, options_.generator);
    return binary_concrete(logits, options_.tau, options_.hard, options_.generator);
}

}  // namespace tg::nn

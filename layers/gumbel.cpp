#include "layers/gumbel.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include <xtensor/xmath.hpp>
#include <xtensor/xnoalias.hpp>

#include "autograd/detail.hpp"
#include "autograd/nn_kernels.hpp"

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

// The uniforms drawn in one call, then transformed vectorized: a loop of std::log is ~10x slower.
Array gumbel_noise(const Array::shape_type& shape, Generator* gen) {
    Array u = (gen ? *gen : default_generator()).uniform_open(Shape(shape.begin(), shape.end()));
    xt::noalias(u) = -xt::log(-xt::log(u));
    return u;
}

Array logistic_noise(const Array::shape_type& shape, Generator* gen) {
    Array u = (gen ? *gen : default_generator()).uniform_open(Shape(shape.begin(), shape.end()));
    xt::noalias(u) = xt::log(u) - xt::log1p(-u);
    return u;
}

// The one-hot of argmax along axis of z (the first maximum on ties).
Array one_hot_of_argmax(const Array& z, std::size_t axis) {
    const detail::AxisView v = detail::axis_view(z.shape(), axis);
    std::vector<std::size_t> index(v.outer * v.inner);
    detail::argmax_along(z, axis, index.data());
    Array h = xt::zeros<float>(z.shape());
    for (std::size_t s = 0; s < index.size(); ++s)
        h.data()[(s / v.inner) * v.n * v.inner + index[s] * v.inner + s % v.inner] = 1.0f;
    return h;
}

// The fused relaxed one-hot sample; z arrives holding the noise and becomes the sample.
Tensor relaxed_one_hot(const Tensor& logits, Array z, float tau, bool hard, int axis, const char* op) {
    check_tau(tau, op);
    const std::size_t ax = detail::normalize_axis(axis, logits.shape(), op);
    xt::noalias(z) += logits.value();
    // the hard value from logits + g itself (exact Gumbel-Max): after the division by a small
    // tau and the softmax, two close entries could round to the same value
    Array hard_value = hard ? one_hot_of_argmax(z, ax) : Array();
    xt::noalias(z) = z * (1.0f / tau);
    detail::softmax_inplace(z, ax);
    const float inv_tau = 1.0f / tau;
    if (!hard)
        return record(op, std::move(z), {logits}, [ax, inv_tau](const std::vector<Tensor>& in, const Tensor& out) {
            float beta;
            Array& dx = detail::grad_for_accumulate(in[0], beta);
            detail::softmax_backward(out.value(), out.grad(), ax, inv_tau, beta, dx);
        });
    // straight-through: the output is the one-hot, the backward goes through the relaxed y
    return record(op, std::move(hard_value), {logits},
                  [ax, inv_tau, y = std::move(z)](const std::vector<Tensor>& in, const Tensor& out) {
                      float beta;
                      Array& dx = detail::grad_for_accumulate(in[0], beta);
                      detail::softmax_backward(y, out.grad(), ax, inv_tau, beta, dx);
                  });
}

// dx += g * y (1 - y) / tau, the sigmoid's gradient through its output.
void relaxed_bernoulli_backward(const Tensor& x, const Array& y, const Array& g, float inv_tau) {
    float beta;
    Array& dx = detail::grad_for_accumulate(x, beta);
    float* d = dx.data();
    const float* yp = y.data();
    const float* gp = g.data();
    if (beta == 0.0f) std::fill(d, d + dx.size(), 0.0f);
    for (std::size_t i = 0; i < dx.size(); ++i) d[i] += gp[i] * yp[i] * (1.0f - yp[i]) * inv_tau;
}

// The fused relaxed Bernoulli sample; z arrives holding the logistic noise.
Tensor relaxed_bernoulli(const Tensor& logits, Array z, float tau, bool hard, const char* op) {
    check_tau(tau, op);
    xt::noalias(z) += logits.value();
    Array hard_value = hard ? Array(xt::cast<float>(z > 0.0f)) : Array();
    // 1 / (1 + exp(-z)) is exact at both ends in float: exp overflows to inf and gives 0
    xt::noalias(z) = 1.0f / (1.0f + xt::exp(z * (-1.0f / tau)));
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
    check_tau(tau, "gumbel_softmax");
    return relaxed_one_hot(logits, gumbel_noise(logits.shape(), gen), tau, hard, axis, "gumbel_softmax");
}

Tensor gumbel_softmax_with_noise(const Tensor& logits, const Array& gumbel_noise, float tau, bool hard, int axis) {
    check_noise(logits, gumbel_noise, "gumbel_softmax");
    return relaxed_one_hot(logits, gumbel_noise, tau, hard, axis, "gumbel_softmax");
}

Tensor binary_concrete(const Tensor& logits, float tau, bool hard, Generator* gen) {
    check_tau(tau, "binary_concrete");
    return relaxed_bernoulli(logits, logistic_noise(logits.shape(), gen), tau, hard, "binary_concrete");
}

Tensor binary_concrete_with_noise(const Tensor& logits, const Array& logistic_noise, float tau, bool hard) {
    check_noise(logits, logistic_noise, "binary_concrete");
    return relaxed_bernoulli(logits, logistic_noise, tau, hard, "binary_concrete");
}

Tensor gumbel_max(const Tensor& logits, Generator* gen, int axis) {
    const std::size_t ax = detail::normalize_axis(axis, logits.shape(), "gumbel_max");
    Array z = gumbel_noise(logits.shape(), gen);
    xt::noalias(z) += logits.value();
    return Tensor(one_hot_of_argmax(z, ax));
}

Tensor bernoulli_sample(const Tensor& logits, Generator* gen) {
    // P(logits + L > 0) = P(L > -logits) = sigmoid(logits) for L ~ Logistic(0,1)
    const Array z = logistic_noise(logits.shape(), gen) + logits.value();
    return Tensor(Array(xt::cast<float>(z > 0.0f)));
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

#include "layers/estimators.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include <xtensor/xmath.hpp>

#include "autograd/detail.hpp"
#include "autograd/kernels/nn_kernels.hpp"
#include "autograd/ops.hpp"
#include "layers/gumbel.hpp"

namespace tg {

Tensor score_function_surrogate(const Tensor& f, const Tensor& log_q, float baseline) {
    if (f.shape() != log_q.shape())
        throw std::invalid_argument("score_function_surrogate: f " + shape_str(f.shape()) + " and log_q " +
                                    shape_str(log_q.shape()) + " must have the same shape (one entry per sample)");
    Array value = f.value() + (f.value() - baseline) * log_q.value();
    return record("score_function_surrogate", std::move(value), {f, log_q},
                  [baseline](const std::vector<Tensor>& in, const Tensor& out) {
                      const char* op = "score_function_surrogate";
                      if (in[0].requires_grad()) in[0].accumulate_grad(out.grad(), op);  // stop_gradient(f - b)
                      if (in[1].requires_grad()) in[1].accumulate_grad(Array(out.grad() * (in[0].value() - baseline)), op);
                  });
}

Tensor straight_through_bernoulli(const Tensor& logits, Generator* gen) {
    detail::require_defined("straight_through_bernoulli", {&logits});
    return record("straight_through_bernoulli", bernoulli_sample(logits, gen).value(), {logits},
                  [](const std::vector<Tensor>& in, const Tensor& out) {
                      Array s = 1.0f / (1.0f + xt::exp(-in[0].value()));
                      in[0].accumulate_grad(Array(out.grad() * s * (1.0f - s)), "straight_through_bernoulli");
                  });
}

Tensor straight_through_categorical(const Tensor& logits, const GumbelSoftmaxOptions& options) {
    const char* op = "straight_through_categorical";
    detail::require_defined(op, {&logits});
    const detail::AxisView v = detail::class_view(logits.shape(), options, op);
    return record(op, gumbel_max(logits, options).value(), {logits},
                  [v](const std::vector<Tensor>& in, const Tensor& out) {
                      Array p = in[0].value();
                      detail::softmax_inplace(p, v);
                      float beta;
                      Array& dx = detail::grad_for_accumulate(in[0], beta);
                      detail::softmax_backward(p, out.grad(), v, 1.0f, beta, dx);
                  });
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

namespace tg::nn {

Reinforce::Reinforce(float decay) : decay_(decay) {
    if (!(decay >= 0.0f && decay < 1.0f))
        throw std::invalid_argument("Reinforce: decay must be in [0, 1), got " + std::to_string(decay));
}

Tensor Reinforce::surrogate(const Tensor& f, const Tensor& log_q) const {
    return score_function_surrogate(f, log_q, baseline_);
}

void Reinforce::update(const Tensor& f) {
    double s = 0.0;
    for (float v : f.value()) s += v;
    const float mean = static_cast<float>(s / static_cast<double>(f.size()));
    baseline_ = started_ ? decay_ * baseline_ + (1.0f - decay_) * mean : mean;
    started_ = true;
}

void Reinforce::set_baseline(float b) {
    baseline_ = b;
    started_ = true;
}

}  // namespace tg::nn

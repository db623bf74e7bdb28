#include "optim/adam.hpp"

#include <cmath>

#include <xtensor/xbuilder.hpp>

namespace tg::optim {

using detail::check_option;

Adam::Adam(std::vector<Tensor> params, AdamOptions options) : Adam(std::move(params), options, false, "Adam") {}

Adam::Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled, const char* who)
    : Optimizer(std::move(params), options.lr, who), options_(options), decoupled_(decoupled) {
    check_option(options.beta1 >= 0.0f && options.beta1 < 1.0f, who, "beta1", "in [0, 1)", options.beta1);
    check_option(options.beta2 >= 0.0f && options.beta2 < 1.0f, who, "beta2", "in [0, 1)", options.beta2);
    check_option(options.eps >= 0.0f && std::isfinite(options.eps), who, "eps", "non-negative and finite",
                 options.eps);
    check_option(options.weight_decay >= 0.0f && std::isfinite(options.weight_decay), who, "weight_decay",
                 "non-negative and finite", options.weight_decay);
    m_.assign(params_.size(), detail::unallocated());
    v_.assign(params_.size(), detail::unallocated());
}

AdamW::AdamW(std::vector<Tensor> params, AdamWOptions o)
    : Adam(std::move(params), AdamOptions{o.lr, o.beta1, o.beta2, o.eps, o.weight_decay}, true, "AdamW") {}

std::vector<Array>& Adam::state_buffer(const std::string& name) {
    if (name == "m") return m_;
    if (name == "v") return v_;
    return Optimizer::state_buffer(name);
}

void Adam::step() {
    const float lr = lr_, b1 = options_.beta1, b2 = options_.beta2, eps = options_.eps;
    const float l2 = decoupled_ ? 0.0f : options_.weight_decay;
    const float shrink = decoupled_ ? 1.0f - lr * options_.weight_decay : 1.0f;
    for (std::size_t i = 0; i < params_.size(); ++i) {
        Tensor& p = params_[i];
        if (!p.has_grad()) continue;
        const std::size_t n = p.size();
        if (m_[i].size() != n || steps_[i] == 0) {
            m_[i] = Array(xt::zeros<float>(p.shape()));
            v_[i] = Array(xt::zeros<float>(p.shape()));
        }
        const std::int64_t t = ++steps_[i];
        // Bias corrections in double: b^t for large t underflows gracefully there.
        const float step_size = static_cast<float>(lr / (1.0 - std::pow(static_cast<double>(b1), t)));
        const float sqrt_bc2 = static_cast<float>(std::sqrt(1.0 - std::pow(static_cast<double>(b2), t)));
        float* w = p.value().data();
        const float* g = p.grad().data();
        float* m = m_[i].data();
        float* v = v_[i].data();
        for (std::size_t j = 0; j < n; ++j) {
            w[j] *= shrink;
            const float d = g[j] + l2 * w[j];
            m[j] = b1 * m[j] + (1.0f - b1) * d;
            v[j] = b2 * v[j] + (1.0f - b2) * d * d;
            w[j] -= step_size * m[j] / (std::sqrt(v[j]) / sqrt_bc2 + eps);
        }
    }
}

}  // namespace tg::optim

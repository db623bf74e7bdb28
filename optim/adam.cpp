#include "optim/adam.hpp"

#include <cmath>

#include <xtensor/xbuilder.hpp>

#include "autograd/threads.hpp"

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

// A plain loop: compiled with -fno-math-errno (CMakeLists.txt), sqrt no longer sets errno and
// GCC vectorizes it (~5 ns per element before, well under 1 after); with -ffp-contract=off
// every element, in the vector body or the scalar tail, gets the same mul/add roundings, so a
// weight's update does not depend on where a thread's piece starts. sqrt(v) / sqrt(1 - b2^t)
// is a product with the reciprocal: one division per element instead of two.
void Adam::update(float* __restrict w, const float* __restrict g, float* __restrict m, float* __restrict v,
                  std::size_t n, float step_size, float inv_sqrt_bc2, float shrink, float l2) const {
    const float b1 = options_.beta1, b2 = options_.beta2, eps = options_.eps;
    for (std::size_t j = 0; j < n; ++j) {
        const float wj = w[j] * shrink;
        const float d = g[j] + l2 * wj;
        m[j] = b1 * m[j] + (1.0f - b1) * d;
        v[j] = b2 * v[j] + (1.0f - b2) * d * d;
        w[j] = wj - step_size * m[j] / (std::sqrt(v[j]) * inv_sqrt_bc2 + eps);
    }
}

void Adam::step() {
    const float lr = lr_, b1 = options_.beta1, b2 = options_.beta2;
    const float l2 = decoupled_ ? 0.0f : options_.weight_decay;
    const float shrink = decoupled_ ? 1.0f - lr * options_.weight_decay : 1.0f;
    for (std::size_t i = 0; i < params_.size(); ++i) {
        Tensor& p = params_[i];
        if (!p.has_grad()) continue;
        const std::size_t n = p.size();
        if (m_[i].size() != n || v_[i].size() != n || steps_[i] == 0) {  // set_state may leave either unused
            m_[i] = Array(xt::zeros<float>(p.shape()));
            v_[i] = Array(xt::zeros<float>(p.shape()));
        }
        const std::int64_t t = ++steps_[i];
        // Bias corrections in double: b^t for large t underflows gracefully there.
        const float step_size = static_cast<float>(lr / (1.0 - std::pow(static_cast<double>(b1), t)));
        const float inv_sqrt_bc2 = static_cast<float>(1.0 / std::sqrt(1.0 - std::pow(static_cast<double>(b2), t)));
        float* w = p.value().data();
        const float* g = p.grad().data();
        float* m = m_[i].data();
        float* v = v_[i].data();
        // Pieces start on whole SIMD batches: any thread count gives the same bits.
        tg::parallel_range(n, 16384, [&](std::size_t lo, std::size_t hi) {
            update(w + lo, g + lo, m + lo, v + lo, hi - lo, step_size, inv_sqrt_bc2, shrink, l2);
        });
    }
}

}  // namespace tg::optim

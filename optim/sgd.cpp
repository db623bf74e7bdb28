#include "optim/sgd.hpp"

#include <cmath>
#include <stdexcept>

#include "autograd/threads.hpp"

namespace tg::optim {

using detail::check_option;

SGD::SGD(std::vector<Tensor> params, SGDOptions options)
    : Optimizer(std::move(params), options.lr, "SGD"), options_(options) {
    check_option(options.momentum >= 0.0f && std::isfinite(options.momentum), "SGD", "momentum",
                 "non-negative and finite", options.momentum);
    check_option(options.dampening >= 0.0f && options.dampening <= 1.0f, "SGD", "dampening", "in [0, 1]",
                 options.dampening);
    check_option(options.weight_decay >= 0.0f && std::isfinite(options.weight_decay), "SGD", "weight_decay",
                 "non-negative and finite", options.weight_decay);
    if (options.nesterov && (options.momentum <= 0.0f || options.dampening != 0.0f))
        throw std::invalid_argument("SGD: nesterov needs momentum > 0 and dampening 0");
    momentum_.assign(params_.size(), detail::unallocated());
}

std::vector<std::string> SGD::state_names() const {
    if (options_.momentum == 0.0f) return {};
    return {"momentum"};
}

std::vector<Array>& SGD::state_buffer(const std::string& name) {
    if (name == "momentum" && options_.momentum != 0.0f) return momentum_;
    return Optimizer::state_buffer(name);
}

void SGD::step() {
    const float lr = lr_, mu = options_.momentum, damp = 1.0f - options_.dampening, wd = options_.weight_decay;
    for (std::size_t i = 0; i < params_.size(); ++i) {
        Tensor& p = params_[i];
        if (!p.has_grad()) continue;
        const std::size_t n = p.size();
        const bool first = mu != 0.0f && (steps_[i] == 0 || momentum_[i].size() != n);
        if (first) momentum_[i] = Array::from_shape(p.shape());
        float* w0 = p.value().data();
        const float* g0 = p.grad().data();
        float* buf0 = mu == 0.0f ? nullptr : momentum_[i].data();
        // Elementwise: any thread count gives the same bits.
        tg::parallel_range(n, 16384, [&](std::size_t lo, std::size_t hi) {
            float* w = w0 + lo;
            const float* g = g0 + lo;
            const std::size_t len = hi - lo;
            if (mu == 0.0f) {
                for (std::size_t j = 0; j < len; ++j) w[j] -= lr * (g[j] + wd * w[j]);
                return;
            }
            // Branches hoisted out of the loops, so each one vectorizes.
            float* buf = buf0 + lo;
            if (first)
                for (std::size_t j = 0; j < len; ++j) buf[j] = g[j] + wd * w[j];
            else
                for (std::size_t j = 0; j < len; ++j) buf[j] = mu * buf[j] + damp * (g[j] + wd * w[j]);
            if (options_.nesterov)
                for (std::size_t j = 0; j < len; ++j) w[j] -= lr * ((g[j] + wd * w[j]) + mu * buf[j]);
            else
                for (std::size_t j = 0; j < len; ++j) w[j] -= lr * buf[j];
        });
        ++steps_[i];
    }
}

}  // namespace tg::optim

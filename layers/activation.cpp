#include "layers/activation.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/ops.hpp"

namespace tg::nn {

Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Softplus::Softplus(SoftplusOptions options) : beta_(options.beta) {
    if (!(beta_ > 0.0f) || !std::isfinite(beta_))
        throw std::invalid_argument("Softplus: beta must be positive and finite, got " + std::to_string(beta_));
}

Tensor Softplus::forward(const Tensor& x) {
    if (beta_ == 1.0f) return softplus(x);
    return softplus(x * beta_) * (1.0f / beta_);
}

}  // namespace tg::nn

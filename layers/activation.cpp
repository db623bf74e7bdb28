#include "layers/activation.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/ops.hpp"
#include "layers/detail_checks.hpp"

namespace tg::nn {

Tensor Sigmoid::forward(const Tensor& x) { return sigmoid(x); }
Tensor Tanh::forward(const Tensor& x) { return tanh(x); }
Tensor ReLU::forward(const Tensor& x) { return relu(x); }

Softplus::Softplus(SoftplusOptions options) : beta_(options.beta) {
    detail::require_positive_finite(beta_, "Softplus: beta");
}

Tensor Softplus::forward(const Tensor& x) {
    if (beta_ == 1.0f) return softplus(x);
    return softplus(x * beta_) * (1.0f / beta_);
}

}  // namespace tg::nn

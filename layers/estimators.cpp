#include "layers/estimators.hpp"

#include <stdexcept>
#include <string>

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

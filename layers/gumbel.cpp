#include "layers/gumbel.hpp"

namespace tg::nn {

template <>
Tensor RelaxedSampler<GumbelSoftmaxOptions>::forward(const Tensor& logits) {
    return is_training() ? gumbel_softmax(logits, options_) : gumbel_max(logits, options_);
}

template <>
Tensor RelaxedSampler<BinaryConcreteOptions>::forward(const Tensor& logits) {
    return is_training() ? binary_concrete(logits, options_) : bernoulli_sample(logits, options_.generator());
}

}  // namespace tg::nn

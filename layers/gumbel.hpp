// The relaxed-sampler layers over the stochastic ops of autograd/stochastic.hpp (included here,
// so code that includes this header sees the ops too).
#pragma once

#include "autograd/stochastic.hpp"
#include "layers/module.hpp"

namespace tg::nn {

using tg::BinaryConcreteOptions;
using tg::GumbelSoftmaxOptions;

// logits -> a relaxed sample while training, an exact one (as the paper evaluates) in eval
// mode; the two layers below differ only in their options and ops.
template <class Options>
class RelaxedSampler : public Layer {
public:
    explicit RelaxedSampler(Options options = {}) : options_(options) {}
    Tensor forward(const Tensor& logits) override;

    void set_tau(float tau) { options_.tau(tau); }  // for annealing; throws unless tau is valid
    void set_generator(Generator* generator) { options_.generator(generator); }  // nullptr: default_generator()
    float tau() const { return options_.tau(); }
    const Options& options() const { return options_; }

private:
    Options options_;
};

// A relaxed one-hot sample of each variable (gumbel_softmax) while training, an exact one-hot
// (gumbel_max, per group with classes(K)) in eval mode.
class GumbelSoftmax : public RelaxedSampler<GumbelSoftmaxOptions> {
public:
    using RelaxedSampler::RelaxedSampler;
};

// logits (any shape) -> a relaxed Bernoulli sample in (0,1) while training, {0,1} in eval mode.
class BinaryConcrete : public RelaxedSampler<BinaryConcreteOptions> {
public:
    using RelaxedSampler::RelaxedSampler;
};

template <>
Tensor RelaxedSampler<GumbelSoftmaxOptions>::forward(const Tensor& logits);
template <>
Tensor RelaxedSampler<BinaryConcreteOptions>::forward(const Tensor& logits);

}  // namespace tg::nn

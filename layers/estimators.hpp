// Gradient estimators for discrete latent variables, besides the reparameterized (and
// straight-through) Gumbel-Softmax of layers/gumbel.hpp: the score function (REINFORCE) with a
// moving-average baseline, plain straight-through, and the multi-sample objective.
#pragma once

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "layers/gumbel.hpp"

namespace tg {

// The surrogate loss f + stop_gradient(f - baseline) * log_q, elementwise (one entry per
// sample; f and log_q have the same shape): its gradient is the score-function estimate of
// grad E_q[f] (for a loss f to minimize), plus f's own gradient where f depends on parameters
// directly. log_q is the log-probability of the drawn discrete sample under q. One tape node.
Tensor score_function_surrogate(const Tensor& f, const Tensor& log_q, float baseline = 0.0f);

// Plain straight-through (Bengio et al. 2013; the paper's "ST"): the forward value is an exact
// discrete sample, the backward the gradient of its probabilities. Bernoulli: {0,1} with
// P(1) = sigmoid(logits), gradient sigmoid'(logits). Categorical: a one-hot Gumbel-Max sample
// of each variable (axis, classes and generator of the options; tau and hard unused), gradient
// through softmax(logits) of each variable. One tape node each.
Tensor straight_through_bernoulli(const Tensor& logits, Generator* gen = nullptr);
Tensor straight_through_categorical(const Tensor& logits, const GumbelSoftmaxOptions& options = {});

// log((1/m) sum_i exp(log_w_i)) along axis, m = its length: the multi-sample (importance
// weighted) objective from m per-sample log-likelihoods or log weights, stable at any size.
Tensor log_mean_exp(const Tensor& log_w, int axis = 0, bool keepdims = false);

}  // namespace tg

namespace tg::nn {

// REINFORCE with a moving-average baseline b of f:
//     Tensor loss = mean(reinforce.surrogate(f, log_q));  // uses b from earlier batches
//     reinforce.update(f);                                 // then b moves towards mean(f)
// Since b never depends on the current samples the estimate stays unbiased.
class Reinforce {
public:
    explicit Reinforce(float decay = 0.9f);  // b <- decay b + (1 - decay) mean(f), decay in [0, 1)
    Tensor surrogate(const Tensor& f, const Tensor& log_q) const;
    void update(const Tensor& f);  // the first update sets b = mean(f)
    float baseline() const { return baseline_; }
    void set_baseline(float b);  // for checkpoints; counts as an update

private:
    float decay_;
    float baseline_ = 0.0f;
    bool started_ = false;
};

}  // namespace tg::nn

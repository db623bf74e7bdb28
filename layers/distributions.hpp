// Distributions over discrete variables and their relaxations (Maddison et al. 2017; Jang et
// al. 2017). Parameters are logits (unnormalized log-probabilities); the classes are cheap
// handles over them. Categorical and the relaxed one-hot work along the last axis, [..., K];
// log_prob and entropy reduce it. Bernoulli and the relaxed Bernoulli are elementwise.
// log_prob, entropy and kl_divergence are differentiable with respect to the logits (and the
// relaxed value), and samplers take a generator (nullptr: default_generator()).
#pragma once

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace tg::dist {

class Categorical {
public:
    explicit Categorical(Tensor logits);  // [..., K], K >= 1
    const Tensor& logits() const { return logits_; }
    std::size_t num_classes() const { return logits_.shape(-1); }
    Tensor probs() const;      // softmax(logits), [..., K]
    Tensor log_probs() const;  // log_softmax(logits), [..., K]

    Tensor sample(Generator* gen = nullptr) const;  // one-hot [..., K] by Gumbel-Max; no gradient
    Tensor log_prob(const Tensor& value) const;     // value one-hot [..., K] -> [...]
    Tensor entropy() const;                         // [...]

private:
    Tensor logits_;
};

// KL(p || q) = sum_k p_k (log p_k - log q_k) -> [...]; shapes must match.
Tensor kl_divergence(const Categorical& p, const Categorical& q);

class Bernoulli {
public:
    explicit Bernoulli(Tensor logits);
    const Tensor& logits() const { return logits_; }
    Tensor probs() const;  // sigmoid(logits)

    Tensor sample(Generator* gen = nullptr) const;  // {0,1}, no gradient
    Tensor log_prob(const Tensor& value) const;     // value in {0,1} (or [0,1]) -> same shape
    Tensor entropy() const;

private:
    Tensor logits_;
};

Tensor kl_divergence(const Bernoulli& p, const Bernoulli& q);  // elementwise

// The Concrete distribution (Gumbel-Softmax), on the open simplex.
class RelaxedOneHotCategorical {
public:
    RelaxedOneHotCategorical(Tensor logits, float temperature);  // temperature > 0
    const Tensor& logits() const { return logits_; }
    float temperature() const { return tau_; }

    // softmax((logits + g) / tau), differentiable (the fused gumbel_softmax).
    Tensor rsample(Generator* gen = nullptr) const;
    // The same sample in log space (ExpConcrete): log_softmax((logits + g) / tau), which stays
    // finite at low temperature where entries of rsample underflow to 0.
    Tensor rsample_log(Generator* gen = nullptr) const;

    // The Concrete log-density at a point y of the open simplex [..., K] -> [...]
    // (Maddison et al. eq. 11), computed as log_prob_log(log y) - sum_k log y_k.
    Tensor log_prob(const Tensor& value) const;
    // The ExpConcrete log-density of a log-space sample z (Maddison et al. appendix C):
    // log((K-1)!) + (K-1) log tau + sum_k a_k - K logsumexp_k(a_k), a = logits - tau z.
    Tensor log_prob_log(const Tensor& z) const;

private:
    Tensor logits_;
    float tau_;
};

// The binary Concrete distribution on (0,1): sigmoid((logits + L) / tau), L ~ Logistic(0,1).
class RelaxedBernoulli {
public:
    RelaxedBernoulli(Tensor logits, float temperature);
    const Tensor& logits() const { return logits_; }
    float temperature() const { return tau_; }

    Tensor rsample(Generator* gen = nullptr) const;  // differentiable (the fused binary_concrete)
    // The binary Concrete log-density at x in (0,1), elementwise:
    // log tau - softplus(w) - softplus(-w) - log x - log(1 - x), w = logits - tau logit(x).
    Tensor log_prob(const Tensor& value) const;

private:
    Tensor logits_;
    float tau_;
};

}  // namespace tg::dist

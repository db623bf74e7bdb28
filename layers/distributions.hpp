// Distributions over discrete variables and their relaxations (Maddison et al. 2017; Jang et
// al. 2017), and the diagonal Normal of a VAE's continuous latent. Parameters are logits (unnormalized log-probabilities); the classes are cheap
// handles over them. Categorical and the relaxed one-hot work along the last axis, [..., K];
// log_prob and entropy reduce it. Bernoulli and the relaxed Bernoulli are elementwise.
// Shapes broadcast as in torch.distributions: a value against the parameters in log_prob, the
// two distributions in kl_divergence (q [B, N, K] against a prior [K] gives [B, N]); the class
// axes must agree. Shapes that do not broadcast are an error naming the method and both shapes.
// log_prob, entropy and kl_divergence are differentiable with respect to the parameters (and the
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
    Tensor log_prob(const Indices& value) const;    // class indices [...], each < K -> [...]
    Tensor entropy() const;                         // [...]

private:
    Tensor logits_;
};

// KL(p || q) = sum_k p_k (log p_k - log q_k) -> the broadcast of the batch shapes.
Tensor kl_divergence(const Categorical& p, const Categorical& q);

// Made from logits or from probabilities, by name: Bernoulli::from_logits(l),
// Bernoulli::from_probs(p) (dynamic binarization of pixels is from_probs(x).sample(&gen)).
class Bernoulli {
public:
    static Bernoulli from_logits(Tensor logits);
    // probs in [0, 1]; the logits are those of probs clamped to [eps, 1 - eps] (eps =
    // FLT_EPSILON), as in torch.distributions, so log_prob(1) at p = 0 is log(eps), not -inf.
    static Bernoulli from_probs(Tensor probs);
    const Tensor& logits() const { return logits_; }
    Tensor probs() const;  // the probabilities given, or sigmoid(logits)

    // {0,1}, no gradient: 1 where logits + Logistic noise > 0, or where u < probs.
    Tensor sample(Generator* gen = nullptr) const;
    Tensor log_prob(const Tensor& value) const;  // value in {0,1} (or [0,1]) -> the broadcast shape
    Tensor entropy() const;

private:
    Bernoulli(Tensor logits, Tensor probs);
    Tensor logits_, probs_;  // probs_ null when made from logits
};

Tensor kl_divergence(const Bernoulli& p, const Bernoulli& q);  // elementwise, broadcast

// The parameters of the relaxed distributions: logits and a temperature, positive and finite.
class Tempered {
public:
    const Tensor& logits() const { return logits_; }
    float temperature() const { return tau_; }

protected:
    Tempered(Tensor logits, float temperature, const char* who, bool needs_class_axis);
    Tensor logits_;
    float tau_;
};

// The Concrete distribution (Gumbel-Softmax), on the open simplex.
class RelaxedOneHotCategorical : public Tempered {
public:
    RelaxedOneHotCategorical(Tensor logits, float temperature);  // temperature > 0

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
};

// The binary Concrete distribution on (0,1): sigmoid((logits + L) / tau), L ~ Logistic(0,1).
class RelaxedBernoulli : public Tempered {
public:
    RelaxedBernoulli(Tensor logits, float temperature);

    Tensor rsample(Generator* gen = nullptr) const;  // differentiable (the fused binary_concrete)
    // The binary Concrete log-density at x in (0,1), elementwise: the LogitRelaxedBernoulli
    // density of logit(x) - log x - log(1 - x).
    Tensor log_prob(const Tensor& value) const;
};

// The binary Concrete in logit space (the analogue of ExpConcrete, torch's
// LogitRelaxedBernoulli): X = (logits + L) / tau, L ~ Logistic(0,1), so sigmoid(X) ~
// RelaxedBernoulli. Its density stays exact where sigmoid(x) rounds to 0 or 1 (|x| > 17 in
// float, reached at low temperature).
class LogitRelaxedBernoulli : public Tempered {
public:
    LogitRelaxedBernoulli(Tensor logits, float temperature);

    Tensor rsample(Generator* gen = nullptr) const;  // (logits + L) / tau, differentiable
    // log tau - softplus(w) - softplus(-w), w = logits - tau x, elementwise.
    Tensor log_prob(const Tensor& value) const;
};

// A diagonal Normal (Gaussian) with mean loc and standard deviation scale, elementwise; loc and
// scale broadcast to the batch shape. scale must be positive, checked where it is used (a
// scale that underflowed to 0 in exp(...) is an error naming the method, not a silent -inf).
// Normal(mu, exp(0.5f * log_var)) for an encoder that outputs a log-variance.
class Normal {
public:
    Normal(Tensor loc, Tensor scale);
    const Tensor& loc() const { return loc_; }
    const Tensor& scale() const { return scale_; }
    Tensor mean() const { return loc_; }
    Tensor variance() const;  // scale^2

    // loc + scale * eps, eps ~ N(0, I) in the batch shape: differentiable in loc and scale.
    Tensor rsample(Generator* gen = nullptr) const;
    Tensor sample(Generator* gen = nullptr) const;  // the same draw, no gradient
    // -(value - loc)^2 / (2 scale^2) - log scale - log(2 pi) / 2, broadcast with value.
    Tensor log_prob(const Tensor& value) const;
    Tensor entropy() const;  // 1/2 + log(2 pi) / 2 + log scale, in the batch shape

private:
    Tensor loc_, scale_;
};

// KL(p || q) = log(q.scale / p.scale) + (p.scale^2 + (p.loc - q.loc)^2) / (2 q.scale^2) - 1/2,
// elementwise and broadcast (sum over the last axis for a diagonal Gaussian's KL).
Tensor kl_divergence(const Normal& p, const Normal& q);

}  // namespace tg::dist

#include "layers/distributions.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/ops.hpp"
#include "layers/gumbel.hpp"

namespace tg::dist {

namespace {

Tensor checked_logits(Tensor logits, const char* who, bool needs_class_axis) {
    if (!logits.defined()) throw std::invalid_argument(std::string(who) + ": the logits are a null tensor");
    if (needs_class_axis && (logits.dim() == 0 || logits.shape(-1) == 0))
        throw std::invalid_argument(std::string(who) + ": logits need a last axis of K >= 1 classes, got shape " +
                                    shape_str(logits.shape()));
    return logits;
}

float checked_temperature(float tau, const char* who) {
    if (!(tau > 0.0f) || !std::isfinite(tau))
        throw std::invalid_argument(std::string(who) + ": the temperature must be positive and finite, got " +
                                    std::to_string(tau));
    return tau;
}

// value [..., K] against logits [..., K]: the class axes must agree (the rest broadcasts).
void check_class_axis(const Tensor& logits, const Tensor& value, const char* who) {
    if (value.dim() == 0 || value.shape(-1) != logits.shape(-1))
        throw std::invalid_argument(std::string(who) + ": value of shape " + shape_str(value.shape()) +
                                    " does not end in the " + std::to_string(logits.shape(-1)) +
                                    " classes of logits of shape " + shape_str(logits.shape()));
}

}  // namespace

// ---- Categorical

Categorical::Categorical(Tensor logits) : logits_(checked_logits(std::move(logits), "Categorical", true)) {}

Tensor Categorical::probs() const { return softmax(logits_, -1); }
Tensor Categorical::log_probs() const { return log_softmax(logits_, -1); }
Tensor Categorical::sample(Generator* gen) const { return gumbel_max(logits_, gen, -1); }

Tensor Categorical::log_prob(const Tensor& value) const {
    check_class_axis(logits_, value, "Categorical::log_prob");
    return sum(value * log_softmax(logits_, -1), -1);
}

Tensor Categorical::entropy() const {
    // -sum p log p; an underflowed p is 0 against a finite log p, so large logits give no NaN
    return -sum(softmax(logits_, -1) * log_softmax(logits_, -1), -1);
}

Tensor kl_divergence(const Categorical& p, const Categorical& q) {
    if (p.logits().shape() != q.logits().shape())
        throw std::invalid_argument("kl_divergence: Categorical logits of shapes " + shape_str(p.logits().shape()) +
                                    " and " + shape_str(q.logits().shape()) + " differ");
    const Tensor log_p = log_softmax(p.logits(), -1);
    return sum(exp(log_p) * (log_p - log_softmax(q.logits(), -1)), -1);
}

// ---- Bernoulli

Bernoulli::Bernoulli(Tensor logits) : logits_(checked_logits(std::move(logits), "Bernoulli", false)) {}

Tensor Bernoulli::probs() const { return sigmoid(logits_); }
Tensor Bernoulli::sample(Generator* gen) const { return bernoulli_sample(logits_, gen); }

Tensor Bernoulli::log_prob(const Tensor& value) const {
    return -binary_cross_entropy_with_logits(logits_, value, Reduction::none);
}

Tensor Bernoulli::entropy() const {
    // the cross-entropy of p with itself; the gradient flows through both arguments
    return binary_cross_entropy_with_logits(logits_, sigmoid(logits_), Reduction::none);
}

Tensor kl_divergence(const Bernoulli& p, const Bernoulli& q) {
    // cross-entropy H(p, q) minus entropy H(p), both exact at logits of any size
    const Tensor prob = sigmoid(p.logits());
    return binary_cross_entropy_with_logits(q.logits(), prob, Reduction::none) -
           binary_cross_entropy_with_logits(p.logits(), prob, Reduction::none);
}

// ---- RelaxedOneHotCategorical

RelaxedOneHotCategorical::RelaxedOneHotCategorical(Tensor logits, float temperature)
    : logits_(checked_logits(std::move(logits), "RelaxedOneHotCategorical", true)),
      tau_(checked_temperature(temperature, "RelaxedOneHotCategorical")) {}

Tensor RelaxedOneHotCategorical::rsample(Generator* gen) const { return gumbel_softmax(logits_, tau_, false, gen, -1); }

Tensor RelaxedOneHotCategorical::rsample_log(Generator* gen) const {
    Generator& g = gen ? *gen : default_generator();
    const Tensor noise(g.gumbel(Shape(logits_.shape().begin(), logits_.shape().end())));
    return log_softmax((logits_ + noise) * (1.0f / tau_), -1);
}

Tensor RelaxedOneHotCategorical::log_prob_log(const Tensor& z) const {
    check_class_axis(logits_, z, "RelaxedOneHotCategorical::log_prob_log");
    const float k = static_cast<float>(logits_.shape(-1));
    const float log_norm = std::lgamma(k) + (k - 1.0f) * std::log(tau_);  // log((K-1)!) + (K-1) log tau
    const Tensor a = logits_ - z * tau_;
    return sum(a, -1) - logsumexp(a, -1) * k + log_norm;
}

Tensor RelaxedOneHotCategorical::log_prob(const Tensor& value) const {
    check_class_axis(logits_, value, "RelaxedOneHotCategorical::log_prob");
    const Tensor z = log(value);
    return log_prob_log(z) - sum(z, -1);
}

// ---- RelaxedBernoulli

RelaxedBernoulli::RelaxedBernoulli(Tensor logits, float temperature)
    : logits_(checked_logits(std::move(logits), "RelaxedBernoulli", false)),
      tau_(checked_temperature(temperature, "RelaxedBernoulli")) {}

Tensor RelaxedBernoulli::rsample(Generator* gen) const { return binary_concrete(logits_, tau_, false, gen); }

Tensor RelaxedBernoulli::log_prob(const Tensor& value) const {
    // logit(X) = (a + L) / tau is Logistic(a / tau, 1 / tau); w = a - tau logit(x) is its
    // standardized value, and the Jacobian of the logit adds -log x - log(1 - x)
    const Tensor log_x = log(value);
    const Tensor log_1mx = log1p(-value);
    const Tensor w = logits_ - (log_x - log_1mx) * tau_;
    return std::log(tau_) - softplus(w) - softplus(-w) - log_x - log_1mx;
}

}  // namespace tg::dist

#include "layers/distributions.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <utility>

#include "autograd/detail.hpp"
#include "autograd/ops.hpp"
#include "layers/detail_checks.hpp"
#include "layers/gumbel.hpp"

namespace tg::dist {

namespace {

Tensor checked_logits(Tensor logits, const char* who, bool needs_class_axis) {
    if (!logits.defined()) throw std::invalid_argument(std::string(who) + ": the parameters are a null tensor");
    if (needs_class_axis && (logits.dim() == 0 || logits.shape(-1) == 0))
        throw std::invalid_argument(std::string(who) + ": logits need a last axis of K >= 1 classes, got shape " +
                                    shape_str(logits.shape()));
    return logits;
}

float checked_temperature(float tau, const char* who) {
    return detail::require_positive_finite(tau, std::string(who) + ": the temperature");
}

// The broadcast of a's and b's shapes, or an error naming the method and both.
Shape broadcast(const char* who, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
    if (!a.defined() || !b.defined())
        throw std::invalid_argument(std::string(who) + ": the " + (a.defined() ? b_name : a_name) + " is a null tensor");
    Array::shape_type s;
    try {
        s = detail::broadcast_shapes(a.shape(), b.shape(), who);
    } catch (const std::invalid_argument&) {
        throw std::invalid_argument(std::string(who) + ": " + a_name + " of shape " + shape_str(a.shape()) + " and " +
                                    b_name + " of shape " + shape_str(b.shape()) + " cannot be broadcast together");
    }
    return Shape(s.begin(), s.end());
}

// a [..., K] against b [..., K]: the class axes agree, the rest broadcasts.
void check_classes(const char* who, const char* a_name, const Tensor& a, const char* b_name, const Tensor& b) {
    if (b.defined() && (b.dim() == 0 || b.shape(-1) != a.shape(-1)))
        throw std::invalid_argument(std::string(who) + ": " + b_name + " of shape " + shape_str(b.shape()) +
                                    " does not end in the " + std::to_string(a.shape(-1)) + " classes of " + a_name +
                                    " of shape " + shape_str(a.shape()));
    broadcast(who, a_name, a, b_name, b);
}

// t broadcast to shape (a copy only when the shapes differ), for ops that take equal shapes.
Tensor expand(const Tensor& t, const Shape& shape) {
    if (std::equal(shape.begin(), shape.end(), t.shape().begin(), t.shape().end())) return t;
    return t + Tensor::zeros(shape);
}

// The Logistic(a / tau, 1 / tau) log-density at s: log tau - softplus(w) - softplus(-w),
// w = a - tau s.
Tensor logistic_log_density(const Tensor& logits, const Tensor& s, float tau) {
    const Tensor w = logits - s * tau;
    return std::log(tau) - softplus(w) - softplus(-w);
}

}  // namespace

// ---- Categorical

Categorical::Categorical(Tensor logits) : logits_(checked_logits(std::move(logits), "Categorical", true)) {}

Tensor Categorical::probs() const { return softmax(logits_, -1); }
Tensor Categorical::log_probs() const { return log_softmax(logits_, -1); }
Tensor Categorical::sample(Generator* gen) const { return gumbel_max(logits_, GumbelSoftmaxOptions().generator(gen)); }

Tensor Categorical::log_prob(const Tensor& value) const {
    check_classes("Categorical::log_prob", "logits", logits_, "value", value);
    return sum(value * log_softmax(logits_, -1), -1);
}

Tensor Categorical::log_prob(const Indices& value) const {
    const char* who = "Categorical::log_prob";
    const std::size_t k = num_classes();
    for (std::size_t i = 0; i < value.size(); ++i)
        if (value.data()[i] >= k)
            throw std::invalid_argument(std::string(who) + ": class index " + std::to_string(value.data()[i]) +
                                        " at flat index " + std::to_string(i) + " is out of range for " +
                                        std::to_string(k) + " classes");
    const Tensor one_hot_value = one_hot(value, k);
    check_classes(who, "logits", logits_, "indices (as one-hot)", one_hot_value);
    return sum(one_hot_value * log_softmax(logits_, -1), -1);
}

Tensor Categorical::entropy() const {
    // -sum p log p; an underflowed p is 0 against a finite log p, so large logits give no NaN
    return -sum(softmax(logits_, -1) * log_softmax(logits_, -1), -1);
}

Tensor kl_divergence(const Categorical& p, const Categorical& q) {
    check_classes("kl_divergence(Categorical, Categorical)", "p's logits", p.logits(), "q's logits", q.logits());
    const Tensor log_p = log_softmax(p.logits(), -1);
    return sum(exp(log_p) * (log_p - log_softmax(q.logits(), -1)), -1);
}

// ---- Bernoulli

Bernoulli::Bernoulli(Tensor logits, Tensor probs) : logits_(std::move(logits)), probs_(std::move(probs)) {}

Bernoulli Bernoulli::from_logits(Tensor logits) {
    return Bernoulli(checked_logits(std::move(logits), "Bernoulli::from_logits", false), Tensor());
}

Bernoulli Bernoulli::from_probs(Tensor probs) {
    checked_logits(probs, "Bernoulli::from_probs", false);
    const Array& p = std::as_const(probs).value();
    for (std::size_t i = 0; i < p.size(); ++i)
        if (!(p.data()[i] >= 0.0f && p.data()[i] <= 1.0f)) {
            char v[32];
            std::snprintf(v, sizeof v, "%.9g", double(p.data()[i]));
            throw std::invalid_argument(std::string("Bernoulli::from_probs: probabilities must lie in [0, 1], got ") +
                                        v + " at flat index " + std::to_string(i));
        }
    const Tensor clamped = clamp(probs, FLT_EPSILON, 1.0f - FLT_EPSILON);
    return Bernoulli(log(clamped) - log1p(-clamped), std::move(probs));
}

Tensor Bernoulli::probs() const { return probs_.defined() ? probs_ : sigmoid(logits_); }

Tensor Bernoulli::sample(Generator* gen) const {
    if (!probs_.defined()) return bernoulli_sample(logits_, gen);
    // P(u < p) = p for u uniform on (0,1): exact at p = 0 and p = 1
    Array u = (gen ? *gen : default_generator()).uniform_open(Shape(probs_.shape().begin(), probs_.shape().end()));
    const float* p = probs_.value().data();
    for (std::size_t i = 0; i < u.size(); ++i) u.data()[i] = u.data()[i] < p[i] ? 1.0f : 0.0f;
    return Tensor(std::move(u));
}

Tensor Bernoulli::log_prob(const Tensor& value) const {
    const Shape s = broadcast("Bernoulli::log_prob", "logits", logits_, "value", value);
    return -binary_cross_entropy_with_logits(expand(logits_, s), expand(value, s), Reduction::none);
}

Tensor Bernoulli::entropy() const {
    // the cross-entropy of p with itself; the gradient flows through both arguments
    return binary_cross_entropy_with_logits(logits_, probs(), Reduction::none);
}

Tensor kl_divergence(const Bernoulli& p, const Bernoulli& q) {
    // cross-entropy H(p, q) minus entropy H(p), both exact at logits of any size
    const Shape s = broadcast("kl_divergence(Bernoulli, Bernoulli)", "p's logits", p.logits(), "q's logits", q.logits());
    const Tensor p_logits = expand(p.logits(), s);
    const Tensor prob = expand(p.probs(), s);
    return binary_cross_entropy_with_logits(expand(q.logits(), s), prob, Reduction::none) -
           binary_cross_entropy_with_logits(p_logits, prob, Reduction::none);
}

// ---- RelaxedOneHotCategorical

Tempered::Tempered(Tensor logits, float temperature, const char* who, bool needs_class_axis)
    : logits_(checked_logits(std::move(logits), who, needs_class_axis)), tau_(checked_temperature(temperature, who)) {}

RelaxedOneHotCategorical::RelaxedOneHotCategorical(Tensor logits, float temperature)
    : Tempered(std::move(logits), temperature, "RelaxedOneHotCategorical", true) {}

Tensor RelaxedOneHotCategorical::rsample(Generator* gen) const {
    return gumbel_softmax(logits_, GumbelSoftmaxOptions().tau(tau_).generator(gen));
}

Tensor RelaxedOneHotCategorical::rsample_log(Generator* gen) const {
    Generator& g = gen ? *gen : default_generator();
    const Tensor noise(g.gumbel(Shape(logits_.shape().begin(), logits_.shape().end())));
    return log_softmax((logits_ + noise) * (1.0f / tau_), -1);
}

Tensor RelaxedOneHotCategorical::log_prob_log(const Tensor& z) const {
    check_classes("RelaxedOneHotCategorical::log_prob_log", "logits", logits_, "value", z);
    const float k = static_cast<float>(logits_.shape(-1));
    const float log_norm = std::lgamma(k) + (k - 1.0f) * std::log(tau_);  // log((K-1)!) + (K-1) log tau
    const Tensor a = logits_ - z * tau_;
    return sum(a, -1) - logsumexp(a, -1) * k + log_norm;
}

Tensor RelaxedOneHotCategorical::log_prob(const Tensor& value) const {
    check_classes("RelaxedOneHotCategorical::log_prob", "logits", logits_, "value", value);
    const Tensor z = log(value);
    return log_prob_log(z) - sum(z, -1);
}

// ---- RelaxedBernoulli

RelaxedBernoulli::RelaxedBernoulli(Tensor logits, float temperature)
    : Tempered(std::move(logits), temperature, "RelaxedBernoulli", false) {}

Tensor RelaxedBernoulli::rsample(Generator* gen) const {
    return binary_concrete(logits_, BinaryConcreteOptions().tau(tau_).generator(gen));
}

Tensor RelaxedBernoulli::log_prob(const Tensor& value) const {
    broadcast("RelaxedBernoulli::log_prob", "logits", logits_, "value", value);
    // logit(X) is LogitRelaxedBernoulli; the Jacobian of the logit adds -log x - log(1 - x)
    const Tensor log_x = log(value);
    const Tensor log_1mx = log1p(-value);
    return logistic_log_density(logits_, log_x - log_1mx, tau_) - log_x - log_1mx;
}

// ---- LogitRelaxedBernoulli

LogitRelaxedBernoulli::LogitRelaxedBernoulli(Tensor logits, float temperature)
    : Tempered(std::move(logits), temperature, "LogitRelaxedBernoulli", false) {}

Tensor LogitRelaxedBernoulli::rsample(Generator* gen) const {
    Generator& g = gen ? *gen : default_generator();
    const Tensor noise(logistic_noise(g.uniform_open(Shape(logits_.shape().begin(), logits_.shape().end()))));
    return (logits_ + noise) * (1.0f / tau_);
}

Tensor LogitRelaxedBernoulli::log_prob(const Tensor& value) const {
    broadcast("LogitRelaxedBernoulli::log_prob", "logits", logits_, "value", value);
    return logistic_log_density(logits_, value, tau_);
}

}  // namespace tg::dist

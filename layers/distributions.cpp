#include "layers/distributions.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <initializer_list>
#include <iterator>
#include <numeric>
#include <stdexcept>
#include <string>
#include <utility>

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
        s = broadcast_shapes(a.shape(), b.shape(), who);
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

std::string number(float v) {
    char text[32];
    std::snprintf(text, sizeof text, "%.9g", double(v));
    return text;
}

// Refuses the first element of value for which ok() is false (NaN fails every test):
// "<who>: value <v> at flat index <i> <why>", as torch.distributions' validate_args does.
template <class Ok>
void check_support(const char* who, const Tensor& value, const char* why, Ok ok) {
    if (!value.defined()) return;  // broadcast() names the null tensor
    const Array& a = value.value();
    for (std::size_t i = 0; i < a.size(); ++i)
        if (!ok(a.data()[i]))
            throw std::invalid_argument(std::string(who) + ": value " + number(a.data()[i]) + " at flat index " +
                                        std::to_string(i) + " " + why);
}

// Refuses the first row (along the last axis) of value whose reduction is not within 1e-2 of 1:
// loose enough for float rounding and the finite differences of a gradient check, which move a
// point of the simplex off it, while a value that is not a point of the simplex at all is caught.
template <class Reduce>
void check_rows(const char* who, const Tensor& value, const char* why, Reduce reduce) {
    if (!value.defined() || value.dim() == 0) return;  // check_classes names these
    const Array& a = value.value();
    const std::size_t k = a.shape().back();
    for (std::size_t r = 0; k > 0 && r < a.size() / k; ++r) {
        const double s = reduce(a.data() + r * k, k);
        if (!(std::abs(s - 1.0) <= 1e-2))
            throw std::invalid_argument(std::string(who) + ": the value's row " + std::to_string(r) + " (flat index " +
                                        std::to_string(r * k) + ") " + why + ", got " + number(float(s)));
    }
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
    const char* who = "Categorical::log_prob";
    check_classes(who, "logits", logits_, "value", value);
    check_support(who, value, "is not 0 or 1 (values are one-hot; pass class indices as tg::Indices)",
                  [](float v) { return v == 0.0f || v == 1.0f; });
    check_rows(who, value, "is not one-hot: its entries sum to something other than 1",
               [](const float* row, std::size_t k) { return double(std::accumulate(row, row + k, 0.0f)); });
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
    check_support("Bernoulli::from_probs", probs, "is not a probability in [0, 1]",
                  [](float v) { return v >= 0.0f && v <= 1.0f; });
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
    return Tensor(std::move(u)).mark_discrete_sample();
}

Tensor Bernoulli::log_prob(const Tensor& value) const {
    const Shape s = broadcast("Bernoulli::log_prob", "logits", logits_, "value", value);
    // {0, 1}, or a soft target in [0, 1] (its cross-entropy with the distribution)
    check_support("Bernoulli::log_prob", value, "is outside the support [0, 1]",
                  [](float v) { return v >= 0.0f && v <= 1.0f; });
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
    const Tensor noise(gumbel_noise(g.uniform_open(logits_.shape())));
    return log_softmax((logits_ + noise) * (1.0f / tau_), -1);
}

Tensor RelaxedOneHotCategorical::log_prob_log(const Tensor& z) const {
    const char* who = "RelaxedOneHotCategorical::log_prob_log";
    check_classes(who, "logits", logits_, "value", z);
    check_support(who, z, "is not a finite log-probability (the log of a point of the open simplex is <= 0)",
                  [](float v) { return v <= 0.0f && v > -INFINITY; });
    check_rows(who, z, "is not the log of a point of the simplex: the sum of its exponentials is not 1",
               [](const float* row, std::size_t k) {
                   const double m = *std::max_element(row, row + k);
                   double s = 0.0;
                   for (std::size_t j = 0; j < k; ++j) s += std::exp(double(row[j]) - m);
                   return std::exp(m) * s;
               });
    const float k = static_cast<float>(logits_.shape(-1));
    const float log_norm = std::lgamma(k) + (k - 1.0f) * std::log(tau_);  // log((K-1)!) + (K-1) log tau
    const Tensor a = logits_ - z * tau_;
    return sum(a, -1) - logsumexp(a, -1) * k + log_norm;
}

Tensor RelaxedOneHotCategorical::log_prob(const Tensor& value) const {
    const char* who = "RelaxedOneHotCategorical::log_prob";
    check_classes(who, "logits", logits_, "value", value);
    check_support(who, value,
                  "is outside (0, 1]: values lie on the open simplex (at low temperatures, where entries underflow "
                  "to 0, use rsample_log and log_prob_log)",
                  [](float v) { return v > 0.0f && v <= 1.0f; });
    check_rows(who, value, "is not a point of the simplex: its entries sum to something other than 1",
               [](const float* row, std::size_t k) { return std::accumulate(row, row + k, 0.0); });
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
    check_support("RelaxedBernoulli::log_prob", value,
                  "is outside the support (0, 1) (at low temperatures, where samples round to 0 or 1, use "
                  "LogitRelaxedBernoulli)",
                  [](float v) { return v > 0.0f && v < 1.0f; });
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
    check_support("LogitRelaxedBernoulli::log_prob", value, "is not a finite real number",
                  [](float v) { return std::isfinite(v); });
    return logistic_log_density(logits_, value, tau_);
}

// ---- Normal

namespace {

// scale, once every entry is positive and finite, else an error naming the method and the entry.
const Tensor& checked_scale(const Tensor& scale, const char* who) {
    const Array& s = scale.value();
    for (std::size_t i = 0; i < s.size(); ++i)
        if (!(s.data()[i] > 0.0f) || !std::isfinite(s.data()[i])) {
            char v[32];
            std::snprintf(v, sizeof v, "%.9g", double(s.data()[i]));
            throw std::invalid_argument(std::string(who) + ": scale must be positive and finite, got " + v +
                                        " at flat index " + std::to_string(i));
        }
    return scale;
}

// The broadcast of all the shapes, or an error naming the method and two that clash (shapes that
// broadcast pair by pair broadcast together).
Shape broadcast_all(const char* who, std::initializer_list<std::pair<const char*, const Tensor*>> named) {
    for (auto i = named.begin(); i != named.end(); ++i)
        for (auto j = std::next(i); j != named.end(); ++j) broadcast(who, i->first, *i->second, j->first, *j->second);
    Array::shape_type s;
    for (const auto& n : named) s = tg::broadcast_shapes(s, n.second->shape(), who);
    return Shape(s.begin(), s.end());
}

constexpr float half_log_two_pi = 0.91893853320467274f;  // log(2 pi) / 2

}  // namespace

Normal::Normal(Tensor loc, Tensor scale) : loc_(std::move(loc)), scale_(std::move(scale)) {
    broadcast("Normal", "loc", loc_, "scale", scale_);
}

Tensor Normal::variance() const { return square(checked_scale(scale_, "Normal::variance")); }

Tensor Normal::rsample(Generator* gen) const {
    const Tensor& scale = checked_scale(scale_, "Normal::rsample");
    const Tensor eps((gen ? *gen : default_generator()).normal(broadcast_all("Normal::rsample", {{"loc", &loc_}, {"scale", &scale}})));
    return loc_ + scale * eps;
}

Tensor Normal::sample(Generator* gen) const {
    checked_scale(scale_, "Normal::sample");
    NoGradGuard no_grad;
    return detach(rsample(gen));
}

Tensor Normal::log_prob(const Tensor& value) const {
    const Tensor& scale = checked_scale(scale_, "Normal::log_prob");
    broadcast_all("Normal::log_prob", {{"loc", &loc_}, {"scale", &scale}, {"value", &value}});
    return -square((value - loc_) / scale) * 0.5f - log(scale) - half_log_two_pi;
}

Tensor Normal::entropy() const {
    const Tensor& scale = checked_scale(scale_, "Normal::entropy");
    return expand(log(scale) + (0.5f + half_log_two_pi), broadcast_all("Normal::entropy", {{"loc", &loc_}, {"scale", &scale}}));
}

Tensor kl_divergence(const Normal& p, const Normal& q) {
    const char* who = "kl_divergence(Normal, Normal)";
    const Tensor& ps = checked_scale(p.scale(), who);
    const Tensor& qs = checked_scale(q.scale(), who);
    broadcast_all(who, {{"p's loc", &p.loc()}, {"p's scale", &ps}, {"q's loc", &q.loc()}, {"q's scale", &qs}});
    const Tensor ratio = ps / qs;  // the variance ratio and log-ratio from one division
    return square(ratio) * 0.5f + square((p.loc() - q.loc()) / qs) * 0.5f - log(ratio) - 0.5f;
}

}  // namespace tg::dist

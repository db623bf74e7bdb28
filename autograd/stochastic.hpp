// The stochastic ops: Gumbel-Softmax (Concrete) and Binary Concrete relaxed samples of discrete
// variables (Jang et al. 2017; Maddison et al. 2017), exact discrete samples, the
// straight-through and score-function estimators. Each is differentiable twice and more
// (create_graph) given its noise; the exact samples are constants. NaN or infinite logits are
// refused by every op that draws a discrete value, naming the op and the flat index.
#pragma once

#include <cstddef>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"

namespace tg {

namespace detail {
float checked_tau(float tau, const char* op);  // tau, or std::invalid_argument naming op
}

// What the options of every sampler hold, set by chaining (Self: the options class):
//     gumbel_softmax(logits, GumbelSoftmaxOptions().tau(0.5f).hard(true).generator(&gen))
template <class Self>
class SamplerOptions {
public:
    // The temperature: a normal positive float whose 1/tau is finite (else std::invalid_argument).
    Self& tau(float tau) { tau_ = detail::checked_tau(tau, Self::tau_op); return self(); }
    // Straight-through: the forward value is the exact discrete sample (the one-hot of
    // argmax(logits + g), or {0,1} where logits + noise > 0), the gradient the relaxed one.
    Self& hard(bool hard) { hard_ = hard; return self(); }
    // Where the noise comes from; nullptr: default_generator() at each call.
    Self& generator(Generator* generator) { generator_ = generator; return self(); }

    float tau() const { return tau_; }
    bool hard() const { return hard_; }
    Generator* generator() const { return generator_; }

private:
    Self& self() { return static_cast<Self&>(*this); }
    float tau_ = 1.0f;
    bool hard_ = false;
    Generator* generator_ = nullptr;
};

// The options of every categorical sampler (gumbel_softmax, gumbel_max,
// straight_through_categorical) and of nn::GumbelSoftmax.
class GumbelSoftmaxOptions : public SamplerOptions<GumbelSoftmaxOptions> {
public:
    static constexpr const char* tau_op = "GumbelSoftmaxOptions::tau";
    // The axis holding the classes (negative: from the end).
    GumbelSoftmaxOptions& axis(int axis) { axis_ = axis; return *this; }
    // 0: the whole axis is one variable. K > 0: the axis holds G * K entries, G variables of K
    // classes each (logits [B, G*K] sampled as if reshaped to [B, G, K]; the output keeps the
    // logits' shape).
    GumbelSoftmaxOptions& classes(std::size_t classes) { classes_ = classes; return *this; }
    int axis() const { return axis_; }
    std::size_t classes() const { return classes_; }

private:
    int axis_ = -1;
    std::size_t classes_ = 0;
};

// The options of binary_concrete and nn::BinaryConcrete (elementwise: no axis).
class BinaryConcreteOptions : public SamplerOptions<BinaryConcreteOptions> {
public:
    static constexpr const char* tau_op = "BinaryConcreteOptions::tau";
};

// y = softmax((logits + g) / tau) along the class axis, g ~ Gumbel(0,1) drawn as -log(-log u)
// with u in the open interval (0,1). One tape node; the gradient is y * (dy - sum(dy * y)) / tau.
Tensor gumbel_softmax(const Tensor& logits, const GumbelSoftmaxOptions& options = {});
// The same from given uniforms u (the logits' shape, every entry a normal float in (0,1)),
// transformed exactly as the generator's: with u = Generator(s).uniform_open(shape) the result
// equals gumbel_softmax with generator Generator(s), bit for bit. options.generator is unused.
Tensor gumbel_softmax_from_uniforms(const Tensor& logits, const Array& u, const GumbelSoftmaxOptions& options = {});

// y = sigmoid((logits + log u - log(1 - u)) / tau): a relaxed Bernoulli(sigmoid(logits)) sample.
// One tape node; the gradient is y (1 - y) / tau. hard: forward the exact {0,1} value
// (1 where logits + noise > 0), backward the relaxed gradient.
Tensor binary_concrete(const Tensor& logits, const BinaryConcreteOptions& options = {});
Tensor binary_concrete_from_uniforms(const Tensor& logits, const Array& u, const BinaryConcreteOptions& options = {});

// The noise of the samplers from uniforms u in (0,1) (checked as above): Gumbel(0,1),
// -log(-log u), and Logistic(0,1), log u - log(1 - u).
Array gumbel_noise(const Array& u);
Array logistic_noise(const Array& u);

// Exact discrete samples, no gradient: the one-hot of argmax(logits + g) per variable
// (Gumbel-Max, a sample of Categorical(softmax(logits)); axis, classes and generator of the
// options), and {0,1} with P(1) = sigmoid(logits).
Tensor gumbel_max(const Tensor& logits, const GumbelSoftmaxOptions& options = {});
Tensor bernoulli_sample(const Tensor& logits, Generator* gen = nullptr);

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

namespace tg::kernels {
struct AxisView;
}  // namespace tg::kernels

namespace tg::detail {
// The [outer, K, inner] view of the variables the options select in shape; refuses an empty
// class axis and an axis that does not hold whole groups of options.classes(), naming op.
kernels::AxisView class_view(const Array::shape_type& shape, const GumbelSoftmaxOptions& options, const char* op);
}  // namespace tg::detail

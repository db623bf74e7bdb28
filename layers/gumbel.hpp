// Gumbel-Softmax (Concrete) and Binary Concrete: differentiable relaxed samples of discrete
// variables (Jang et al. 2017; Maddison et al. 2017), as fused ops and as layers.
#pragma once

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "layers/module.hpp"

namespace tg {

// y = softmax((logits + g) / tau) along axis, g ~ Gumbel(0,1) drawn as -log(-log u) with u in
// the open interval (0,1). One tape node; the gradient is y * (dy - sum_axis(dy * y)) / tau.
// hard: straight-through, the forward value is the exact one-hot of argmax(logits + g) and the
// gradient is the relaxed one. gen nullptr: default_generator(). tau must be > 0.
Tensor gumbel_softmax(const Tensor& logits, float tau, bool hard = false, Generator* gen = nullptr, int axis = -1);
// The same with the Gumbel noise given (same shape as logits, finite): for tests and for
// reusing one draw.
Tensor gumbel_softmax_with_noise(const Tensor& logits, const Array& gumbel_noise, float tau, bool hard = false,
                                 int axis = -1);

// gumbel_softmax over consecutive groups of `classes` entries of the last axis: logits
// [..., G * classes] sampled as G categorical variables, as if reshaped to [..., G, classes],
// with the output in the logits' shape. The same numbers as reshape, gumbel_softmax, reshape
// back, without the two copies (and two more in the backward).
Tensor grouped_gumbel_softmax(const Tensor& logits, std::size_t classes, float tau, bool hard = false,
                              Generator* gen = nullptr);

// y = sigmoid((logits + log u - log(1 - u)) / tau): a relaxed Bernoulli(sigmoid(logits)) sample.
// One tape node; the gradient is y (1 - y) / tau. hard: forward the exact {0,1} value
// (1 where logits + noise > 0), backward the relaxed gradient.
Tensor binary_concrete(const Tensor& logits, float tau, bool hard = false, Generator* gen = nullptr);
// The same with the Logistic(0,1) noise log u - log(1 - u) given (same shape as logits, finite).
Tensor binary_concrete_with_noise(const Tensor& logits, const Array& logistic_noise, float tau, bool hard = false);

// Exact discrete samples, no gradient: the one-hot of argmax(logits + g) along axis
// (Gumbel-Max, a sample of Categorical(softmax(logits))), and {0,1} with P(1) = sigmoid(logits).
Tensor gumbel_max(const Tensor& logits, Generator* gen = nullptr, int axis = -1);
Tensor bernoulli_sample(const Tensor& logits, Generator* gen = nullptr);

}  // namespace tg

namespace tg::nn {

struct GumbelSoftmaxOptions {
    float tau = 1.0f;                // temperature, > 0
    bool hard = false;               // straight-through: one-hot forward, relaxed gradient
    int axis = -1;                   // the axis of the K classes
    Generator* generator = nullptr;  // nullptr: default_generator() at each call
};

// logits [..., K] -> a relaxed one-hot sample while training, an exact one-hot sample
// (Gumbel-Max) in eval mode, as the paper evaluates.
class GumbelSoftmax : public Layer {
public:
    explicit GumbelSoftmax(GumbelSoftmaxOptions options = {});
    Tensor forward(const Tensor& logits) override;

    void set_tau(float tau);  // for annealing; throws unless tau > 0
    float tau() const { return options_.tau; }
    const GumbelSoftmaxOptions& options() const { return options_; }

private:
    GumbelSoftmaxOptions options_;
};

struct BinaryConcreteOptions {
    float tau = 1.0f;
    bool hard = false;
    Generator* generator = nullptr;
};

// logits (any shape) -> a relaxed Bernoulli sample in (0,1) while training, {0,1} in eval mode.
class BinaryConcrete : public Layer {
public:
    explicit BinaryConcrete(BinaryConcreteOptions options = {});
    Tensor forward(const Tensor& logits) override;

    void set_tau(float tau);
    float tau() const { return options_.tau; }
    const BinaryConcreteOptions& options() const { return options_; }

private:
    BinaryConcreteOptions options_;
};

}  // namespace tg::nn

// The exact expectation of a loss under a small discrete model and its exact gradient, by
// enumerating every state: the reference an estimator's mean is checked against (in standard
// errors), for the library's estimators and a user's own.
#pragma once

#include <cstddef>
#include <functional>
#include <vector>

#include "autograd/tensor.hpp"
#include "layers/discrete_estimators.hpp"

namespace tg {

struct ExactGradient {
    double expectation = 0.0;       // E_q[f]
    std::vector<Array> gradients;   // d E_q[f] / d params[i], each in its parameter's shape
    std::size_t states = 0;         // how many were enumerated
};

// The largest state space exact_gradient enumerates.
constexpr std::size_t exact_gradient_max_states = std::size_t(1) << 16;

// One state's terms: log q(state) and f(state), scalar tensors depending on the parameters.
struct StateTerms {
    Tensor log_q, f;
};

// A model over variables taking values[i] values each (2 for a unit): model(state) gives the
// terms of state (state[i] < values[i]). Sums grad(q f) = q (grad f + f grad log q) over every
// state. Refuses more than exact_gradient_max_states states. The gradients the params held
// before are put back.
ExactGradient exact_gradient(const std::vector<std::size_t>& values,
                             const std::function<StateTerms(const std::vector<std::size_t>& state)>& model,
                             const std::vector<Tensor>& params);

// The common case: q factorizes over the entries of logits (Bernoulli units, or categorical
// variables of the last axis), and f maps a discrete sample z (the logits' shape) to a
// one-element loss (summed over examples if z holds several). The logits may be a parameter
// themselves or computed from params.
ExactGradient exact_gradient(const Tensor& logits, Discrete kind, const std::function<Tensor(const Tensor& z)>& f,
                             const std::vector<Tensor>& params);

}  // namespace tg

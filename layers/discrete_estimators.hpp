// Gradient estimators for discrete latent variables, written with the public ops as a user
// would: the samples' forward values are exact discrete samples (or relaxed ones), and each
// estimator's gradient comes from a detach form (hard + (s - detach(s)), f + grad_only(...)),
// so the estimate is itself made of differentiable ops. Formulas: the papers named at each.
//
// Two shapes:
// - One evaluation: a function from logits to a sample whose backward is the estimator's
//   (gumbel_rao, reinmax, darn, zgr, slope_straight_through, decoupled_straight_through):
//   it composes with any downstream loss.
// - Estimators that need the loss of each sample (rloo, vimco, muprop, arm, disarm, rebar, and
//   the surrogates of score functions): the user hands a function from a discrete sample to
//   per-example losses and gets a surrogate whose value is the loss and whose gradient is the
//   estimate, for every parameter (encoder and decoder alike).
//
// A Discrete says what the logits hold: Bernoulli units (one logit each) or categorical
// variables of K classes, K consecutive logits of the last axis each (logits [..., G * K]).
#pragma once

#include <cstddef>
#include <functional>

#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
#include "layers/linear.hpp"

namespace tg {

class Discrete {
public:
    static Discrete bernoulli() { return Discrete(0); }
    static Discrete categorical(std::size_t classes);  // classes >= 2
    bool is_bernoulli() const { return classes_ == 0; }
    std::size_t classes() const { return classes_; }  // 0 for Bernoulli units
    std::size_t values() const { return classes_ == 0 ? 2 : classes_; }  // of each variable
    const char* name() const { return classes_ == 0 ? "bernoulli" : "categorical"; }

private:
    explicit Discrete(std::size_t classes) : classes_(classes) {}
    std::size_t classes_;
};

// x - detach(x): zero in value, x's gradient: how a term enters the gradient and not the value.
Tensor grad_only(const Tensor& x);

// ---- Primitives, from given uniforms u (the logits' shape, each in the open interval (0,1))

// {0,1}: 1 where logits + logit(u) > 0, i.e. u > sigmoid(-logits), P = sigmoid(logits). No gradient.
Tensor bernoulli_from_uniforms(const Tensor& logits, const Array& u);
// One-hot of argmax(logits + g) per variable of `classes`, g = -log(-log u). No gradient.
Tensor categorical_from_uniforms(const Tensor& logits, const Array& u, std::size_t classes);
// An exact sample of either kind drawn from gen (the uniforms drawn as gen.uniform_open(shape)).
Tensor discrete_sample(const Tensor& logits, Discrete kind, Generator& gen);

// log q(z) of a discrete sample z (the logits' shape) summed over the last axis -> [...]
// (Bernoulli: z log sigmoid(l) + (1 - z) log sigmoid(-l); categorical: z . log_softmax per group).
Tensor discrete_log_prob(const Tensor& logits, const Tensor& z, Discrete kind);
// The mean of the sample: sigmoid(logits), or the softmax of each group.
Tensor discrete_mean(const Tensor& logits, Discrete kind);

// The noise given the outcome (Gumbel-Rao, REBAR): perturbed logits z with the conditional law
// of logits + noise given the discrete sample. Categorical: given the one-hot d and E ~ Exp(1)
// (the logits' shape), the top-down Gumbels: z_d = lse - log E_d, z_j = -log(E_j exp(-l_j) +
// E_d exp(-lse)) (lse = logsumexp of the group). Bernoulli: given b and v in (0,1), z = logits +
// logit(v') with v' = v (1 - p) for b = 0 and 1 - p (1 - v) for b = 1 (p = sigmoid(logits)).
// Differentiable in the logits (REBAR's z~).
Tensor conditional_gumbel(const Tensor& logits, const Tensor& one_hot, const Array& exponentials,
                          std::size_t classes);
Tensor conditional_logistic(const Tensor& logits, const Tensor& b, const Array& v);

// The relaxed sample with a temperature that may be learned (tau a scalar tensor, or any shape
// broadcasting with the logits): sigmoid((logits + logit(u)) / tau), or softmax((logits + g) /
// tau) per group. Compositions of ops, differentiable in the logits and in tau.
Tensor relaxed_sample(const Tensor& logits, const Array& u, const Tensor& tau, Discrete kind);
// The relaxation of perturbed logits z at temperature tau: sigmoid(z / tau) or softmax(z / tau).
Tensor relax(const Tensor& z, const Tensor& tau, Discrete kind);

// ---- One evaluation: forward an exact discrete sample, backward the estimator's

// Gumbel-Rao GR-MCK (Paulus et al. 2021): backward through the mean of `draws` relaxed samples
// softmax((logits + G_k) / tau), the G_k drawn given the sample (and held constant, as in
// nshepperd/gumbel-rao-pytorch: then its mean gradient is ST-GS's). draws >= 1.
Tensor gumbel_rao(const Tensor& logits, Discrete kind, std::size_t draws, float tau, Generator& gen);
// ReinMax (Liu et al. 2023): a sample of q (no relaxation forward); the gradient 2 J(pi_D) g -
// J(pi) g / 2, pi_D = (softmax(logits / tau) + D) / 2, J(p) = diag(p) - p p^T. tau >= 1.
// Bernoulli units are the two-class case (J(p) = p (1 - p)).
Tensor reinmax(const Tensor& logits, Discrete kind, float tau, Generator& gen);
// DARN. Bernoulli, as Jang et al. use it (Gregor et al. 2014): the gradient g (b - 1/2) (b - p),
// unbiased when f is quadratic. Categorical (Shekhovtsov 2023's form): (D - pi) <g, D - pi>,
// unbiased when f is linear (its mean with ST's, ZGR, when f is quadratic).
Tensor darn(const Tensor& logits, Discrete kind, Generator& gen);
// ZGR (Shekhovtsov 2023), the tau -> 0 limit of Gumbel-Rao: (J(pi) g + (D - pi) <g, D - pi>) / 2,
// exact for quadratic f (Bernoulli: the two-class case).
Tensor zgr(const Tensor& logits, Discrete kind, Generator& gen);
// Slope-annealed straight-through (Chung et al. 2016): D ~ q(logits), the gradient that of
// sigmoid(slope * logits) (or softmax); the caller raises the slope over training. The slope
// shapes the backward alone, as in Chung et al.'s deterministic form (whose forward threshold no
// slope moves): the model trained is the one evaluated, q(logits).
Tensor slope_straight_through(const Tensor& logits, Discrete kind, float slope, Generator& gen);
// Straight-through Gumbel-Softmax with separate temperatures (decoupled ST-GS, Shah et al. 2024):
// forward softmax((logits + g) / tau_forward) (tau_forward = 0: the one-hot, Gumbel-Max), backward
// through softmax((logits + g) / tau_backward), one g for both. Bernoulli: logistic noise, sigmoid.
Tensor decoupled_straight_through(const Tensor& logits, Discrete kind, float tau_forward, float tau_backward,
                                  Generator& gen);

// ---- Estimators that need the loss of each sample

// A function from a discrete sample (the logits' shape, [B, D]) to each example's loss [B].
using SampleLoss = std::function<Tensor(const Tensor& z)>;

// The loss's gradient with respect to its sample at z, d sum(f(z)) / dz (tg::grad on a tape of
// its own: no other tensor's gradient changes). For MuProp's Taylor expansion; z and the result
// have the same shape.
Array loss_gradient_at(const SampleLoss& f, const Array& z);

// RLOO (Kool et al. 2019): f and log_q [m, ...] for m >= 2 samples -> [...], value mean_i f_i,
// gradient (1/m) sum_i grad f_i + (f_i - mean_{j != i} f_j) grad log q_i.
Tensor rloo_surrogate(const Tensor& f, const Tensor& log_q);
// VIMCO (Mnih and Rezende 2016) for the loss -log((1/m) sum_i exp(-f_i)) (f_i = -log w_i): f and
// log_q [m, ...], m >= 2 -> [...]; the signal of sample i is L - L^(-i), where L^(-i) replaces
// log w_i by the mean of the others' (the geometric mean).
Tensor vimco_surrogate(const Tensor& f, const Tensor& log_q);
// Both for m samples of one layer of latents: logits [B, D] -> [B]. f sees [m * B, D], sample-major.
Tensor rloo(const Tensor& logits, Discrete kind, const SampleLoss& f, std::size_t m, Generator& gen);
Tensor vimco(const Tensor& logits, Discrete kind, const SampleLoss& f, std::size_t m, Generator& gen);

// MuProp (Gu et al. 2016): the control variate f(mu) + f'(mu) (D - mu) around the mean mu of the
// sample, its mean added back through f'(mu) dmu/dlogits: unbiased. One layer of latents.
Tensor muprop(const Tensor& logits, Discrete kind, const SampleLoss& f, Generator& gen);
// ARM (Yin and Zhou 2019) and DisARM (Dong et al. 2020), Bernoulli units: one u, the antithetic
// pair b1 = 1[u > sigmoid(-l)], b2 = 1[u < sigmoid(l)]; ARM: (f(b1) - f(b2)) (u - 1/2); DisARM:
// (f(b1) - f(b2)) / 2 * 1[b1 != b2] (-1)^b2 sigmoid(|l|). Value (f(b1) + f(b2)) / 2.
Tensor arm(const Tensor& logits, const SampleLoss& f, Generator& gen);
Tensor disarm(const Tensor& logits, const SampleLoss& f, Generator& gen);
// REBAR (Tucker et al. 2017): z = logits + noise, D = H(z), z~ the conditional noise given D;
// [f(D) - eta f(relax(z~))] grad log q(D) + eta grad f(relax(z)) - eta grad f(relax(z~)), relax at
// temperature tau (eta and tau scalar tensors, or broadcasting with the logits). f must accept
// relaxed samples. To learn eta and tau, see rebar_gradient.
Tensor rebar(const Tensor& logits, Discrete kind, const SampleLoss& f, const Tensor& eta, const Tensor& tau,
             Generator& gen);
// RELAX (Grathwohl et al. 2018): REBAR's form with any control variate c of the perturbed logits
// z (c: [B, D] -> [B], e.g. f(relax(z, tau)) plus a small network r(z)):
// [f(D) - c(z~)] grad log q(D) + grad c(z) - grad c(z~). Unbiased for any c.
Tensor relax_estimator(const Tensor& logits, Discrete kind, const SampleLoss& f, const SampleLoss& c, Generator& gen);

// The same estimates as tensors, for tuning the control variate by descending the estimate's
// variance (duvenaud/relax): `gradient` (the logits' shape) is the single-sample estimate of
// d sum(E f) / d logits, differentiable in c's parameters (eta, tau, a network's weights), and
// `value` is f(D) per example. The mean of the estimate does not depend on c, so
// grad({sum(square(gradient))}, {eta, log_tau, ...}) is the gradient of its variance. The model
// then takes the estimate: logits.backward(gradient.value()) (and value's backward for f's own
// parameters). The logits must require grad; their graph is kept for that backward (the nodes
// stay on the tape until a backward without retain_tape walks them or Tape::clear).
struct ControlledEstimate {
    Tensor value, gradient;
};
ControlledEstimate relax_gradient(const Tensor& logits, Discrete kind, const SampleLoss& f, const SampleLoss& c,
                                  Generator& gen);
ControlledEstimate rebar_gradient(const Tensor& logits, Discrete kind, const SampleLoss& f, const Tensor& eta,
                                  const Tensor& tau, Generator& gen);

}  // namespace tg

namespace tg::nn {

// REBAR's and RELAX's control variate with its parameters, for tuning them online as the papers
// do: c(z) = eta f(relax(z, exp(log_tau))), plus for RELAX a network r(z) of one hidden layer of
// `hidden` tanh units over the `units` perturbed logits (duvenaud/relax's toy: 10). hidden = 0 is
// REBAR (estimate() is rebar_gradient's). Each step: e = estimate(logits, f, gen); the model takes
// e.gradient.value() (logits.backward(...)); then variance_backward(e), whose walk frees e's graph,
// puts the gradient of the estimate's variance into parameters()' gradients (and nobody else's),
// for an optimizer to step.
class ControlVariate : public Module {
public:
    ControlVariate(Discrete kind, std::size_t units, std::size_t hidden = 0, float eta = 1.0f, float tau = 0.5f,
                   Generator* init = nullptr);
    SampleLoss of(const SampleLoss& f) const;  // c, for relax_gradient or relax_estimator
    ControlledEstimate estimate(const Tensor& logits, const SampleLoss& f, Generator& gen) const;
    // Zeroes parameters()' gradients and puts there d/dparams of the batch mean of sum(g^2): the
    // mean of g does not depend on them, so this is the gradient of its variance.
    void variance_backward(const ControlledEstimate& e);
    // All of a step in one surrogate [B] for a model's loss (as Nvil's): its value is f(D), and
    // the backward of its batch mean gives the estimate to the logits, f's own gradient at D to
    // f's parameters and the gradient of the estimate's variance to parameters(), for one
    // optimizer to step them all.
    Tensor surrogate(const Tensor& logits, const SampleLoss& f, Generator& gen) const;
    Discrete kind() const { return kind_; }
    float eta() const { return eta_.item(); }
    float tau() const;

private:
    // d/dparams of the batch mean of sum(g^2); retain keeps the estimate's graph for a later backward
    std::vector<Tensor> variance_gradient(const ControlledEstimate& e, bool retain) const;
    Discrete kind_;
    std::size_t units_;
    Tensor eta_, log_tau_;
    std::shared_ptr<Linear> hidden_, out_;
};

// NVIL (Mnih and Gregor 2014): the signal l = f - c - b(x), c a running mean of f and b(x) the
// prediction of an input-dependent baseline network (the caller's), divided by max(1, running
// std of l). surrogate(f, log_q, b) has the value f; its gradient is the score-function estimate
// with that signal plus the gradient of (b - detach(f - c))^2, which fits the baseline.
class Nvil {
public:
    explicit Nvil(float decay = 0.9f, bool normalize = true);  // decay in [0, 1)
    Tensor surrogate(const Tensor& f, const Tensor& log_q, const Tensor& baseline);
    float mean() const { return mean_; }
    float scale() const;  // max(1, running std of the signal): what the signal is divided by
    // The running statistics {started (0 or 1), mean, variance}, for checkpoints; set_state
    // refuses anything else (std::invalid_argument).
    Array state() const;
    void set_state(const Array& state);

private:
    float decay_;
    bool normalize_;
    bool started_ = false;
    float mean_ = 0.0f, var_ = 0.0f;
};

}  // namespace tg::nn

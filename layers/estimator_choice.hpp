// The gradient estimator of a model's discrete latents chosen by name: what a model (or a
// program's --estimator flag) is handed. Every estimator of layers/discrete_estimators.hpp, the
// relaxed and straight-through samplers of layers/gumbel.hpp and the score function, each with
// the latent kinds it applies to and the form it takes:
//   one evaluation: sample() returns the latent sample, its backward the estimate;
//   score: surrogate_of(f, log_q) from the losses and log-probabilities of whole samples (any
//          model, several stochastic layers included; rloo and vimco take m >= 2 samples);
//   one layer: surrogate() from the logits of one layer of latents and the loss of its sample
//          (rebar-tuned and relax first need make_control_variate).
//
//     tg::estimators::Estimator est("reinmax");
//     Tensor z = est.sample(logits, Discrete::categorical(10), gen);   // then any loss of z
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "layers/discrete_estimators.hpp"
#include "layers/estimators.hpp"

namespace tg::estimators {

enum class Form { one_evaluation, score, one_layer };

struct Info {
    const char* name;
    Form form;
    bool bernoulli, categorical;  // the latent kinds it applies to
    bool unbiased;
    const char* summary;
    float min_tau = 0.0f;  // the lowest temperature it takes (reinmax: 1); 0: any positive one
};

// Every estimator, in the order flags list them.
const std::vector<Info>& all();
// The names that apply to a latent kind.
std::vector<std::string> names_for(Discrete kind);
// The estimator named; std::invalid_argument listing the names for an unknown one.
const Info& find(const std::string& name);

// The estimators' knobs, each used by the estimators named beside it.
struct Settings {
    float tau = 1.0f;           // gs, st-gs, gumbel-rao, reinmax (>= 1), decoupled-st's forward
    float tau_backward = 2.0f;  // decoupled-st's backward: smoother than its forward
    std::size_t draws = 10;     // gumbel-rao's conditional draws K
    float slope = 1.0f;         // slope-st
    float eta = 1.0f;           // rebar, fixed (rebar-tuned and relax learn theirs, from 1)
    std::size_t hidden = 100;   // relax: tanh units of its control variate's network
    float decay = 0.9f;         // sf's moving average, nvil's running statistics
};

class Estimator {
public:
    explicit Estimator(const std::string& name, Settings settings = {});
    const Info& info() const { return *info_; }
    const std::string& name() const { return name_; }
    Form form() const { return info_->form; }
    bool applies_to(Discrete kind) const { return kind.is_bernoulli() ? info_->bernoulli : info_->categorical; }
    // std::invalid_argument naming the estimator and the latent kind unless it applies.
    void require(Discrete kind) const;
    Settings& settings() { return settings_; }
    nn::Reinforce& reinforce() { return reinforce_; }  // sf's baseline (for checkpoints)
    nn::Nvil& nvil() { return nvil_; }
    // NVIL's input-dependent baseline (Mnih and Gregor 2014): a network from the model's input
    // [B, ...] to one prediction per example ([B] or [B, 1]) of the loss less its running mean,
    // fitted by the surrogate's own backward (train its parameters with the model's). Used when
    // the surrogate is handed the input; without one the baseline is 0.
    void use_baseline(std::shared_ptr<nn::Layer> network) { baseline_ = std::move(network); }
    const std::shared_ptr<nn::Layer>& baseline() const { return baseline_; }
    // rebar-tuned and relax: their control variate over `units` latents of `kind` (the logits'
    // last axis), nn::ControlVariate from eta = 1 and tau = 0.5, relax's with a network of
    // settings().hidden tanh units; made, held and returned (nullptr for the other estimators).
    // Register it in the model before making the optimizer: surrogate() puts the gradient of the
    // estimate's variance into its parameters, for the model's optimizer to step.
    std::shared_ptr<nn::ControlVariate> make_control_variate(Discrete kind, std::size_t units, Generator* init = nullptr);
    const std::shared_ptr<nn::ControlVariate>& control_variate() const { return control_variate_; }

    // One evaluation: the sample of the logits (tau overrides settings().tau, for annealing).
    Tensor sample(const Tensor& logits, Discrete kind, Generator& gen) const;
    // Score: f and log_q of the samples ([B], or [m, B] for m samples; rloo and vimco need m >= 2)
    // -> the surrogate [B] whose value is the loss (for vimco -log mean exp(-f)). sf and nvil
    // update their running statistics; nvil's baseline network (if any) sees input [B, ...].
    Tensor surrogate_of(const Tensor& f, const Tensor& log_q, const Tensor& input = Tensor());
    // One layer: the surrogate [B] from logits [B, D] and f from a discrete (or, for the rebars and
    // relax, relaxed) sample to per-example losses; score estimators draw `samples` of the layer.
    Tensor surrogate(const Tensor& logits, Discrete kind, const SampleLoss& f, Generator& gen, std::size_t samples = 2,
                     const Tensor& input = Tensor());

private:
    const Info* info_;
    std::string name_;
    Settings settings_;
    nn::Reinforce reinforce_;
    nn::Nvil nvil_;
    std::shared_ptr<nn::Layer> baseline_;
    std::shared_ptr<nn::ControlVariate> control_variate_;
};

}  // namespace tg::estimators

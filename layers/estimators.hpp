// REINFORCE's moving-average baseline over the estimators' ops of autograd/stochastic.hpp
// (score_function_surrogate, the straight-through samplers, log_mean_exp), included here.
#pragma once

#include "autograd/stochastic.hpp"

namespace tg::nn {

// REINFORCE with a moving-average baseline b of f:
//     Tensor loss = mean(reinforce.surrogate(f, log_q));  // uses b from earlier batches
//     reinforce.update(f);                                 // then b moves towards mean(f)
// Since b never depends on the current samples the estimate stays unbiased.
class Reinforce {
public:
    explicit Reinforce(float decay = 0.9f);  // b <- decay b + (1 - decay) mean(f), decay in [0, 1)
    Tensor surrogate(const Tensor& f, const Tensor& log_q) const;
    void update(const Tensor& f);  // the first update sets b = mean(f)
    float baseline() const { return baseline_; }
    bool started() const { return started_; }  // an update (or set_baseline) has set the baseline
    void set_baseline(float b);  // for checkpoints; counts as an update

private:
    float decay_;
    float baseline_ = 0.0f;
    bool started_ = false;
};

}  // namespace tg::nn

// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay, step
// for step as PyTorch's torch.optim.SGD.
#pragma once

#include "optim/optimizer.hpp"

namespace tg::optim {

struct SGDOptions {
    float lr = 1e-3f;
    float momentum = 0.0f;
    float dampening = 0.0f;
    bool nesterov = false;       // needs momentum > 0 and dampening 0
    float weight_decay = 0.0f;   // adds weight_decay * p to the gradient
};

// g = grad + wd p;  buf = g at the first update, then momentum buf + (1 - dampening) g;
// d = g + momentum buf (Nesterov) or buf (else, or g without momentum);  p -= lr d.
class SGD : public Optimizer {
public:
    explicit SGD(std::vector<Tensor> params, SGDOptions options = {});
    void step() override;
    const char* kind() const override { return "sgd"; }
    std::vector<std::string> state_names() const override;
    const SGDOptions& options() const { return options_; }

protected:
    std::vector<Array>& state_buffer(const std::string& name) override;

private:
    SGDOptions options_;
    std::vector<Array> momentum_;  // "momentum", only when options.momentum != 0
};

}  // namespace tg::optim

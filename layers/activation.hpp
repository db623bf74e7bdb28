// Activation functions as layers, for Sequential. Each forwards to its op in autograd/ops.hpp.
#pragma once

#include "layers/module.hpp"

namespace tg::nn {

class Sigmoid : public Layer {
public:
    Tensor forward(const Tensor& x) override;
};

class Tanh : public Layer {
public:
    Tensor forward(const Tensor& x) override;
};

class ReLU : public Layer {
public:
    Tensor forward(const Tensor& x) override;
};

struct SoftplusOptions {
    float beta = 1.0f;  // softplus(beta x) / beta: sharper towards relu as beta grows
};

class Softplus : public Layer {
public:
    explicit Softplus(SoftplusOptions options = {});
    Tensor forward(const Tensor& x) override;

private:
    float beta_;
};

}  // namespace tg::nn

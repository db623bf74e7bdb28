// A fully connected layer: y = x W^T + b, initialized like PyTorch's nn.Linear.
#pragma once

#include <cstddef>

#include "autograd/random.hpp"
#include "layers/module.hpp"

namespace tg::nn {

struct LinearOptions {
    bool bias = true;
    Generator* generator = nullptr;  // for the initial values; nullptr: default_generator()
};

// weight [out, in] and bias [out], both drawn from U(-1/sqrt(in), 1/sqrt(in)): PyTorch's
// kaiming_uniform_(a = sqrt(5)) comes to that bound, and its bias uses the same one.
class Linear : public Layer {
public:
    Linear(std::size_t in_features, std::size_t out_features, LinearOptions options = {});
    Tensor forward(const Tensor& x) override;  // x [..., in] -> [..., out]

    std::size_t in_features() const { return in_features_; }
    std::size_t out_features() const { return out_features_; }

    Tensor weight;
    Tensor bias;  // a null Tensor when options.bias is false

private:
    std::size_t in_features_, out_features_;
};

}  // namespace tg::nn

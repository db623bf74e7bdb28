// A layer a user writes in one file, with no change to the library: a gated residual block
//   y = x + sigmoid(gate(x)) * swish(hidden(x), beta)
// where swish(z, beta) = z * sigmoid(beta z) is a new op with its own backward (tg::record)
// and beta a learnable per-feature parameter. Included by custom_layer.cpp and by the tests.
#pragma once

#include <cmath>
#include <memory>
#include <stdexcept>

#include "tapegrad.hpp"

namespace user {

// z [..., d], beta [d]. The value and, right beside it, the local derivatives:
//   dy/dz = s + beta z s (1 - s),  dy/dbeta = z^2 s (1 - s),  with s = sigmoid(beta z).
inline tg::Tensor swish(const tg::Tensor& z, const tg::Tensor& beta) {
    if (beta.dim() != 1 || z.dim() == 0 || z.shape(-1) != beta.size())
        throw std::invalid_argument("swish: beta of shape " + tg::shape_str(beta.shape()) +
                                    " does not fit the last axis of z " + tg::shape_str(z.shape()));
    const std::size_t d = beta.size(), n = z.size();
    tg::Array y = tg::Array::from_shape(z.shape());
    const float* zv = z.value().data();
    const float* bv = beta.value().data();
    for (std::size_t i = 0; i < n; ++i) {
        const float s = 1.0f / (1.0f + std::exp(-bv[i % d] * zv[i]));
        y.data()[i] = zv[i] * s;
    }
    // The backward captures only sizes; inputs and output arrive as arguments.
    return tg::record("swish", std::move(y), {z, beta}, [d, n](const std::vector<tg::Tensor>& in, const tg::Tensor& out) {
        const float* zv = in[0].value().data();
        const float* bv = in[1].value().data();
        const float* g = out.grad().data();
        tg::Array gz = tg::Array::from_shape(in[0].shape());
        tg::Array gb = xt::zeros<float>({d});
        for (std::size_t i = 0; i < n; ++i) {
            const float b = bv[i % d], s = 1.0f / (1.0f + std::exp(-b * zv[i])), ds = s * (1.0f - s);
            gz.data()[i] = g[i] * (s + b * zv[i] * ds);
            gb.data()[i % d] += g[i] * zv[i] * zv[i] * ds;
        }
        if (in[0].requires_grad()) in[0].accumulate_grad(std::move(gz), "swish");
        if (in[1].requires_grad()) in[1].accumulate_grad(std::move(gb), "swish");
    });
}

struct GatedResidualOptions {
    float beta = 1.0f;                   // initial swish sharpness
    tg::Generator* generator = nullptr;  // for the Linear weights
};

class GatedResidual : public tg::nn::Layer {
public:
    explicit GatedResidual(std::size_t features, GatedResidualOptions options = {}) {
        const tg::nn::LinearOptions lin{true, options.generator};
        gate = register_module("gate", std::make_shared<tg::nn::Linear>(features, features, lin));
        hidden = register_module("hidden", std::make_shared<tg::nn::Linear>(features, features, lin));
        beta = register_parameter("beta", tg::Tensor::full({features}, options.beta));
    }

    tg::Tensor forward(const tg::Tensor& x) override {
        return x + tg::sigmoid((*gate)(x)) * swish((*hidden)(x), beta);
    }

    std::shared_ptr<tg::nn::Linear> gate, hidden;
    tg::Tensor beta;
};

}  // namespace user

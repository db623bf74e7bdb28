#include "layers/linear.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

#include "autograd/ops.hpp"

namespace tg::nn {

namespace {
Tensor uniform_tensor(const Shape& shape, float bound, Generator& g) {
    element_count(shape, "Linear");
    Array a = Array::from_shape(shape);
    for (float& v : a) v = bound * (2.0f * g.uniform() - 1.0f);
    return Tensor(std::move(a));
}
}  // namespace

Linear::Linear(std::size_t in_features, std::size_t out_features, LinearOptions options)
    : in_features_(in_features), out_features_(out_features) {
    if (in_features == 0 || out_features == 0)
        throw std::invalid_argument("Linear: in_features and out_features must be positive, got (" +
                                    std::to_string(in_features) + ", " + std::to_string(out_features) + ")");
    Generator& g = options.generator ? *options.generator : default_generator();
    const float bound = 1.0f / std::sqrt(static_cast<float>(in_features));
    // Weight first, then bias: the order PyTorch draws them in.
    weight = register_parameter("weight", uniform_tensor({out_features, in_features}, bound, g));
    if (options.bias) bias = register_parameter("bias", uniform_tensor({out_features}, bound, g));
}

Tensor Linear::forward(const Tensor& x) { return linear(x, weight, bias); }

}  // namespace tg::nn

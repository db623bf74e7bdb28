// A chain of layers: forward feeds each one's output to the next.
#pragma once

#include <cstddef>
#include <functional>
#include <initializer_list>
#include <memory>
#include <vector>

#include "layers/linear.hpp"
#include "layers/module.hpp"

namespace tg::nn {

// Children are registered as "0", "1", ..., so parameters are named "0.weight", "2.bias".
class Sequential : public Layer {
public:
    Sequential() = default;
    Sequential(std::initializer_list<std::shared_ptr<Layer>> layers);
    explicit Sequential(const std::vector<std::shared_ptr<Layer>>& layers);

    Sequential& push_back(std::shared_ptr<Layer> layer);
    Tensor forward(const Tensor& x) override;  // the input itself when empty

    std::size_t size() const { return layers_.size(); }
    Layer& operator[](std::size_t i) const { return *layers_.at(i); }

private:
    std::vector<std::shared_ptr<Layer>> layers_;
};

// A shared Sequential from a braced list (std::make_shared cannot forward one):
// auto net = nn::sequential({std::make_shared<nn::Linear>(2, 8), std::make_shared<nn::ReLU>()});
std::shared_ptr<Sequential> sequential(std::initializer_list<std::shared_ptr<Layer>> layers);

// Linear layers of sizes[0] -> sizes[1] -> ... -> sizes.back(), with a fresh activation()
// between two of them (none after the last): the start of most small models.
// nn::MLP net({2, 64, 64, 1}, [] { return std::make_shared<nn::Tanh>(); }, {true, &gen});
class MLP : public Sequential {
public:
    MLP(const std::vector<std::size_t>& sizes, const std::function<std::shared_ptr<Layer>()>& activation,
        LinearOptions options = {});
};

// A shared MLP from a braced list of sizes (std::make_shared cannot forward one), as nn::sequential:
// auto net = nn::mlp({784, 500, 10}, [] { return std::make_shared<nn::ReLU>(); }, {true, &gen});
std::shared_ptr<MLP> mlp(const std::vector<std::size_t>& sizes, const std::function<std::shared_ptr<Layer>()>& activation,
                         LinearOptions options = {});

}  // namespace tg::nn

// A chain of layers: forward feeds each one's output to the next.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <vector>

#include "layers/module.hpp"

namespace tg::nn {

// Children are registered as "0", "1", ..., so parameters are named "0.weight", "2.bias".
class Sequential : public Layer {
public:
    Sequential() = default;
    Sequential(std::initializer_list<std::shared_ptr<Layer>> layers);

    Sequential& push_back(std::shared_ptr<Layer> layer);
    Tensor forward(const Tensor& x) override;  // the input itself when empty

    std::size_t size() const { return layers_.size(); }
    Layer& operator[](std::size_t i) const { return *layers_.at(i); }

private:
    std::vector<std::shared_ptr<Layer>> layers_;
};

}  // namespace tg::nn

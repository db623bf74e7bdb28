#include "layers/sequential.hpp"

#include <stdexcept>
#include <string>

namespace tg::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Layer>> layers) {
    for (const auto& l : layers) push_back(l);
}

Sequential& Sequential::push_back(std::shared_ptr<Layer> layer) {
    if (!layer)
        throw std::invalid_argument("Sequential: layer " + std::to_string(layers_.size()) + " is a null pointer");
    register_module(std::to_string(layers_.size()), layer);
    layers_.push_back(std::move(layer));
    return *this;
}

Tensor Sequential::forward(const Tensor& x) {
    Tensor h = x;
    for (auto& l : layers_) h = l->forward(h);
    return h;
}

}  // namespace tg::nn

#include "layers/sequential.hpp"

#include <stdexcept>
#include <string>


namespace tg::nn {

Sequential::Sequential(std::initializer_list<std::shared_ptr<Layer>> layers) {
    for (const auto& l : layers) push_back(l);
}

Sequential::Sequential(const std::vector<std::shared_ptr<Layer>>& layers) {
    for (const auto& l : layers) push_back(l);
}

std::shared_ptr<Sequential> sequential(std::initializer_list<std::shared_ptr<Layer>> layers) {
    return std::make_shared<Sequential>(std::vector<std::shared_ptr<Layer>>(layers));
}

MLP::MLP(const std::vector<std::size_t>& sizes, const std::function<std::shared_ptr<Layer>()>& activation,
         LinearOptions options) {
    if (sizes.size() < 2)
        throw std::invalid_argument("MLP: needs at least an input and an output size, got " +
                                    std::to_string(sizes.size()) + " sizes");
    for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
        if (i > 0) {
            std::shared_ptr<Layer> a = activation ? activation() : nullptr;
            if (!a) throw std::invalid_argument("MLP: the activation factory gave no layer");
            push_back(std::move(a));
        }
        push_back(std::make_shared<Linear>(sizes[i], sizes[i + 1], options));
    }
}

std::shared_ptr<MLP> mlp(const std::vector<std::size_t>& sizes, const std::function<std::shared_ptr<Layer>()>& activation,
                         LinearOptions options) {
    return std::make_shared<MLP>(sizes, activation, options);
}

Sequential& Sequential::push_back(std::shared_ptr<Layer> layer) {
    if (!layer)
        throw std::invalid_argument("Sequential: layer " + std::to_string(layers_.size()) + " is a null pointer");
    register_module(std::to_string(layers_.size()), layer);
    layers_.push_back(std::move(layer));
    return *this;
}

Tensor Sequential::forward(const Tensor& x) {
    if (!x.defined())
        throw std::invalid_argument("Sequential::forward: the input is a null Tensor (default-constructed)");
    Tensor h = x;
    for (auto& l : layers_) h = l->forward(h);
    return h;
}

}  // namespace tg::nn

#include "layers/module.hpp"

#include <algorithm>
#include <stdexcept>

namespace tg::nn {

void Module::check_new_name(const std::string& name) const {
    if (name.empty() || name.find('.') != std::string::npos)
        throw std::invalid_argument("Module: the name '" + name + "' must be non-empty and contain no '.'");
    for (const auto& p : params_)
        if (p.first == name) throw std::invalid_argument("Module: the name '" + name + "' is already registered");
    for (const auto& c : children_)
        if (c.first == name) throw std::invalid_argument("Module: the name '" + name + "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t) {
    check_new_name(name);
    if (!t.defined()) throw std::invalid_argument("Module: parameter '" + name + "' is a null tensor");
    t.set_requires_grad(true);
    params_.emplace_back(name, t);
    return t;
}

void Module::collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out,
                     std::vector<const TensorImpl*>& seen) const {
    for (const auto& p : params_) {
        if (std::find(seen.begin(), seen.end(), p.second.impl()) != seen.end()) continue;
        seen.push_back(p.second.impl());
        out.emplace_back(prefix + p.first, p.second);
    }
    for (const auto& c : children_) c.second->collect(prefix + c.first + ".", out, seen);
}

std::vector<std::pair<std::string, Tensor>> Module::named_parameters() const {
    std::vector<std::pair<std::string, Tensor>> out;
    std::vector<const TensorImpl*> seen;
    collect("", out, seen);
    return out;
}

std::vector<Tensor> Module::parameters() const {
    std::vector<Tensor> out;
    for (auto& p : named_parameters()) out.push_back(p.second);
    return out;
}

void Module::train(bool on) {
    training_ = on;
    for (auto& c : children_) c.second->train(on);
}

void Module::zero_grad() {
    for (auto& p : named_parameters()) p.second.zero_grad();
}

Tensor Layer::predict(const Tensor& x) {
    const bool was_training = is_training();
    eval();
    NoGradGuard no_grad;
    try {
        Tensor y = forward(x);
        train(was_training);
        return y;
    } catch (...) {
        train(was_training);
        throw;
    }
}

}  // namespace tg::nn

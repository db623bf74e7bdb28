// Modules: parameters and child modules registered by name in the constructor, kept in
// order, so named_parameters() is stable (checkpoints and optimizer state depend on it).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/tensor.hpp"

namespace tg::nn {

class Module {
public:
    virtual ~Module() = default;

    // Own parameters first, then each child's, in registration order; names are dotted
    // paths ("fc1.weight"). A tensor shared by two modules (tied weights) is listed once,
    // under its first name, so an optimizer updates it once.
    std::vector<std::pair<std::string, Tensor>> named_parameters() const;
    std::vector<Tensor> parameters() const;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> named_children() const { return children_; }

    // Training mode (the default) vs evaluation: stochastic layers switch from relaxed to
    // discrete samples. Applies to every child.
    void train(bool on = true);
    void eval() { train(false); }
    bool is_training() const { return training_; }

    void zero_grad();

    // Keeps module as a child under `name` (unique within this module). Public, as in PyTorch:
    // a part made for a model from outside (NVIL's baseline network) joins its parameters.
    template <class M>
    std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
        check_new_name(name);
        children_.emplace_back(name, module);
        return module;
    }

protected:
    // Marks t as requiring grad and keeps it under `name` (unique within this module).
    Tensor register_parameter(const std::string& name, Tensor t);

private:
    void check_new_name(const std::string& name) const;
    void collect(const std::string& prefix, std::vector<std::pair<std::string, Tensor>>& out,
                 std::vector<const TensorImpl*>& seen) const;

    std::vector<std::pair<std::string, Tensor>> params_;
    std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
    bool training_ = true;
};

// A module with one tensor in and one out: what Sequential chains.
class Layer : public Module {
public:
    virtual Tensor forward(const Tensor& x) = 0;
    Tensor operator()(const Tensor& x) { return forward(x); }

    // forward in evaluation mode with no recording, for validation and inference; the
    // training mode is restored afterwards (set again on every child, like train()).
    Tensor predict(const Tensor& x);
};

}  // namespace tg::nn

// Optimizers walk a parameter list (usually module.parameters()) and update the values in
// place from their gradients. State is kept per parameter, in vectors parallel to the list.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "autograd/tensor.hpp"

namespace tg::optim {

class Optimizer {
public:
    virtual ~Optimizer() = default;

    // One update of every parameter that holds a gradient; the others are skipped (their
    // state and step count stay as they are).
    virtual void step() = 0;
    void zero_grad();

    float lr() const { return lr_; }
    void set_lr(float lr);  // >= 0 and finite; schedules call it

    const std::vector<Tensor>& parameters() const { return params_; }

    // Short lowercase name ("sgd", "adam", "adamw"): checkpoints prefix the state with it.
    virtual const char* kind() const = 0;

    // For checkpoints. steps()[i] counts the updates parameter i has had; state buffer
    // `name` holds one array per parameter, of shape (0,) until that parameter's first
    // update (a default xarray is 0-d with one element, so "empty" is spelled out). set_steps and
    // set_state replace them whole, and throw std::invalid_argument unless they hold one entry
    // per parameter: a count >= 0, a buffer of the parameter's shape or of shape (0,).
    const std::vector<std::int64_t>& steps() const { return steps_; }
    void set_steps(std::vector<std::int64_t> steps);
    virtual std::vector<std::string> state_names() const { return {}; }
    const std::vector<Array>& state(const std::string& name) const;
    void set_state(const std::string& name, std::vector<Array> buffers);

protected:
    Optimizer(std::vector<Tensor> params, float lr, const char* who);
    // The buffer behind `name`; throws std::out_of_range for a name this optimizer lacks.
    virtual std::vector<Array>& state_buffer(const std::string& name);

    std::vector<Tensor> params_;
    std::vector<std::int64_t> steps_;
    float lr_ = 0.0f;
};

// Scales all gradients together so that their joint L2 norm is at most max_norm (PyTorch's
// clip_grad_norm_: factor max_norm / (norm + 1e-6), applied only when it is below 1).
// Returns the norm before clipping. Parameters without a gradient are skipped.
float clip_grad_norm(const std::vector<Tensor>& params, float max_norm);

namespace detail {
inline Array unallocated() { return Array::from_shape({0}); }
// Throws std::invalid_argument("<who>: <what> must be <rule>, got <v>") unless ok.
void check_option(bool ok, const char* who, const char* what, const char* rule, float v);
}  // namespace detail

}  // namespace tg::optim

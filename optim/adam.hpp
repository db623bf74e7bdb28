// Adam and AdamW, step for step as PyTorch's torch.optim.Adam / AdamW (without amsgrad).
#pragma once

#include "optim/optimizer.hpp"

namespace tg::optim {

struct AdamOptions {
    float lr = 1e-3f;
    float beta1 = 0.9f;          // in [0, 1)
    float beta2 = 0.999f;        // in [0, 1)
    float eps = 1e-8f;
    float weight_decay = 0.0f;   // L2: adds weight_decay * p to the gradient
};

struct AdamWOptions {
    float lr = 1e-3f;
    float beta1 = 0.9f;
    float beta2 = 0.999f;
    float eps = 1e-8f;
    float weight_decay = 1e-2f;  // decoupled: p *= 1 - lr * weight_decay before the Adam step
};

// With t the parameter's update count (from 1):  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
// p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
class Adam : public Optimizer {
public:
    explicit Adam(std::vector<Tensor> params, AdamOptions options = {});
    void step() override;
    const char* kind() const override { return decoupled_ ? "adamw" : "adam"; }
    std::vector<std::string> state_names() const override { return {"m", "v"}; }
    const AdamOptions& options() const { return options_; }

protected:
    Adam(std::vector<Tensor> params, const AdamOptions& options, bool decoupled, const char* who);
    std::vector<Array>& state_buffer(const std::string& name) override;

private:
    void update(float* w, const float* g, float* m, float* v, std::size_t n, float step_size, float inv_sqrt_bc2,
                float shrink, float l2) const;
    AdamOptions options_;
    bool decoupled_;
    std::vector<Array> m_, v_;  // first and second moment estimates
};

class AdamW : public Adam {
public:
    explicit AdamW(std::vector<Tensor> params, AdamWOptions options = {});
};

}  // namespace tg::optim

// Learning-rate schedules: call step() once per epoch (or per N updates, your choice of
// unit); each sets the optimizer's lr from the lr it had when the schedule was made.
#pragma once

#include <cstdint>

#include "optim/optimizer.hpp"

namespace tg::optim {

class LRSchedule {
public:
    virtual ~LRSchedule() = default;
    void step();  // advances the count by one and sets the optimizer's lr
    std::int64_t count() const { return count_; }
    // Jumps to a count (resuming from a checkpoint) and sets the lr for it.
    void set_count(std::int64_t count);
    float base_lr() const { return base_lr_; }
    virtual float lr_at(std::int64_t count) const = 0;

protected:
    explicit LRSchedule(Optimizer& optimizer) : optimizer_(optimizer), base_lr_(optimizer.lr()) {}

private:
    Optimizer& optimizer_;
    float base_lr_;
    std::int64_t count_ = 0;
};

// lr = max(min_lr, base_lr * gamma^floor(count / step_size)): multiplied by gamma every
// step_size steps, down to min_lr.
class StepLR : public LRSchedule {
public:
    StepLR(Optimizer& optimizer, std::int64_t step_size, float gamma = 0.1f, float min_lr = 0.0f);
    float lr_at(std::int64_t count) const override;

private:
    std::int64_t step_size_;
    float gamma_, min_lr_;
};

// lr = max(min_lr, base_lr * factor^count), count the reductions so far: observe() a metric
// (lower is better) once per epoch; when more than `patience` observations in a row fail to
// beat the best by threshold * |best|, the lr is reduced and the count of bad observations
// starts again (PyTorch's ReduceLROnPlateau, mode "min", no cooldown). NaN never improves.
class ReduceLROnPlateau : public LRSchedule {
public:
    ReduceLROnPlateau(Optimizer& optimizer, float factor = 0.1f, std::int64_t patience = 10, float min_lr = 0.0f,
                      double threshold = 1e-4);
    // Returns true when it lowered the lr (never below min_lr: once there, the count stays).
    bool observe(double metric);
    float lr_at(std::int64_t count) const override;
    double best() const { return best_; }  // +infinity before the first observation
    std::int64_t bad_observations() const { return bad_; }
    // Resuming: best (not NaN), bad observations in [0, patience] and the count; sets the lr.
    void restore(double best, std::int64_t bad_observations, std::int64_t count);

private:
    float factor_, min_lr_;
    std::int64_t patience_;
    double threshold_;
    double best_;
    std::int64_t bad_ = 0;
};

// lr = base_lr * gamma^count.
class ExponentialLR : public LRSchedule {
public:
    ExponentialLR(Optimizer& optimizer, float gamma);
    float lr_at(std::int64_t count) const override;

private:
    float gamma_;
};

}  // namespace tg::optim

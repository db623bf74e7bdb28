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

// lr = base_lr * gamma^floor(count / step_size): multiplied by gamma every step_size steps.
class StepLR : public LRSchedule {
public:
    StepLR(Optimizer& optimizer, std::int64_t step_size, float gamma = 0.1f);
    float lr_at(std::int64_t count) const override;

private:
    std::int64_t step_size_;
    float gamma_;
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

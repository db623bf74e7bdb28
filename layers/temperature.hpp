// Temperature schedules for Gumbel-Softmax / Concrete layers: a pure function of the step, so
// resuming from a checkpoint needs only the step count. Use: layer.set_tau(schedule.at(step)).
#pragma once

#include <cstdint>

namespace tg::optim {

class TemperatureSchedule {
public:
    virtual ~TemperatureSchedule() = default;
    virtual float at(std::int64_t step) const = 0;
};

class ConstantTemperature : public TemperatureSchedule {
public:
    explicit ConstantTemperature(float tau);  // tau > 0
    float at(std::int64_t step) const override;

private:
    float tau_;
};

// tau = max(tau_min, tau0 * exp(-rate * t)) with t the step rounded down to a multiple of
// `every`: recomputed every N steps, as Jang et al. anneal (tau0 = 1, tau_min = 0.5,
// rate in {1e-5, 1e-4}, every N in {500, 1000}).
class ExponentialTemperature : public TemperatureSchedule {
public:
    ExponentialTemperature(float tau0, float rate, float tau_min, std::int64_t every = 1);
    float at(std::int64_t step) const override;

private:
    float tau0_, rate_, tau_min_;
    std::int64_t every_;
};

}  // namespace tg::optim

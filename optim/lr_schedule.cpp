#include "optim/lr_schedule.hpp"

#include <cmath>
#include <stdexcept>
#include <string>

namespace tg::optim {

using detail::check_option;

void LRSchedule::step() { set_count(count_ + 1); }

void LRSchedule::set_count(std::int64_t count) {
    if (count < 0) throw std::invalid_argument("LRSchedule: the count must be non-negative, got " + std::to_string(count));
    count_ = count;
    optimizer_.set_lr(lr_at(count));
}

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, float gamma)
    : LRSchedule(optimizer), step_size_(step_size), gamma_(gamma) {
    if (step_size <= 0)
        throw std::invalid_argument("StepLR: step_size must be positive, got " + std::to_string(step_size));
    check_option(gamma >= 0.0f && std::isfinite(gamma), "StepLR", "gamma", "non-negative and finite", gamma);
}

float StepLR::lr_at(std::int64_t count) const {
    return static_cast<float>(base_lr() * std::pow(static_cast<double>(gamma_), count / step_size_));
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, float gamma) : LRSchedule(optimizer), gamma_(gamma) {
    check_option(gamma >= 0.0f && std::isfinite(gamma), "ExponentialLR", "gamma", "non-negative and finite", gamma);
}

float ExponentialLR::lr_at(std::int64_t count) const {
    return static_cast<float>(base_lr() * std::pow(static_cast<double>(gamma_), count));
}

}  // namespace tg::optim

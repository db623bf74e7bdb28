#include "optim/lr_schedule.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
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

StepLR::StepLR(Optimizer& optimizer, std::int64_t step_size, float gamma, float min_lr)
    : LRSchedule(optimizer), step_size_(step_size), gamma_(gamma), min_lr_(min_lr) {
    if (step_size <= 0)
        throw std::invalid_argument("StepLR: step_size must be positive, got " + std::to_string(step_size));
    check_option(gamma >= 0.0f && std::isfinite(gamma), "StepLR", "gamma", "non-negative and finite", gamma);
    check_option(min_lr >= 0.0f && std::isfinite(min_lr), "StepLR", "min_lr", "non-negative and finite", min_lr);
}

float StepLR::lr_at(std::int64_t count) const {
    return std::max(min_lr_, static_cast<float>(base_lr() * std::pow(static_cast<double>(gamma_), count / step_size_)));
}

ReduceLROnPlateau::ReduceLROnPlateau(Optimizer& optimizer, float factor, std::int64_t patience, float min_lr,
                                     double threshold)
    : LRSchedule(optimizer), factor_(factor), min_lr_(min_lr), patience_(patience), threshold_(threshold),
      best_(std::numeric_limits<double>::infinity()) {
    check_option(factor > 0.0f && factor < 1.0f, "ReduceLROnPlateau", "factor", "in (0, 1)", factor);
    check_option(min_lr >= 0.0f && std::isfinite(min_lr), "ReduceLROnPlateau", "min_lr", "non-negative and finite", min_lr);
    check_option(threshold >= 0.0 && std::isfinite(threshold), "ReduceLROnPlateau", "threshold", "non-negative and finite",
                 float(threshold));
    if (patience < 0)
        throw std::invalid_argument("ReduceLROnPlateau: patience must be non-negative, got " + std::to_string(patience));
}

bool ReduceLROnPlateau::observe(double metric) {
    // best_ - threshold * |best_| is NaN while best_ is infinite
    if (std::isinf(best_) ? metric < best_ : metric < best_ - threshold_ * std::fabs(best_)) {
        best_ = metric;
        bad_ = 0;
        return false;
    }
    if (++bad_ <= patience_) return false;
    bad_ = 0;
    if (lr_at(count()) <= min_lr_) return false;
    step();
    return true;
}

float ReduceLROnPlateau::lr_at(std::int64_t count) const {
    return std::max(min_lr_, static_cast<float>(base_lr() * std::pow(static_cast<double>(factor_), count)));
}

void ReduceLROnPlateau::restore(double best, std::int64_t bad_observations, std::int64_t count) {
    if (std::isnan(best) || bad_observations < 0 || bad_observations > patience_)
        throw std::invalid_argument("ReduceLROnPlateau: cannot restore best " + std::to_string(best) + " with " +
                                    std::to_string(bad_observations) + " bad observations (patience " +
                                    std::to_string(patience_) + ")");
    set_count(count);
    best_ = best;
    bad_ = bad_observations;
}

ExponentialLR::ExponentialLR(Optimizer& optimizer, float gamma) : LRSchedule(optimizer), gamma_(gamma) {
    check_option(gamma >= 0.0f && std::isfinite(gamma), "ExponentialLR", "gamma", "non-negative and finite", gamma);
}

float ExponentialLR::lr_at(std::int64_t count) const {
    return static_cast<float>(base_lr() * std::pow(static_cast<double>(gamma_), count));
}

}  // namespace tg::optim
